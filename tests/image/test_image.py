"""Dockerfile.postgres built and run for real, with podman as the README's "Docker" section says.

Builds the image (base made by scripts/install-podman.sh with debootstrap: no registry here), checks that
it carries no build tools, starts a container, connects over TCP with a password, embeds, inserts and
searches, starts a new container on the same volume and finds the rows, and stops it with SIGTERM. Every
container and volume is removed afterwards, also when a step fails.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from pgbert.paths import ROOT

pytestmark = pytest.mark.image

IMAGE = "localhost/pgbert-postgres:test"
EXPORT_IMAGE = "localhost/pgbert-postgres:test-export"  # the export stage, tagged so that its cache is kept
LABEL = "pgbert-test=image"  # on every image, container and volume made here: a run removes what earlier ones left
# The README's commands, word for word (test_readme_shows_the_commands_the_test_runs checks).
BUILD = ["podman", "build", "--format", "docker", "--isolation", "chroot", "--network", "host",
         "-f", "Dockerfile.postgres"]
RUN = ["podman", "--runtime", "runc", "run", "--network", "host",
       "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
USER, DATABASE, PASSWORD = "app", "appdb", "not-the-default-secret"
TEXTS = ["I love natural language processing", "PostgreSQL is a database", "The weather is nice today"]


def podman(*args, check=True, timeout=120):
    out = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"podman {' '.join(args)}: {out.stderr}"
    return out


def remove_leftovers():
    for container in podman("ps", "-a", "-q", "--filter", f"label={LABEL}").stdout.split():
        podman("rm", "-f", "-t", "0", container, check=False)
    for volume in podman("volume", "ls", "-q", "--filter", f"label={LABEL}").stdout.split():
        podman("volume", "rm", "-f", volume, check=False)


def host_pip_options() -> list[str]:
    """This machine's pip setup, handed to the build as the README says: the CA bundle (a TLS-intercepting
    proxy signs PyPI's certificates here) and the folder of local wheels that holds the CPU torch."""
    def setting(name):
        value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if value is None:
            got = subprocess.run([sys.executable, "-m", "pip", "config", "get", f"global.{name}"],
                                 capture_output=True, text=True)
            value = got.stdout.strip() if got.returncode == 0 else None
        return value

    options = []
    cert = setting("cert")
    if cert and os.path.isfile(cert):
        options += ["--volume", f"{cert}:/run/pip-cert.pem:ro", "--build-arg", "PIP_CERT=/run/pip-cert.pem"]
    links = setting("find-links")
    if links and os.path.isdir(links):
        options += ["--volume", f"{links}:{links}:ro", "--build-arg", f"PIP_FIND_LINKS={links}",
                    "--build-arg", "TORCH_INDEX_URL="]
    return options


@pytest.fixture(scope="module")
def image():
    if os.geteuid() != 0:
        pytest.skip("podman builds here run as root (as CI does)")
    made = subprocess.run([os.path.join(ROOT, "scripts", "install-podman.sh")], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    base = made.stdout.split()[-1]
    remove_leftovers()
    started = time.monotonic()
    for target in (["--target", "export", "-t", EXPORT_IMAGE], ["-t", IMAGE]):
        built = subprocess.run([*BUILD, "--build-arg", f"BASE={base}", *host_pip_options(), "--label", LABEL,
                                *target, "."], cwd=ROOT, capture_output=True, text=True, timeout=3600)
        assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    print(f"\nimage built in {time.monotonic() - started:.0f} s")
    # Earlier builds' images (GBs each) lost their tags to these two: remove them.
    podman("image", "prune", "-f", "--filter", f"label={LABEL}", timeout=600)
    yield IMAGE
    remove_leftovers()


@pytest.fixture
def volume(image):
    name = f"pgbert-test-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", "--label", LABEL, name)
    yield name
    for container in podman("ps", "-a", "-q", "--filter", f"volume={name}").stdout.split():
        podman("rm", "-f", "-t", "0", container, check=False)
    podman("volume", "rm", "-f", name, check=False)


def free_port() -> int:
    """A port nothing listens on, never 5432 nor the dev cluster's 54329: the containers use the host's network."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in (5432, 54329):
            return port


def connect(port, password=PASSWORD):
    return psycopg.connect(host="127.0.0.1", port=port, user=USER, password=password, dbname=DATABASE,
                           autocommit=True, connect_timeout=5)


def start(image, volume, port) -> tuple[str, float]:
    """Start a container on the volume; return its name and the seconds until it accepts a TCP connection
    (the server listens on TCP only once the schema is installed)."""
    name = f"pgbert-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    subprocess.run([*RUN, "-d", "--name", name, "--label", LABEL, "-e", f"POSTGRES_PASSWORD={PASSWORD}",
                    "-e", f"POSTGRES_USER={USER}", "-e", f"POSTGRES_DB={DATABASE}", "-e", f"PGPORT={port}",
                    "-v", f"{volume}:/var/lib/postgresql/data", image], check=True, capture_output=True, text=True)
    while True:
        try:
            connect(port).close()
            return name, time.monotonic() - started
        except psycopg.OperationalError:
            running = podman("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
            assert running == "true", f"container exited:\n{logs(name)[-4000:]}"
            assert time.monotonic() - started < 600, f"not ready after 600 s:\n{logs(name)[-4000:]}"
            time.sleep(1)


def logs(name) -> str:
    out = podman("logs", name)
    return out.stdout + out.stderr


def stopped(name, *stop) -> tuple[int, str]:
    podman(*stop, name)
    code = int(podman("wait", name, timeout=60).stdout.strip())
    return code, logs(name)


def test_readme_shows_the_commands_the_test_runs():
    readme = open(os.path.join(ROOT, "README.md")).read()
    docker = readme.split("\n## Docker\n")[1].split("\n## ")[0]
    for words in (BUILD, RUN):
        assert " ".join(words) in docker
    # every build argument and every variable the entrypoint reads is documented
    dockerfile = open(os.path.join(ROOT, "Dockerfile.postgres")).read()
    entrypoint = open(os.path.join(ROOT, "docker", "entrypoint.sh")).read()
    names = set(re.findall(r"^ARG (\w+)", dockerfile, re.M))
    names |= set(re.findall(r"\$\{?(POSTGRES_\w+|PGPORT)", entrypoint))
    assert len(names) > 8
    assert sorted(n for n in names if f"`{n}" not in docker) == []


@pytest.mark.slow
def test_image_carries_no_build_tools(image):
    script = r"""
        for tool in gcc cc c++ clang make; do command -v "$tool"; done
        build_packages='postgresql-server-dev-[0-9]+|gcc(-[0-9]+)?|clang(-[0-9]+)?|libpq-dev'
        dpkg-query -W -f '${binary:Package} ${db:Status-Status}\n' | grep -E "^($build_packages)(:\w+)? .*installed$"
        /opt/pgbert/runtime/bin/python -c 'import torch' 2>/dev/null && echo torch
        ls -d /tmp/pgbert-build /opt/pgbert/src/build /root/.cache /usr/include/postgresql \
            /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_Packages 2>/dev/null
        true"""
    found = subprocess.run([*RUN, "--rm", image, "bash", "-c", script], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []
    # and what the image is for is there
    script = """. /opt/pgbert/env && ls $PG_BIN/postgres $PG_BIN/../lib/vector.so $PG_BIN/../lib/plpython3.so \
                && /opt/pgbert/runtime/bin/python -c 'import onnxruntime, tokenizers, pgbert_runtime' \
                && ls /opt/pgbert/models/default/model.onnx"""
    present = subprocess.run([*RUN, "--rm", image, "bash", "-c", script], capture_output=True, text=True)
    assert present.returncode == 0, present.stdout + present.stderr


def server_log(logs: str) -> str:
    """The container's log without the model host's lines (it may log its exit after the server's last line)."""
    return "\n".join(line for line in logs.splitlines() if "LOG:  pgbert model host:" not in line).rstrip()


@pytest.mark.slow
def test_container_serves_embeddings_keeps_its_data_and_stops_cleanly(image, volume):
    port = free_port()
    first, first_start = start(image, volume, port)
    with connect(port) as conn:
        assert conn.execute("SELECT vector_dims(embed(%s))", (TEXTS[0],)).fetchone()[0] == 768
        conn.execute("INSERT INTO text_embeddings (text) SELECT unnest(%s::text[])", (TEXTS,))
        hits = conn.execute("SELECT text FROM search('natural language processing', 3)").fetchall()
        assert [h[0] for h in hits][0] == TEXTS[0]
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(port, password="wrong").close()
        # `podman stop` while a client is still connected: the image's stop signal is a fast shutdown
        code, first_logs = stopped(first, "stop", "-t", "30")
    assert code == 0, first_logs[-4000:]
    assert "initialising /var/lib/postgresql/data" in first_logs
    assert server_log(first_logs).endswith("database system is shut down")
    podman("rm", first)

    second, restart = start(image, volume, port)
    with connect(port) as conn:
        assert conn.execute("SELECT count(*) FROM text_embeddings WHERE embedding IS NOT NULL").fetchone()[0] == 3
        assert conn.execute("SELECT text FROM search('weather', 1)").fetchone()[0] == TEXTS[2]
    # the README's schema upgrade for a newer image on an old volume: idempotent on the same image
    migrated = podman("exec", second, "pgbert-entrypoint", "migrate", check=False)
    assert migrated.returncode == 0 and "pgbert: applied" in migrated.stdout + migrated.stderr, migrated.stderr
    with connect(port) as conn:
        assert conn.execute("SELECT count(*) FROM search('weather', 5)").fetchone()[0] == 3
    # The model host (started by the first embed()) is tini's child: killed as the OOM killer would, it is
    # replaced by the next call, and the postmaster restarts no connection.
    found = "for p in /proc/[0-9]*; do grep -qa 'pgbert_runtime[.]host' $p/cmdline && echo ${p#/proc/} " \
            "$(awk '/^PPid/ {print $2}' $p/status); done; cat /proc/1/comm"
    listing = podman("exec", second, "bash", "-c", found).stdout.split()
    assert len(listing) == 3 and listing[1:] == ["1", "tini"], listing  # host pid, its parent, PID 1's name
    podman("exec", second, "bash", "-c", f"kill -KILL {listing[0]}")
    with connect(port) as conn:
        assert conn.execute("SELECT vector_dims(embed('after the host was killed'))").fetchone()[0] == 768
    code, second_logs = stopped(second, "kill", "--signal", "TERM")  # tini (PID 1) passes SIGTERM on
    assert code == 0, second_logs[-4000:]
    assert "initialising" not in second_logs and "holds a cluster already" in second_logs
    assert "database system was shut down at" in second_logs  # the first stop was clean: no recovery
    assert "received smart shutdown request" in second_logs
    assert "terminating any other active server processes" not in second_logs  # no crash restart
    assert server_log(second_logs).endswith("database system is shut down")
    print(f"\nfirst start {first_start:.1f} s (initdb + schema), restart {restart:.1f} s")
