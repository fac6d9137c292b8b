#!/usr/bin/env bash
# Runs once, when the official image initialises an empty data directory: installs pgbert's schema
# with Alembic, points PL/Python at the runtime environment and activates the bundled model.
set -euo pipefail
site=$(cat /opt/pgbert/runtime-site)
cd /opt/pgbert/src
/opt/pgbert/tools/bin/alembic -c alembic.ini \
    -x "url=postgresql://${POSTGRES_USER:-postgres}@/${POSTGRES_DB:-postgres}?host=/var/run/postgresql" \
    -x "python_path=$site" -x "bundle=/opt/pgbert/models/default" upgrade head
