# Shared helpers for pgbert's shell scripts (sourced, not executed).
set -euo pipefail

PGBERT_ROOT="${PGBERT_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die()  { printf 'pgbert: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root for: $* (run as root or install sudo)"; fi
}

# The Debian codename (bookworm, trixie, ...).
debian_codename() { . /etc/os-release; echo "${VERSION_CODENAME:-unknown}"; }
