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


def test_db_url_and_status_report_the_port_the_cluster_was_made_with(tmp_path):
    """Issue 20: `PGBERT_PORT=55434 make demo`, then a plain `pgbert db url` / `db status` say 55434 (the port
    is read from the cluster's postgresql.auto.conf). A stopped stand-in cluster in a temporary PGBERT_HOME."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "PG_VERSION").write_text("15\n")
    (data / "postgresql.auto.conf").write_text("port = 55434\nlisten_addresses = ''\n")
    env = {k: v for k, v in os.environ.items() if k != "PGBERT_PORT"} | {"PGBERT_HOME": str(tmp_path)}
    url = run(*PGBERT, "db", "url", env=env)
    assert url.returncode == 0 and url.stderr == "", url.stderr
    assert url.stdout.strip().endswith("&port=55434")
    status = run(*PGBERT, "db", "status", env=env)
    assert status.returncode == 3 and "cluster: stopped" in status.stdout, status.stdout + status.stderr
    assert "port: 55434" in status.stdout


def test_another_pgbert_port_than_the_running_clusters_is_ignored_and_said():
    """The running cluster's port wins (its URL works); stderr says PGBERT_PORT was ignored and how to move it."""
    from helpers import CLUSTER

    other = str(CLUSTER.port + 7)
    env = {**os.environ, "PGBERT_PORT": other}
    url = run(*PGBERT, "db", "url", env=env)
    assert url.returncode == 0 and url.stdout.strip() == CLUSTER.url()
    assert f"PGBERT_PORT={other} is ignored" in url.stderr and "pgbert db stop" in url.stderr
    status = run(*PGBERT, "db", "status", env=env)
    assert status.returncode == 0 and "cluster: running" in status.stdout
    assert f"port: {CLUSTER.port}" in status.stdout and "is ignored" in status.stderr


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
