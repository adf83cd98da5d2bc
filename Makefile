# Data Foundation: the obvious targets. `make demo` and `make test` do all the set-up themselves.
.PHONY: install demo test test-fast lint format check ui bench schemas lock clean run bench-dbt

UV_RUN = UV_PYTHON_DOWNLOADS=never uv run --frozen

install:            ## create .venv from uv.lock (installs uv from PyPI if missing)
	./scripts/bootstrap.sh

demo: install       ## the shipped use case end to end on embedded defaults
	$(UV_RUN) foundation demo

test: install       ## the whole test suite, slow end-to-end tests included
	$(UV_RUN) pytest -n 2 --dist loadfile

test-fast: install  ## skip the slow end-to-end tests
	$(UV_RUN) pytest -n 2 --dist loadfile -m "not slow"

lint: install       ## ruff lint + format check
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .

format: install
	$(UV_RUN) ruff check --fix .
	$(UV_RUN) ruff format .

check: install      ## validate every YAML of the workspace
	$(UV_RUN) foundation check

ui: install         ## Dagster UI on http://127.0.0.1:3000
	$(UV_RUN) foundation ui

bench: install      ## ingestion benchmark (prints ratios against the bare DuckDB -> Delta anchor)
	$(UV_RUN) python bench/ingest.py

run: install        ## materialise everything: ingestion, checks, dbt build, gold snapshots
	$(UV_RUN) foundation run

bench-dbt: install  ## foundation run vs dbt build directly (ratios against the anchor, docs/benchmarks.md)
	$(UV_RUN) python bench/dbt_build.py

schemas: install    ## regenerate schemas/*.schema.json from the spec models
	$(UV_RUN) python -m foundation.specs.jsonschema

lock:               ## re-resolve uv.lock after editing pyproject.toml
	uv lock

clean:              ## remove the embedded state and generated landing files
	rm -rf .foundation landing bench/.out
