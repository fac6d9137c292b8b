#!/usr/bin/env bash
# Entrypoint of pgbert's database image (Dockerfile.postgres), after the official postgres image's:
# on the first start (empty $PGDATA) it initialises the cluster from the POSTGRES_* variables and installs
# pgbert's schema with Alembic, then it execs the server, so that the postmaster is PID 1 and gets the
# container's stop signal itself.
#   pgbert-entrypoint [postgres] [-c name=value ...]   the server (the default command)
#   pgbert-entrypoint migrate                          alembic upgrade head on the running server (image upgrades)
#   pgbert-entrypoint COMMAND ...                      anything else, as given
set -euo pipefail
source /opt/pgbert/env   # PG_BIN, RUNTIME_SITE: recorded when the image was built
export PATH="$PG_BIN:$PATH"

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
SOCKETS=/var/run/postgresql

say() { echo "pgbert-entrypoint: $*" >&2; }

# Alembic over the Unix socket (libpq reads PGHOST, PGUSER, PGDATABASE and PGPORT). Extra -x options go through.
migrate() {
    PGHOST=$SOCKETS PGUSER=$POSTGRES_USER PGDATABASE=$POSTGRES_DB PYTHONPATH=/opt/pgbert/src/cli \
        /opt/pgbert/tools/bin/alembic -c /opt/pgbert/src/alembic.ini \
        -x url=postgresql:// -x "python_path=$RUNTIME_SITE" "$@" upgrade head
}

init_cluster() {
    local method="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" pwfile=() secret
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$method" != trust ]; then
        say "error: the database is not initialised and POSTGRES_PASSWORD is not set."
        say "Set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust to let anyone connect without a password."
        exit 1
    fi
    if [ -n "${POSTGRES_PASSWORD:-}" ]; then
        # A file of its own (mode 600, removed below): the password never appears in a command line.
        secret=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$secret"
        pwfile=(--pwfile="$secret")
    fi
    say "initialising $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB, connections over TCP: $method)"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS holds several options, as in the official image
    initdb --username="$POSTGRES_USER" "${pwfile[@]}" --auth-local=trust --auth-host="$method" \
        --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
    [ -z "${secret:-}" ] || rm -f "$secret"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    echo "host all all all $method" >> "$PGDATA/pg_hba.conf"

    # Socket only while installing: no client can see a database without its schema.
    pg_ctl -D "$PGDATA" -w -s -o "-c listen_addresses=''" start
    if [ "$POSTGRES_DB" != postgres ]; then
        psql -X -q -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    say "installing pgbert's schema (alembic upgrade head) with the model in /opt/pgbert/models/default"
    migrate -x bundle=/opt/pgbert/models/default
    pg_ctl -D "$PGDATA" -w -s -m fast stop
    say "initialised"
}

case "${1:-postgres}" in
    -*) set -- postgres "$@" ;;
esac

case "${1:-postgres}" in
    postgres)
        if [ "$(id -u)" = 0 ]; then
            # A new volume (or bind mount) belongs to root: hand it to postgres, then run this again as postgres.
            mkdir -p "$PGDATA"
            find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
            chmod 700 "$PGDATA"
            install -d -o postgres -g postgres -m 3777 "$SOCKETS"
            HOME=/var/lib/postgresql exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
        fi
        if [ -s "$PGDATA/PG_VERSION" ]; then
            say "$PGDATA holds a cluster already: starting it as it is"
        else
            init_cluster
        fi
        shift || true
        exec postgres "$@"
        ;;
    migrate)
        migrate
        ;;
    *)
        exec "$@"
        ;;
esac
