#!/usr/bin/env bash
# System packages for pgbert: PostgreSQL server, PL/Python, headers, pgvector, pg_cron.
# Idempotent; prints the chosen PostgreSQL major version on stdout (last line).
# Shared by scripts/bootstrap.sh (tested) and documented for other hosts.
source "$(dirname "$0")/lib.sh"

PGVECTOR_SRC_SUITE="${PGVECTOR_SRC_SUITE:-trixie}"   # a Debian suite that has pgvector's source package
CACHE="${PGBERT_CACHE:-$PGBERT_ROOT/.cache}"
export DEBIAN_FRONTEND=noninteractive

installable() { # package -> true when apt has a candidate for it
    local c; c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    [ -n "$c" ] && [ "$c" != "(none)" ]
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed'; }

apt_updated=0
apt_update_once() { [ $apt_updated = 1 ] || { step "apt-get update"; as_root apt-get update -qq; apt_updated=1; }; }

# 1. Pick the PostgreSQL major: an installed server whose PL/Python is installable, newest first;
#    otherwise the release's default. (Debian 12: 15; Debian 13: 17.)
pick_pg_major() {
    local v
    if [ -n "${PGBERT_PG_MAJOR:-}" ]; then echo "$PGBERT_PG_MAJOR"; return; fi
    for v in $(ls /usr/lib/postgresql 2>/dev/null | sort -rn); do
        if installed "postgresql-plpython3-$v" || installable "postgresql-plpython3-$v"; then echo "$v"; return; fi
    done
    for v in 18 17 16 15; do
        if installable "postgresql-plpython3-$v"; then echo "$v"; return; fi
    done
    return 1
}

need_pkgs() { local p missing=(); for p in "$@"; do installed "$p" || missing+=("$p"); done; echo "${missing[@]:-}"; }

major=$(pick_pg_major || true)
if [ -z "$major" ]; then apt_update_once; major=$(pick_pg_major) || die "no PostgreSQL with PL/Python is installable from apt here"; fi
step "PostgreSQL $major ($(debian_codename))"

# pgbouncer: the pooler the README recommends, tested in front of the cluster
pkgs="postgresql-$major postgresql-plpython3-$major postgresql-server-dev-$major make gcc pgbouncer"
missing=$(need_pkgs $pkgs)
[ -z "$missing" ] || apt_update_once
# pg_cron: one way to run the embedding queue (README, "pg_cron"); the cluster preloads it when it is there.
# Optional: without it in apt's lists (no apt-get update just for it), the queue runs with `pgbert worker`.
cron_pkg="postgresql-$major-cron"
if installed "$cron_pkg" || installable "$cron_pkg"; then
    pkgs="$pkgs $cron_pkg"; missing=$(need_pkgs $pkgs)
else
    info "$cron_pkg is not in apt's lists: no pg_cron (run apt-get update, then this script, to add it)"
fi
if [ -n "$missing" ]; then
    apt_update_once
    step "apt-get install $missing"
    as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    info "already installed: $pkgs"
fi
PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config

# 2. pgvector: the release's package when there is one, else a portable build of Debian's source package.
if [ -f "$($PG_CONFIG --sharedir)/extension/vector.control" ]; then
    info "pgvector already installed ($(grep default_version "$($PG_CONFIG --sharedir)/extension/vector.control" | cut -d"'" -f2))"
elif installable "postgresql-$major-pgvector" || { apt_update_once; installable "postgresql-$major-pgvector"; }; then
    step "apt-get install postgresql-$major-pgvector"
    as_root apt-get install -y -qq "postgresql-$major-pgvector" >/dev/null
else
    step "building pgvector from Debian's $PGVECTOR_SRC_SUITE source package"
    work="$CACHE/pgvector"; mkdir -p "$work/lists/partial"
    printf 'deb-src http://deb.debian.org/debian %s main\n' "$PGVECTOR_SRC_SUITE" > "$work/src.list"
    o=(-o "Dir::Etc::SourceList=$work/src.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$work/lists")
    ( cd "$work"
      ls pgvector_*.orig.tar.* >/dev/null 2>&1 || { apt-get "${o[@]}" update -qq && apt-get "${o[@]}" source --download-only pgvector >/dev/null; }
      tarball=$(ls pgvector_*.orig.tar.* | sort -V | tail -1)
      rm -rf build && mkdir build && tar xf "$tarball" -C build --strip-components=1
      # OPTFLAGS="" gives a portable binary (no -march=native); pgvector still dispatches AVX at run time.
      make -s -C build PG_CONFIG="$PG_CONFIG" OPTFLAGS="" >/dev/null
      as_root make -s -C build PG_CONFIG="$PG_CONFIG" OPTFLAGS="" install >/dev/null )
    info "pgvector $(ls "$work"/pgvector_*.orig.tar.* | sed 's/.*pgvector_\(.*\)\.orig.*/\1/') installed"
fi
echo "$major"
