# Data Foundation: the obvious targets. `make demo` and `make test` do all the set-up themselves.
.PHONY: install demo test test-fast test-infra lint format check maintenance ui daemon serve-platform bench bench-automation schemas lock clean run bench-dbt bench-sql bench-rest bench-serving portfolio

UV_RUN = UV_PYTHON_DOWNLOADS=never uv run --frozen

install:            ## create .venv from uv.lock (installs uv from PyPI if missing)
	./scripts/bootstrap.sh

demo: install       ## the shipped use case end to end on embedded defaults
	$(UV_RUN) foundation demo

test:               ## the whole test suite, slow end-to-end tests included (adds the `spark` group: dbt on Spark)
	./scripts/bootstrap.sh --group spark
	$(UV_RUN) pytest -n 2 --dist loadfile

test-fast: install  ## skip the slow end-to-end tests
	$(UV_RUN) pytest -n 2 --dist loadfile -m "not slow"

test-infra:         ## what moves beyond one machine: S3 lakehouse (moto server), Dagster and MLflow on PostgreSQL, Spark
	./scripts/bootstrap.sh --group spark
	$(UV_RUN) pytest tests/infra -n 2 --dist loadfile

lint: install       ## ruff lint + format check + the layers (import-linter contracts in .importlinter, docs/architecture.md)
	$(UV_RUN) ruff check .
	$(UV_RUN) ruff format --check .
	$(UV_RUN) lint-imports

format: install
	$(UV_RUN) ruff check --fix .
	$(UV_RUN) ruff format .

check: install      ## validate every YAML of the workspace
	$(UV_RUN) foundation check

maintenance: install  ## compact and vacuum every Delta table of the lakehouse (docs/operations.md#maintenance-compaction-and-vacuum)
	$(UV_RUN) foundation maintenance

portfolio: install  ## rank the use cases; matrix PNG + HTML page into .foundation/portfolio/
	$(UV_RUN) foundation portfolio --out .foundation/portfolio

ui: install         ## Dagster UI on http://127.0.0.1:3000
	$(UV_RUN) foundation ui

daemon: install     ## run the platform unattended: dagster-daemon (schedules, new-files and automation sensors, run queue)
	$(UV_RUN) foundation daemon

serve-platform: install ## the daemon plus the Dagster UI (dagster-webserver) on http://127.0.0.1:3000, same instance
	$(UV_RUN) foundation daemon --ui

bench: install      ## ingestion benchmark (prints ratios against the bare DuckDB -> Delta anchor)
	$(UV_RUN) python bench/ingest.py

run: install        ## materialise everything (ingestion, checks, dbt build, gold), the demo's REST API and web page up meanwhile
	$(UV_RUN) foundation demo serve -- foundation run

bench-automation: install ## definitions load and one automation tick at 10-500 sources (docs/benchmarks.md)
	$(UV_RUN) python bench/automation.py

bench-dbt: install  ## foundation run vs dbt build directly (ratios against the anchor, docs/benchmarks.md)
	$(UV_RUN) python bench/dbt_build.py

bench-sql: install  ## sql extract: 5M-row SQLite table through foundation ingest vs ADBC -> Delta (docs/benchmarks.md)
	$(UV_RUN) python bench/sql_ingest.py

bench-rest: install ## rest_api extract: 1M records from a local paginated API vs dlt's rest_api pipeline (docs/benchmarks.md)
	$(UV_RUN) python bench/rest_ingest.py

bench-serving: install ## inference API vs mlflow models serve, same model, wrk load (needs `apt-get install wrk`; docs/benchmarks.md)
	$(UV_RUN) python bench/serving.py

schemas:            ## regenerate schemas/*.schema.json from the spec models (uv run: keeps the groups installed, e.g. spark)
	$(UV_RUN) python -m foundation.core.json_schemas

lock:               ## re-resolve uv.lock after editing pyproject.toml
	uv lock

clean:              ## remove the embedded state and generated landing files
	rm -rf .foundation landing bench/.out
