CREATE OR REPLACE FUNCTION pgbert.batch_write_<oid>()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
    IF TG_RELID <> <oid> OR TG_OP <> 'INSERT' OR TG_LEVEL <> 'STATEMENT' THEN
        RAISE EXCEPTION 'pgbert: % writes back only after an INSERT into the table of oid <oid>', TG_NAME
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (SELECT relowner FROM pg_catalog.pg_class WHERE oid = TG_RELID)
       <> (SELECT proowner FROM pg_catalog.pg_proc WHERE oid = 'pgbert.batch_write_<oid>()'::pg_catalog.regprocedure) THEN
        RAISE EXCEPTION 'pgbert: the owner of % changed; its write-back function was not re-owned', TG_RELID::regclass
              USING ERRCODE = 'insufficient_privilege',
                    HINT = 'CALL pgbert.disable_embedding(table), then pgbert.enable_embedding(...) again.';
    END IF;
    UPDATE public.golden_docs AS t SET body_embedding = e.v
      FROM (SELECT u.k, u.v
              FROM (SELECT array_agg(r.k) AS ks, array_agg(r.s) AS ts
                      FROM (SELECT n.id AS k, n.body AS s, (row_number() OVER w - 1) / 1024 AS chunk,
                                   sum(octet_length(n.body)) OVER w / 8388608 AS part
                              FROM pgbert_new_rows n
                             WHERE n.body IS NOT NULL AND n.body_embedding IS NULL
                            WINDOW w AS (ROWS UNBOUNDED PRECEDING)) r
                     GROUP BY r.chunk, r.part) a,
                   unnest(a.ks, public.embed_batch(a.ts)) AS u(k, v)) e
     WHERE t.id OPERATOR(pg_catalog.=) e.k;
    RETURN NULL;
END
$function$

CREATE TRIGGER pgbert_batch_end AFTER INSERT ON public.golden_docs FOR EACH STATEMENT EXECUTE FUNCTION pgbert.batch_end();
CREATE TRIGGER pgbert_batch_start BEFORE INSERT ON public.golden_docs FOR EACH STATEMENT EXECUTE FUNCTION pgbert.batch_start();
CREATE TRIGGER pgbert_batch_write AFTER INSERT ON public.golden_docs REFERENCING NEW TABLE AS pgbert_new_rows FOR EACH STATEMENT EXECUTE FUNCTION pgbert.batch_write_<oid>();
CREATE TRIGGER pgbert_embed_insert BEFORE INSERT ON public.golden_docs FOR EACH ROW EXECUTE FUNCTION pgbert.embed_row('body', 'body_embedding', 'batch', '<oid>');
CREATE TRIGGER pgbert_embed_update BEFORE UPDATE OF body ON public.golden_docs FOR EACH ROW WHEN ((old.body IS DISTINCT FROM new.body)) EXECUTE FUNCTION pgbert.embed_row('body', 'body_embedding', 'row', '<oid>');
CREATE INDEX golden_docs_body_embedding_idx ON public.golden_docs USING hnsw (body_embedding vector_cosine_ops);
CREATE UNIQUE INDEX golden_docs_pkey ON public.golden_docs USING btree (id);
('body', 'body_embedding', 'id', 'batch', 'cosine', 32, 'golden_docs_body_embedding_idx')
