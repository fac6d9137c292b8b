"""The house rules, checked: small SQL files and functions, frozen migrations that never call sql/, ruff."""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SQL_FILES = sorted(glob.glob(os.path.join(ROOT, "sql", "*.sql")))
REVISIONS = sorted(glob.glob(os.path.join(ROOT, "migrations", "versions", "*.py")))

# sha256 of every shipped revision. A shipped revision never changes: add a new one instead.
# (A new revision is added here in the commit that ships it.)
FROZEN = {
    "0001_runtime.py": "96d155f0fb1b08c7365585fb18c32953a445efac9fbc1e991ac2b8a1401b8187",
    "0002_embedded_tables.py": "bd84ed4b5055246b600475b28a07e3ce63c5aac42013e045d449d2992e037429",
    "0003_roles.py": "f03308c2cf4463d567694e3fb78353e68192a47c1ca05dacb02bd87cb7aab8fd",
    "0004_trust_round_2.py": "717559672c1a7304d7828fc4f7fef7ab271829d77d398a0e775d1c0fcccb65fc",
    "0005_lexical_search.py": "04193143ae6d8dfe0c92433ab3456c22e8475495a3cb60f10f37e387e55e95f6",
    "0006_runtime_settings.py": "0908638336ea54891540d3617e485f417c015251da6e6d9339b718ecf1df213e",
    "0007_shared_weights.py": "d0a64d01f51b7adab3d9e9d581ddeab7ab63abda5062ec6b8bcd6bed70609b57",
    "0008_chunks.py": "d786b946f5f898915920dce5e44c6815a62e551208c06a2b7a69703f4595f730",
    "0009_model_host.py": "fdbc57ba82275a98b533f4d00c079fc2547cc9ac16b9507debfa30da03662deb",
    "0010_trust_round_3.py": "9bc6519df42695d2e8231df75718a3a36fa4d5f9ec5aebe1837a157eba7ad9dd",
    "0011_queue.py": "d1fe5ac38d826a0e7ffa1452603124f416930e7f5250b6ee670c40436033dbd2",
    "0012_named_models.py": "40548be58582eccda8976753145667905f97fe7c66a1179e23f720304e89b85b",
    "0013_model_change_queue_chunks.py": "e363924f274854860865369e31a87eb9401d0f89a3ec758992631048c085d358",
    "0014_parallel_safe_named_embed.py": "2e93fef65bafc69889b299a46e7fac093035c17ff4e354d64134264104c0f731",
}

ROUTINE = re.compile(r"^CREATE (?:OR REPLACE )?(?:FUNCTION|PROCEDURE) ([\w.]+)\((.*?)^AS (\$\w*\$).*?\3", re.M | re.S)


def sql_routines():
    for path in SQL_FILES:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for match in ROUTINE.finditer(text):
            # name/number of arguments: overloads (search(text, int) and search(text, int, regclass)) differ
            name = f"{match.group(1)}/{match.group(2).count(',') + 1}"
            yield os.path.basename(path), name, match.group(0).count("\n") + 1


def test_sql_files_stay_small():
    lines = {}
    for path in SQL_FILES:
        with open(path, encoding="utf-8") as f:
            lines[os.path.basename(path)] = len(f.readlines())
    long = {name: n for name, n in lines.items() if n > 250}
    assert long == {}


def test_sql_routines_stay_short():
    routines = list(sql_routines())
    assert len(routines) > 20  # the pattern still finds them
    assert [(f, name, n) for f, name, n in routines if n > 60] == []


def test_every_sql_routine_is_defined_once():
    names = [name for _, name, _ in sql_routines()]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_shipped_revisions_are_frozen():
    shipped = {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest() for p in REVISIONS}
    assert set(shipped) == set(FROZEN), "a new revision: add its hash to FROZEN"
    assert {name: h for name, h in shipped.items() if FROZEN[name] != h} == {}


def test_revisions_never_call_the_re_applied_sql_functions():
    """sql/ is re-applied at head and changes under old revisions: a revision may drop them, never call them."""
    defined = {name.split("/")[0] for _, name, _ in sql_routines()}
    calls = []
    for path in REVISIONS:
        for line in open(path, encoding="utf-8"):
            for name in defined:
                if re.search(r"\b(SELECT|CALL|PERFORM|FROM|EXECUTE FUNCTION)\s+" + re.escape(name) + r"\s*\(", line):
                    calls.append((os.path.basename(path), name))
    assert calls == []


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=os.path.dirname(sys.executable)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed: the test extra installs it")
    out = subprocess.run([ruff, "check", "--no-cache", ROOT], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:]
