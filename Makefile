# The README's two commands:  make demo   and   make test
# Both install everything they need (idempotent: a second run skips finished work).
.PHONY: setup demo test check test-fast bench load clean-cluster

setup:          ## system packages, pgvector, environments, default model, local cluster, schema
	scripts/bootstrap.sh
	.venv/bin/pgbert setup

demo:           ## setup, then load a sample corpus and run searches; leaves the cluster running
	scripts/bootstrap.sh
	.venv/bin/pgbert demo

test:           ## setup (no demo data), then the whole test suite
	scripts/bootstrap.sh
	.venv/bin/pgbert setup
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

check:          ## setup, then every test not marked slow (the quick check before a commit)
	scripts/bootstrap.sh
	.venv/bin/pgbert setup
	.venv/bin/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-fast:      ## unit tests only (no database, no real weights)
	.venv/bin/python -m pytest -q tests/unit

bench: setup    ## the full benchmark on the default model -> bench/RESULTS*.md, bench/results.png
	.venv/bin/python bench/run.py
	.venv/bin/python bench/languages.py
	.venv/bin/python bench/orm_query.py
	.venv/bin/python bench/backends.py
	.venv/bin/python bench/cancel.py
	.venv/bin/python bench/long_documents.py
	.venv/bin/python bench/embedding_queue.py
	.venv/bin/python bench/model_stats.py
	.venv/bin/python bench/model_change.py
	.venv/bin/python bench/models.py

load: setup     ## 8 inserting + 8 searching clients for 60 s -> bench/RESULTS-load.md
	.venv/bin/python bench/load.py --output bench/RESULTS-load.md

clean-cluster:  ## stop and delete the local cluster (model bundles and environments are kept)
	-.venv/bin/pgbert db stop
	rm -rf .pgbert/data .pgbert/run .pgbert/log
