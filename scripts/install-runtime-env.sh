#!/usr/bin/env bash
# The Python environment PL/Python imports from: a venv built with the interpreter that the installed
# PL/Python embeds, holding pgbert's runtime package and only its runtime dependencies
# (numpy, onnxruntime, tokenizers, openvino: no torch). Shared by scripts/bootstrap.sh and Dockerfile.postgres.
#   usage: install-runtime-env.sh VENV_DIR [PG_CONFIG]
# Prints the venv's site-packages path on stdout.
source "$(dirname "$0")/lib.sh"

venv="${1:?usage: install-runtime-env.sh VENV_DIR [PG_CONFIG]}"
pg_config="${2:-pg_config}"

# The interpreter PL/Python embeds: read libpythonX.Y off plpython3.so.
plpython="$("$pg_config" --pkglibdir)/plpython3.so"
[ -f "$plpython" ] || die "PL/Python is not installed ($plpython missing)"
pyver=$(ldd "$plpython" | sed -n 's/.*libpython\(3\.[0-9]*\).*/\1/p' | head -1)
[ -n "$pyver" ] || die "cannot tell which Python $plpython embeds"
python="/usr/bin/python$pyver"
[ -x "$python" ] || die "$python (embedded by PL/Python) not found"

stamp="$venv/.pgbert-stamp"
want="$pyver $(cat "$PGBERT_ROOT/pyproject.toml" "$PGBERT_ROOT"/plpython/pgbert_runtime/*.py | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    info "PL/Python runtime environment up to date ($venv, Python $pyver)" 
else
    step "PL/Python runtime environment: $venv (Python $pyver)"
    if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
        as_root apt-get install -y -qq "python$pyver-venv" >/dev/null 2>&1 || as_root apt-get install -y -qq python3-venv >/dev/null
    fi
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' >&2 || true
    # Non-editable: the server must not read the source tree (it may be unreachable, e.g. under /root).
    # The version number does not change with the code, so drop the old copy first: one build, one install.
    "$venv/bin/pip" uninstall -q -y pgbert >/dev/null 2>&1 || true
    "$venv/bin/pip" install -q --disable-pip-version-check --no-cache-dir "$PGBERT_ROOT[openvino]" 2>&1 \
        | grep -v '^WARNING: Location' >&2 || true
    "$venv/bin/python" -c 'import pgbert_runtime, onnxruntime, tokenizers, numpy' || die "runtime environment is incomplete"
    echo "$want" > "$stamp"
fi
chmod -R a+rX "$venv"
"$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
