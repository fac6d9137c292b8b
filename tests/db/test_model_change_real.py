"""Issue 22's targets with the real models: bench/model_change.py's run at its real size (2,000 rows moved from
all-mpnet-base-v2 to all-MiniLM-L6-v2 under 4 writing and 4 searching clients), asserted."""
import os
import sys

import pytest

from helpers import ROOT, db_url

sys.path.insert(0, os.path.join(ROOT, "bench"))
import model_change  # noqa: E402

pytestmark = pytest.mark.slow  # real weights, 2,000 rows: `make test`, not `make check`


def test_a_real_table_changes_model_while_written_and_searched(conn, default_bundle, minilm_bundle):
    conn.execute("SELECT pgbert.add_model(%s, %s)", (model_change.OLD, default_bundle))  # beside the tiny default
    conn.execute("SELECT pgbert.add_model(%s, %s)", (model_change.NEW, minilm_bundle))
    r = model_change.change_under_load(db_url(conn.info.dbname), rows=2000, queries=50)
    print(model_change.report(r))
    assert r["search_errors"] == [] and r["short_results"] == [] and r["write_errors"] == []
    assert r["search_calls"] > 0 and r["inserted_during"] > 0 and r["updated_during"] > 0  # the load was there
    assert (r["switched_to"], r["dims"]) == (model_change.NEW, (384, 384))
    assert r["rows_checked"] == r["keys_written"] and r["wrong_vectors"] == [] and r["rows_without_new_vector"] == 0
    assert r["recall_at_10"] >= 0.95
    # The backfill holds row locks only, committed batch by batch: search() answered meanwhile.
    backfill = r["steps"]["backfill"]
    assert backfill["searches"] > 0
    assert model_change.MODES.index(backfill["mode"] or "AccessShareLock") <= \
        model_change.MODES.index("RowExclusiveLock"), backfill
