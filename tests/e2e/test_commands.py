"""The commands a user types: `pgbert db ...`, psql against the installed database, the image's lint."""
import os
import re
import subprocess
import sys

import pytest

from pgbert.paths import ROOT

PGBERT = [sys.executable, "-m", "pgbert.cli"]


def run(*argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, **kw)


def test_db_url_reaches_the_installed_database_with_psql():
    url = run(*PGBERT, "db", "url").stdout.strip()
    assert url.startswith("postgresql://") and "port=" in url
    out = run("psql", url, "-X", "-tAc", "SELECT vector_dims(embed('I love natural language processing')), "
                                          "pg_typeof(embed('x'))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "768|vector"


def test_db_status_reports_running():
    out = run(*PGBERT, "db", "status")
    assert out.returncode == 0 and "running" in out.stdout


def test_export_error_is_one_clear_line(tmp_path):
    out = run(*PGBERT, "export", "no-such-org/no-such-model", "-o", str(tmp_path / "b"),
              env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 1
    assert "pgbert export: cannot fetch 'no-such-org/no-such-model'" in out.stderr
    assert "Traceback" not in out.stderr


def test_dockerfile_passes_hadolint():
    hadolint = os.path.join(os.path.dirname(sys.executable), "hadolint")
    out = run(hadolint, "Dockerfile.postgres")
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_shares_the_tested_install_step():
    dockerfile = open(os.path.join(ROOT, "Dockerfile.postgres")).read()
    assert "scripts/install-runtime-env.sh" in dockerfile
    # every file the image copies exists in the repository
    for path in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.M):
        for item in path.split():
            assert os.path.exists(os.path.join(ROOT, item)), item


def test_every_command_is_documented_in_the_readme():
    from pgbert.cli import build_parser

    readme = open(os.path.join(ROOT, "README.md")).read()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in commands.items():
        assert f"pgbert {name}" in readme or f"make {name}" in readme, name
        for action in sub._actions:
            if action.dest == "action":
                for choice in action.choices:
                    assert choice in readme, f"pgbert {name} {choice}"


@pytest.mark.slow
def test_demo_loads_searches_and_says_how_to_connect():
    """The README's main command after set-up: `pgbert demo` (make demo = bootstrap + this)."""
    out = run(*PGBERT, "demo", timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "SELECT * FROM search('a game about ancient wars', 3);" in out.stdout
    assert "0 A.D." in out.stdout.split("ancient wars', 3);")[1].split("SELECT")[0]  # the right package first
    assert 'psql "postgresql://' in out.stdout
