#!/usr/bin/env bash
# Everything below the `pgbert` command, idempotent: system packages and pgvector, the state folder
# (.pgbert, reachable for the postgres user), the PL/Python runtime environment and the tools venv.
source "$(dirname "$0")/lib.sh"
cd "$PGBERT_ROOT"
started=$SECONDS

major=$("$PGBERT_ROOT/scripts/install-system.sh" | tail -1)
pg_bin=/usr/lib/postgresql/$major/bin

# --- state folder: must be reachable for the server's user ------------------------------------------
state="$PGBERT_ROOT/.pgbert"
if [ -n "${PGBERT_HOME:-}" ]; then
    mkdir -p "$PGBERT_HOME"; [ -e "$state" ] || ln -s "$PGBERT_HOME" "$state"
elif [ "$(id -u)" = 0 ] && [ ! -e "$state" ] && ! runuser -u postgres -- test -x "$PGBERT_ROOT"; then
    # e.g. a clone under /root (mode 700): keep what the server reads in a place it can read.
    alt="/var/lib/pgbert/$(basename "$PGBERT_ROOT")-$(printf %s "$PGBERT_ROOT" | sha256sum | cut -c1-8)"
    step "state folder: $PGBERT_ROOT is not reachable for user postgres; using $alt (linked as .pgbert)"
    mkdir -p "$alt"; ln -s "$alt" "$state"
fi
mkdir -p "$state/models"
real_state=$(realpath "$state")
chmod 755 "$real_state" "$real_state/models"
if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$real_state"; then
    die "$real_state is not reachable for user postgres; set PGBERT_HOME to a folder it can read (e.g. /var/lib/pgbert/x)"
fi

# --- PL/Python runtime environment --------------------------------------------------------------------
site=$("$PGBERT_ROOT/scripts/install-runtime-env.sh" "$real_state/runtime" "$pg_bin/pg_config" | tail -1)

# --- tools environment (export, migrations, tests): never read by the server -------------------------
tools_python=$(command -v python3.11 || command -v python3)
stamp=.venv/.pgbert-stamp
want="$($tools_python --version) $(sha256sum pyproject.toml | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    info "tools environment up to date (.venv)"
else
    step "tools environment: .venv ($($tools_python --version); torch, transformers, optimum, alembic, pytest)"
    [ -x .venv/bin/python ] || "$tools_python" -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
    # torch first, pinned: the local CPU wheel (an unpinned torch would download a multi-GB CUDA build).
    .venv/bin/pip install --disable-pip-version-check --progress-bar on "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' | grep -Ev '^(Requirement already|Collecting|Using cached|Looking in)' >&2 || true
    .venv/bin/pip install -q --disable-pip-version-check -e ".[client,export,test,bench]" 2>&1 | grep -v '^WARNING: Location' >&2 || true
    .venv/bin/python -c 'import torch, transformers, optimum.exporters.onnx, alembic, psycopg2, pytest_postgresql' \
        || die "tools environment is incomplete; see pip's output above"
    echo "$want" > "$stamp"
fi

cat > "$real_state/env" <<ENV
PG_MAJOR=$major
PG_BIN=$pg_bin
RUNTIME_SITE=$site
ENV
info "bootstrap done in $((SECONDS - started))s (PostgreSQL $major, runtime $site)"
