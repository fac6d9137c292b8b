CREATE OR REPLACE FUNCTION pgbert.write_back_<oid>()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET extra_float_digits TO '1'
 SET "IntervalStyle" TO 'postgres'
 SET "DateStyle" TO 'ISO, MDY'
AS $function$
BEGIN
    IF TG_LEVEL <> 'STATEMENT' OR TG_RELID NOT IN (SELECT <oid>::pg_catalog.oid UNION SELECT relid FROM pg_catalog.pg_partition_tree(<oid>)) THEN
        RAISE EXCEPTION 'pgbert: % writes back after statements on the table of oid <oid> (or its partitions) only', TG_NAME
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pgbert._check_partition_owners(<oid>, TG_RELID);  -- 72_partitions.sql
    IF TG_NAME = 'pgbert_next_insert' THEN  -- a model change in progress: the new model's column too
        PERFORM pgbert._write_next(<oid>, (SELECT jsonb_agg(n) FROM pgbert_new_rows n), NULL);
    ELSIF TG_NAME = 'pgbert_next_update' THEN
        PERFORM pgbert._write_next(<oid>, (SELECT jsonb_agg(n) FROM pgbert_new_rows n),
                                   (SELECT jsonb_agg(o) FROM pgbert_old_rows o));
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pgbert._write_inserted(<oid>, (SELECT jsonb_agg(n) FROM pgbert_new_rows n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM pgbert._write_updated(<oid>, (SELECT jsonb_agg(o) FROM pgbert_old_rows o),
                                      (SELECT jsonb_agg(n) FROM pgbert_new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM pgbert._write_deleted(<oid>, (SELECT jsonb_agg(o) FROM pgbert_old_rows o));
    ELSE
        PERFORM pgbert._write_truncation(<oid>, TG_RELID);  -- the table's or a partition's (36_chunk_triggers.sql)
    END IF;
    RETURN NULL;
END
$function$

CREATE TRIGGER pgbert_batch_end AFTER INSERT ON public.golden_docs FOR EACH STATEMENT EXECUTE FUNCTION pgbert.batch_end();
CREATE TRIGGER pgbert_batch_start BEFORE INSERT ON public.golden_docs FOR EACH STATEMENT EXECUTE FUNCTION pgbert.batch_start();
CREATE TRIGGER pgbert_batch_write AFTER INSERT ON public.golden_docs REFERENCING NEW TABLE AS pgbert_new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgbert.write_back_<oid>();
CREATE TRIGGER pgbert_embed_insert BEFORE INSERT ON public.golden_docs FOR EACH ROW EXECUTE FUNCTION pgbert.embed_row('body', 'body_embedding', 'batch', '<oid>', 'tiny-bert');
CREATE TRIGGER pgbert_embed_update BEFORE UPDATE OF body, body_embedding ON public.golden_docs FOR EACH ROW WHEN (((old.body IS DISTINCT FROM new.body) OR ((new.body_embedding IS NULL) AND (new.body IS NOT NULL)))) EXECUTE FUNCTION pgbert.embed_row('body', 'body_embedding', 'row', '<oid>', 'tiny-bert');
CREATE INDEX golden_docs_body_embedding_idx ON public.golden_docs USING hnsw (body_embedding vector_cosine_ops);
CREATE UNIQUE INDEX golden_docs_pkey ON public.golden_docs USING btree (id);
('body', 'body_embedding', 'id', 'batch', 'cosine', 32, None)
