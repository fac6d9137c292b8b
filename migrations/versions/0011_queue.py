"""The embedding queue: strategies 'queue' and 'auto', pgbert.embedding_queue, the pgbert_worker role.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

- pgbert.embedding_queue: one row per table row waiting for its vector (written only by pgbert's own
  SECURITY DEFINER code: the enqueue trigger, the claim and store steps of the workers).
- pgbert.queue_batches: one row per embedded batch (when, how many rows), for queue_status's rate and last success.
- The registry's strategy may also be 'queue' or 'auto'.
- Role pgbert_worker runs the queue (sql/99_privileges.sql grants it what it runs).
- Settings queue_max_attempts, queue_retry_seconds, auto_inline_tokens.

The downgrade refuses while a table uses 'queue' or 'auto' or rows wait in the queue.

Frozen once released: never edit a revision that has shipped; add a new one (tests/unit/test_layout.py).
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SETTINGS = (
    ("queue_max_attempts", "5", "a queued row whose embedding failed this many times lands in "
                                "pgbert.embedding_errors (pgbert.retry_failed(table) puts it back)"),
    ("queue_retry_seconds", "10", "a failed queued row is retried after this many seconds, doubled at every "
                                  "further failure (at most an hour)"),
    ("auto_inline_tokens", "1024", "strategy 'auto': a statement's rows are embedded in it while their tokens "
                                   "fit this budget; the rest go to the queue"),
)

# What sql/ (45-48_queue*.sql) creates that reads these tables: gone with them on a downgrade. (The helpers
# that the rest of sql/ calls stay: they are reached only for tables using the queue, which block a downgrade.)
QUEUE_OBJECTS = (
    "VIEW pgbert.queue_status", "VIEW pgbert.embedding_errors",
    "PROCEDURE pgbert.process_queue(integer, double precision, integer, bigint)",
    "PROCEDURE pgbert.retry_failed(regclass)", "PROCEDURE pgbert.set_strategy(regclass, text)",
    "FUNCTION pgbert.change_strategy(regclass, text)", "FUNCTION pgbert.requeue_failed(regclass)",
    "FUNCTION pgbert.queue_trigger()", "FUNCTION pgbert.claim_batch(integer)",
    "FUNCTION pgbert.compute_claimed(bigint[])",
    "FUNCTION pgbert.store_claimed(bigint[], xid[], vector[], jsonb[])", "FUNCTION pgbert.fail_claimed(bigint[], text)",
    "FUNCTION pgbert.release_claims()", "FUNCTION pgbert.queue_wait_seconds()", "FUNCTION pgbert._work_claimed()",
    "FUNCTION pgbert._store_queued(oid, text[], xid[], vector[], jsonb[])", "FUNCTION pgbert._release(bigint[])",
    "FUNCTION pgbert._queue_counts()", "FUNCTION pgbert._store_rows(oid, bigint[], text[], xid[], vector[], jsonb[])",
)


def upgrade() -> None:
    op.execute("""
        CREATE TABLE pgbert.embedding_queue (
            id                    bigserial PRIMARY KEY,
            relid                 oid NOT NULL,
            row_key               text NOT NULL,
            queued_at             timestamptz NOT NULL DEFAULT clock_timestamp(),
            attempts              integer NOT NULL DEFAULT 0,
            not_before            timestamptz,
            claimed_pid           integer,
            claimed_backend_start timestamptz,
            last_error            text,
            failed_at             timestamptz,
            UNIQUE (relid, row_key)
        )""")
    # the claim's order: the oldest waiting row first (of any table, then of that table)
    op.execute("CREATE INDEX embedding_queue_waiting ON pgbert.embedding_queue (queued_at) WHERE failed_at IS NULL")
    op.execute("""
        CREATE TABLE pgbert.queue_batches (
            relid       oid NOT NULL,
            finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            rows        integer NOT NULL
        )""")
    op.execute("CREATE INDEX queue_batches_recent ON pgbert.queue_batches (relid, finished_at)")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP CONSTRAINT embedded_tables_strategy_check, ADD CONSTRAINT "
               "embedded_tables_strategy_check CHECK (strategy IN ('batch', 'row', 'queue', 'auto'))")
    op.execute("""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbert_worker') THEN
                CREATE ROLE pgbert_worker NOLOGIN;
            END IF;
        END $$""")
    op.execute("GRANT pgbert_worker TO pgbert_admin")  # an admin may run the queue too
    for name, value, description in SETTINGS:
        op.execute(f"INSERT INTO pgbert.settings (name, value, description) VALUES ('{name}', '{value}', "
                   f"$${description}$$) ON CONFLICT (name) DO NOTHING")


def downgrade() -> None:
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pgbert.embedded_tables WHERE strategy IN ('queue', 'auto'))
               OR EXISTS (SELECT 1 FROM pgbert.embedding_queue) THEN
                RAISE EXCEPTION 'pgbert: cannot downgrade below 0011: tables use the embedding queue: %',
                      (SELECT string_agg(DISTINCT relid::regclass::text, ', ') FROM (
                           SELECT relid::oid FROM pgbert.embedded_tables WHERE strategy IN ('queue', 'auto')
                           UNION ALL SELECT relid FROM pgbert.embedding_queue) t)
                      USING HINT = 'Drain the queue with pgbert.process_queue(), move each table to another '
                                   'strategy with pgbert.set_strategy(table, ''batch''), then downgrade again.';
            END IF;
        END $$""")
    for obj in QUEUE_OBJECTS:
        kind, name = obj.split(" ", 1)
        op.execute(f"DROP {kind} IF EXISTS {name}")
    op.execute("""
        DO $$ DECLARE fn regprocedure; BEGIN  -- tables' store functions (a table that left the queue keeps its own)
            FOR fn IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'pgbert'::regnamespace
                                                    AND p.proname LIKE 'store\\_queued\\_%' LOOP
                EXECUTE format('DROP FUNCTION %s', fn);
            END LOOP;
        END $$""")
    op.execute("DROP TABLE pgbert.queue_batches, pgbert.embedding_queue")
    op.execute("ALTER TABLE pgbert.embedded_tables DROP CONSTRAINT embedded_tables_strategy_check, ADD CONSTRAINT "
               "embedded_tables_strategy_check CHECK (strategy IN ('batch', 'row'))")
    names = ", ".join(f"'{name}'" for name, _, _ in SETTINGS)
    op.execute(f"DELETE FROM pgbert.settings WHERE name IN ({names})")
    # The role stays when other databases' pgbert use it (roles are cluster-wide), as 0003's roles do.
    op.execute("""
        DO $$ BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgbert_worker') THEN
                DROP OWNED BY pgbert_worker;
                DROP ROLE pgbert_worker;
            END IF;
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'pgbert: keeping role pgbert_worker: other databases still use it';
        END $$""")
