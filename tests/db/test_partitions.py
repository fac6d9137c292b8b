"""Partitioned tables (issue 22): every strategy, and chunks, on a declaratively partitioned table; rows written
through the parent, straight into a partition (any level) or by COPY; partitions created, attached, detached
and dropped later; rows moving between partitions; backfill and search() across partitions; partitions of
another owner."""
import psycopg
import pytest

from helpers import assert_embedded, assert_same_vectors, model_calls

STRATEGIES = ["batch", "row", "queue", "auto"]
LONG = " ".join(f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(60))


def make_parts(conn):
    """parts: RANGE (id) into parts_low [0, 100) and parts_high [100, 200), itself HASH (id) in two."""
    conn.execute("CREATE TABLE parts (id int PRIMARY KEY, body text, tag text) PARTITION BY RANGE (id)")
    conn.execute("CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (0) TO (100)")
    conn.execute("CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (100) TO (200) PARTITION BY HASH (id)")
    conn.execute("CREATE TABLE parts_high_0 PARTITION OF parts_high FOR VALUES WITH (MODULUS 2, REMAINDER 0)")
    conn.execute("CREATE TABLE parts_high_1 PARTITION OF parts_high FOR VALUES WITH (MODULUS 2, REMAINDER 1)")


def settle(conn, strategy):
    """Queued strategies: the workers' turn."""
    if strategy in ("queue", "auto"):
        conn.execute("CALL pgbert.process_queue()")


def pgbert_triggers(conn, table) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
        "WHERE t.tgrelid = %s::regclass AND p.pronamespace = 'pgbert'::regnamespace ORDER BY 1", (table,))]


def pending(conn, table="parts") -> int:
    return conn.execute("SELECT pgbert.pending_rows(%s)", (table,)).fetchone()[0]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_embeds_every_write_path(conn, strategy):
    make_parts(conn)
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', strategy => %s, build_index => false)", (strategy,))
    conn.execute("INSERT INTO parts SELECT g, 'through the parent ' || g FROM generate_series(1, 5) g")
    conn.execute("INSERT INTO parts SELECT g, 'routed to a sub-partition ' || g FROM generate_series(150, 155) g")
    conn.execute("INSERT INTO parts_low VALUES (10, 'straight into a partition'), (11, 'and another')")
    conn.execute("INSERT INTO parts_high VALUES (160, 'into the middle level'), (161, 'and on down')")
    with conn.cursor().copy("COPY parts_low (id, body) FROM STDIN") as copy:
        copy.write_row((12, "copied into a partition"))
        copy.write_row((13, "copied too"))
    if strategy in ("queue", "auto"):  # queue rows name the registered table, never a partition
        assert conn.execute("SELECT array_agg(DISTINCT relid::regclass::text) FROM pgbert.embedding_queue "
                            "WHERE relid <> 'text_embeddings'::regclass").fetchone()[0] in (["parts"], None)
    conn.execute("CREATE TABLE parts_late PARTITION OF parts FOR VALUES FROM (200) TO (300)")
    conn.execute("SELECT pgbert.reinstall_triggers()")  # an upgrade keeps the partitions' triggers
    conn.execute("INSERT INTO parts VALUES (201, 'a partition created later'), (202, 'through its parent')")
    conn.execute("INSERT INTO parts_late VALUES (203, 'straight into the later partition'), (204, 'again')")
    conn.execute("UPDATE parts SET id = 250, body = 'moved to another partition and changed' WHERE id = 1")
    conn.execute("UPDATE parts SET id = 14 WHERE id = 150")  # moved, same text
    conn.execute("UPDATE parts_low SET body = 'changed in place' WHERE id = 10")
    conn.execute("UPDATE parts_high SET body = 'changed in the middle level' WHERE id = 160")
    conn.execute("DELETE FROM parts_low WHERE id = 11")
    settle(conn, strategy)
    assert conn.execute("SELECT count(*) FROM parts").fetchone() == (20,)
    assert_embedded(conn, "parts")
    assert pending(conn) == 0
    assert conn.execute("SELECT count(*) FROM pgbert.embedding_queue WHERE relid <> 'text_embeddings'::regclass") \
        .fetchone() == (0,)


def test_rows_inserted_straight_into_a_partition_are_batched(conn):
    make_parts(conn)
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', build_index => false)")
    before = model_calls(conn)
    conn.execute("INSERT INTO parts_low SELECT g, 'text number ' || g FROM generate_series(1, 99) g")
    assert model_calls(conn) - before == 1 + 4  # the first row inline, then 98 rows in batches of 32
    before = model_calls(conn)
    with conn.cursor().copy("COPY parts_high (id, body) FROM STDIN") as copy:
        for i in range(100, 199):
            copy.write_row((i, f"copied {i}"))
    assert model_calls(conn) - before == 1 + 4
    assert_embedded(conn, "parts")


def like_parts(conn, name, first, last):
    """A table of parts' shape (its vector and lexical columns too) holding rows first..last, not embedded."""
    conn.execute(f"CREATE TABLE {name} (LIKE parts INCLUDING DEFAULTS)")
    conn.execute(f"INSERT INTO {name} (id, body) SELECT g, 'attached row ' || g "
                 f"FROM generate_series({first}, {last}) g")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_an_attached_partition_is_embedded_and_a_detached_one_is_left_alone(conn, strategy):
    make_parts(conn)
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', strategy => %s, build_index => false)", (strategy,))
    like_parts(conn, "archive", 300, 304)
    conn.execute("ALTER TABLE parts ATTACH PARTITION archive FOR VALUES FROM (300) TO (400)")
    conn.execute("CALL pgbert.backfill('parts')" if strategy in ("batch", "row") else "CALL pgbert.process_queue()")
    conn.execute("INSERT INTO archive VALUES (305, 'straight into the attached partition')")
    conn.execute("INSERT INTO parts VALUES (306, 'through the parent into the attached one')")
    settle(conn, strategy)
    assert_embedded(conn, "parts")
    assert conn.execute("SELECT count(*) FROM parts").fetchone() == (7,)
    conn.execute("ALTER TABLE parts DETACH PARTITION archive")
    assert pgbert_triggers(conn, "archive") == []
    conn.execute("INSERT INTO archive VALUES (400, 'after the detach'), (401, 'nothing of pgbert runs')")
    assert conn.execute("SELECT count(*) FROM archive WHERE body_embedding IS NULL").fetchone() == (2,)
    assert conn.execute("SELECT count(*) FROM pgbert.embedding_queue WHERE relid <> 'text_embeddings'::regclass") \
        .fetchone() == (0,)
    conn.execute("INSERT INTO parts VALUES (2, 'the table goes on')")
    settle(conn, strategy)
    assert_embedded(conn, "parts")


def test_a_detach_concurrently_leaves_the_partition_alone(conn):
    make_parts(conn)
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', strategy => 'queue', build_index => false)")
    conn.execute("ALTER TABLE parts DETACH PARTITION parts_low CONCURRENTLY")
    assert pgbert_triggers(conn, "parts_low") == []
    conn.execute("INSERT INTO parts_low VALUES (1, 'no longer a partition')")
    assert conn.execute("SELECT count(*) FROM pgbert.embedding_queue WHERE relid <> 'text_embeddings'::regclass") \
        .fetchone() == (0,)


def test_backfill_fills_every_partition_with_its_own_rows(conn):
    """Rows of different partitions share row addresses (ctid): a vector must land on its own row."""
    make_parts(conn)
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', lexical => 'english', build_index => false)")
    conn.execute("INSERT INTO parts VALUES (150, 'embedded when inserted'), (151, 'this one as well')")
    conn.execute("SET session_replication_role = replica")  # loaded with triggers off
    conn.execute("INSERT INTO parts SELECT g, 'loaded without a vector ' || g FROM generate_series(1, 6) g")
    conn.execute("INSERT INTO parts SELECT g, 'loaded into the other side ' || g FROM generate_series(160, 163) g")
    conn.execute("RESET session_replication_role")
    assert pending(conn) == 10
    conn.execute("CALL pgbert.backfill('parts', 3)")
    assert pending(conn) == 0
    assert_embedded(conn, "parts")
    stale = conn.execute("SELECT count(*) FROM parts WHERE body_lexemes <> pgbert.lexemes(body, 'english')")
    assert stale.fetchone() == (0,)


ROWS = [(1, "apple pie recipe with cinnamon", "food"), (2, "the stock market fell sharply", "money"),
        (150, "apple computers and phones", "tech"), (151, "a recipe for sourdough bread", "food"),
        (152, "bread and butter pudding", "food"), (153, "interest rates and the market", "money")]


@pytest.mark.parametrize("chunked", [False, True], ids=["vectors", "chunks"])
def test_search_across_partitions(conn, chunked):
    make_parts(conn)
    conn.execute("INSERT INTO parts VALUES " + ", ".join(["(%s, %s, %s)"] * len(ROWS)), [v for r in ROWS for v in r])
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', lexical => 'english'"
                 + (", chunk_tokens => 16)" if chunked else ")"))
    texts = {i: body for i, body, _ in ROWS}
    for mode in ("vector", "hybrid", "lexical"):
        got = conn.execute("SELECT id::int, content FROM search('apple recipe', 10, 'parts', %s)", (mode,)).fetchall()
        assert len(got) == len({i for i, _ in got}), (mode, got)  # no row twice
        assert all(texts[i] == content for i, content in got), (mode, got)  # each with its own text
        assert {i for i, _ in got} == (set(texts) if mode != "lexical" else {1, 150, 151})
    exact = [r[0] for r in conn.execute("SELECT id FROM parts ORDER BY "
                                        + ("(SELECT min(c.embedding <=> embed('apple recipe', 'query')) FROM "
                                           "parts_chunks c WHERE c.row_key = parts.id)" if chunked else
                                           "body_embedding <=> embed('apple recipe', 'query')") + " LIMIT 3")]
    got = [r[0] for r in conn.execute("SELECT id::int FROM search('apple recipe', 3, 'parts', 'vector')")]
    assert got == exact
    food = conn.execute("SELECT id::int FROM search('bread', 10, 'parts', filter => '{\"tag\": \"food\"}')").fetchall()
    assert sorted(r[0] for r in food) == [1, 151, 152]
    typed = conn.execute("SELECT (s.r).id, (s.r).tag FROM search_rows('market', 2, NULL::parts, 'lexical') s")
    assert sorted(typed.fetchall()) == [(2, "money"), (153, "money")]


def chunk_spans(conn) -> dict[int, list[tuple]]:
    got: dict[int, list[tuple]] = {}
    for key, chunk, start, end in conn.execute(
            "SELECT row_key, chunk, start_char, end_char FROM parts_chunks ORDER BY 1, 2"):
        got.setdefault(key, []).append((chunk, start, end))
    return got


def assert_chunks_exact(conn):
    """Every row with text has exact chunks covering its text, embedded from their passages; no other chunks."""
    rows = dict(conn.execute("SELECT id, body FROM parts WHERE body IS NOT NULL").fetchall())
    stored = chunk_spans(conn)
    assert set(stored) == set(rows)
    for key, spans in stored.items():
        assert [c for c, _, _ in spans] == list(range(len(spans)))
        assert spans[0][1] == 0 and spans[-1][2] == len(rows[key])
    passages = conn.execute("SELECT substr(p.body, c.start_char + 1, c.end_char - c.start_char), c.embedding::text, "
                            "embed(substr(p.body, c.start_char + 1, c.end_char - c.start_char))::text "
                            "FROM parts p JOIN parts_chunks c ON c.row_key = p.id").fetchall()
    assert_same_vectors(conn, passages)


def chunk_tree(conn) -> list[tuple]:
    """The chunk table's partitions: (level, bound) of each, as PostgreSQL prints them."""
    return sorted(conn.execute(
        "SELECT t.level, coalesce(pg_get_expr(c.relpartbound, c.oid), '') FROM pg_partition_tree('parts_chunks') t "
        "JOIN pg_class c ON c.oid = t.relid").fetchall())


def attached(conn, table) -> bool:
    return conn.execute("SELECT relispartition FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()[0]


def table_tree(conn, table="parts") -> list[tuple]:
    return sorted(conn.execute(
        "SELECT t.level, coalesce(pg_get_expr(c.relpartbound, c.oid), '') FROM pg_partition_tree(%s) t "
        "JOIN pg_class c ON c.oid = t.relid", (table,)).fetchall())


@pytest.mark.parametrize("strategy", ["batch", "queue"])
def test_a_chunked_partitioned_table_keeps_its_chunks_exact(conn, strategy):
    make_parts(conn)
    conn.execute("INSERT INTO parts VALUES (1, %s), (150, 'short and there before')", (LONG,))
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', strategy => %s, chunk_tokens => 24, "
                 "overlap_tokens => 4)", (strategy,))
    settle(conn, strategy)
    assert chunk_tree(conn) == table_tree(conn)  # the chunk table is partitioned as the table is
    assert_chunks_exact(conn)
    conn.execute("INSERT INTO parts VALUES (2, %s), (151, 'through the parent')", (LONG[:400],))
    conn.execute("INSERT INTO parts_low VALUES (3, 'straight into a partition'), (4, %s)", (LONG[200:700],))
    with conn.cursor().copy("COPY parts_high (id, body) FROM STDIN") as copy:
        copy.write_row((160, "copied into the middle level"))
    conn.execute("CREATE TABLE parts_late PARTITION OF parts FOR VALUES FROM (200) TO (300)")
    assert chunk_tree(conn) == table_tree(conn)
    conn.execute("INSERT INTO parts_late VALUES (201, 'a later partition'), (202, %s)", (LONG[:300],))
    conn.execute("UPDATE parts SET id = 250 WHERE id = 2")  # moved: its chunks follow
    conn.execute("UPDATE parts_low SET body = 'now short' WHERE id = 1")
    conn.execute("UPDATE parts_high SET tag = 'not the text' WHERE id = 151")
    conn.execute("DELETE FROM parts_late WHERE id = 201")
    settle(conn, strategy)
    assert_chunks_exact(conn)
    bodies = dict(conn.execute("SELECT id, body FROM parts").fetchall())
    conn.execute("SET enable_indexscan = off")  # exact: an HNSW scan may miss a chunk among deleted ones
    hits = conn.execute("SELECT id::int, passage FROM search('topic 3', 10, 'parts')").fetchall()
    conn.execute("RESET enable_indexscan")
    assert sorted(i for i, _ in hits) == sorted(bodies)  # each row once, from every partition
    assert all(passage in bodies[i] for i, passage in hits)
    conn.execute("TRUNCATE parts_low")
    assert_chunks_exact(conn)
    assert chunk_spans(conn)  # the other partitions' chunks stay
    conn.execute("ALTER TABLE parts DETACH PARTITION parts_late")
    conn.execute("DROP TABLE parts_high_1")
    assert chunk_tree(conn) == table_tree(conn)
    assert_chunks_exact(conn)
    like_parts(conn, "archive", 300, 303)
    conn.execute("ALTER TABLE parts ATTACH PARTITION archive FOR VALUES FROM (300) TO (400)")
    assert chunk_tree(conn) == table_tree(conn)
    assert pending(conn) == 4
    conn.execute("CALL pgbert.backfill('parts')" if strategy == "batch" else "CALL pgbert.process_queue()")
    assert_chunks_exact(conn)
    conn.execute("TRUNCATE parts")
    assert chunk_spans(conn) == {}
    conn.execute("CALL pgbert.disable_embedding('parts')")
    assert conn.execute("SELECT to_regclass('parts_chunks'), to_regclass('archive_chunks')").fetchone() == (None, None)
    assert [pgbert_triggers(conn, t) for t in ("parts", "parts_low", "parts_high_0", "archive")] == [[]] * 4


def test_one_registration_per_partition_tree(conn):
    make_parts(conn)
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', build_index => false)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="through its parent"):
        conn.execute("CALL pgbert.enable_embedding('parts_high_0', 'body', build_index => false)")
    conn.execute("CALL pgbert.disable_embedding('parts')")  # the vector column stays
    conn.execute("CALL pgbert.enable_embedding('parts_low', 'body', build_index => false)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="parts_low"):
        conn.execute("CALL pgbert.enable_embedding('parts', 'body', build_index => false)")
    conn.execute("CALL pgbert.disable_embedding('parts_low')")
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', build_index => false)")
    like_parts(conn, "archive", 300, 301)
    conn.execute("CALL pgbert.enable_embedding('archive', 'body', build_index => false)")
    with pytest.raises(psycopg.errors.DuplicateObject, match="pgbert_embed"):  # PostgreSQL's own refusal: their
        conn.execute("ALTER TABLE parts ATTACH PARTITION archive FOR VALUES FROM (300) TO (400)")  # row triggers
    assert not attached(conn, "archive")
    conn.execute("CALL pgbert.disable_embedding('archive')")
    conn.execute("ALTER TABLE parts ATTACH PARTITION archive FOR VALUES FROM (300) TO (400)")
    conn.execute("CALL pgbert.backfill('parts')")
    assert_embedded(conn, "parts")


def test_a_partitioned_table_without_a_single_column_key(conn):
    conn.execute("CREATE TABLE events (id int, day date, body text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)")
    conn.execute("CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="single-column primary key"):
        conn.execute("CALL pgbert.enable_embedding('events', 'body', strategy => 'queue')")
    conn.execute("CALL pgbert.enable_embedding('events', 'body')")  # row by row
    conn.execute("INSERT INTO events VALUES (1, '2024-05-01', 'through the parent')")
    conn.execute("INSERT INTO events_2024 VALUES (2, '2024-06-01', 'straight in')")
    assert_embedded(conn, "events")


@pytest.fixture()
def alice_parts(conn, role):
    """parts owned by alice (pgbert_user), who may create in public."""
    alice = role("pgbert_test_alice", "pgbert_user")
    mallory = role("pgbert_test_mallory", "pgbert_user")
    conn.execute(f"GRANT CREATE ON SCHEMA public TO {alice}, {mallory}")
    make_parts(conn)
    for table in ("parts", "parts_low", "parts_high", "parts_high_0", "parts_high_1"):
        conn.execute(f"ALTER TABLE {table} OWNER TO {alice}")
    yield alice, mallory
    conn.execute("RESET ROLE")
    conn.execute(f"REVOKE CREATE ON SCHEMA public FROM {alice}, {mallory}")


def test_a_partition_of_another_owner_is_refused_and_never_runs_its_code_as_the_owner(conn, alice_parts):
    alice, mallory = alice_parts
    conn.execute(f"ALTER TABLE parts_high_1 OWNER TO {mallory}")
    conn.execute(f"SET ROLE {alice}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="parts_high_1") as info:
        conn.execute("CALL pgbert.enable_embedding('parts', 'body', build_index => false)")
    assert "OWNER TO" in info.value.diag.message_hint
    conn.execute("RESET ROLE")
    conn.execute(f"ALTER TABLE parts_high_1 OWNER TO {alice}")
    conn.execute(f"SET ROLE {alice}")
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', build_index => false)")
    conn.execute("RESET ROLE")
    # mallory gets the partition afterwards and plants a trigger that would run as whoever writes the vectors
    warnings = []
    conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
    conn.execute(f"ALTER TABLE parts_high_1 OWNER TO {mallory}")
    assert any("parts_high_1" in w for w in warnings), warnings
    conn.execute("CREATE TABLE public.ran_as (who name)")
    conn.execute("GRANT INSERT ON public.ran_as TO PUBLIC")
    conn.execute(f"SET ROLE {mallory}")
    conn.execute("CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 "INSERT INTO public.ran_as VALUES (current_user); RETURN NEW; END $$")
    conn.execute("CREATE TRIGGER spy BEFORE UPDATE ON parts_high_1 FOR EACH ROW EXECUTE FUNCTION public.spy()")
    conn.execute(f"SET ROLE {alice}")
    ids = ", ".join(f"({i}, 'row {i}')" for i in range(100, 110))  # some land in mallory's partition
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="parts_high_1") as info:
        conn.execute(f"INSERT INTO parts VALUES {ids}")
    assert f"OWNER TO {alice}" in info.value.diag.message_hint
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="parts_high_1"):  # fixed first, as enabling
        conn.execute("CALL pgbert.set_strategy('parts', 'queue')")
    conn.execute("RESET ROLE")
    assert conn.execute("SELECT count(*) FROM public.ran_as").fetchone() == (0,)
    # queued: the rows commit, and the store step refuses to write them the same way
    conn.execute(f"ALTER TABLE parts_high_1 OWNER TO {alice}")
    conn.execute(f"SET ROLE {alice}")
    conn.execute("CALL pgbert.set_strategy('parts', 'queue')")
    conn.execute("RESET ROLE")
    conn.execute(f"ALTER TABLE parts_high_1 OWNER TO {mallory}")
    conn.execute(f"SET ROLE {alice}")
    conn.execute(f"INSERT INTO parts VALUES {ids}")
    conn.execute("RESET ROLE")
    conn.execute("UPDATE pgbert.settings SET value = '1' WHERE name = 'queue_max_attempts'")
    conn.execute("CALL pgbert.process_queue()")
    errors = conn.execute("SELECT DISTINCT error FROM pgbert.embedding_errors").fetchall()
    assert len(errors) == 1 and "parts_high_1" in errors[0][0]
    assert conn.execute("SELECT count(*) FROM public.ran_as").fetchone() == (0,)
    conn.execute("DROP TRIGGER spy ON parts_high_1")
    conn.execute(f"ALTER TABLE parts_high_1 OWNER TO {alice}")  # the fix the hint gave
    conn.execute("CALL pgbert.retry_failed('parts')")
    conn.execute("CALL pgbert.process_queue()")
    assert_embedded(conn, "parts")


def test_a_partition_created_by_a_superuser_or_a_member_of_the_owner_is_fine(conn, alice_parts):
    alice, mallory = alice_parts
    conn.execute(f"SET ROLE {alice}")
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', chunk_tokens => 16, build_index => false)")
    conn.execute("RESET ROLE")
    conn.execute("CREATE TABLE parts_late PARTITION OF parts FOR VALUES FROM (200) TO (300)")  # the superuser's
    assert conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'parts_late_chunks'").fetchone() \
        == (alice,)  # chunks are the table owner's
    like_parts(conn, "archive", 300, 301)
    conn.execute(f"ALTER TABLE archive OWNER TO {mallory}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="archive"):  # mallory cannot act as alice
        conn.execute("ALTER TABLE parts ATTACH PARTITION archive FOR VALUES FROM (300) TO (400)")
    assert not attached(conn, "archive")
    conn.execute(f"SET ROLE {alice}")
    conn.execute("INSERT INTO parts VALUES (1, %s), (201, 'in the superuser''s partition')", (LONG[:300],))
    conn.execute("RESET ROLE")
    assert pending(conn) == 0


def test_a_queued_table_attached_under_a_table_without_embedding_is_warned_about(conn):
    """Rows written through the new parent fire only the partition's row triggers: none would be queued."""
    conn.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    conn.execute("CALL pgbert.enable_embedding('docs', 'body', strategy => 'queue', build_index => false)")
    conn.execute("CREATE TABLE archive (LIKE docs INCLUDING DEFAULTS) PARTITION BY RANGE (id)")
    warnings = []
    conn.add_notice_handler(lambda d: warnings.append(d.message_primary))
    conn.execute("ALTER TABLE archive ATTACH PARTITION docs FOR VALUES FROM (0) TO (1000)")
    assert any("archive are not queued" in w for w in warnings), warnings


def test_a_disabled_trigger_stays_disabled_on_every_partition(conn):
    make_parts(conn)
    conn.execute("CALL pgbert.enable_embedding('parts', 'body', build_index => false)")
    conn.execute("ALTER TABLE parts DISABLE TRIGGER pgbert_batch_write")
    conn.execute("SELECT pgbert.reinstall_triggers()")
    disabled = conn.execute("SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'pgbert_batch_write' "
                            "AND tgenabled = 'D' ORDER BY 1").fetchall()
    assert [r[0] for r in disabled] == ["parts", "parts_high", "parts_high_0", "parts_high_1", "parts_low"]
