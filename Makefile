# customer-analytics — everything a newcomer needs, in make targets.
#   make run    generate the demo data if absent, then run the whole pipeline (ploomber build, through
#               `customer-analytics run`: log file in logs/, reports/<run_date>/, reports/index.html)
#               (parameters: make run RUN_ARGS="--env--run_date 2026-09-01")
#   make test   run the tests (unit + notebooks + scheduled runs + browser): what CI runs
#   make test-fast  the inner loop: no notebook, pipeline or warehouse (under 2 minutes)
#   make lint / make format  ruff, ruff format and mypy (see CONTRIBUTING.md)
#   make bench  benchmarks at 10k/100k/1M orders -> bench/RESULTS.md (by hand; not part of make test)
#   make scheduled-run / make rescore / make index: what cron calls (see README, "Scheduled runs")
# Both create .venv (Python 3.11) and install the project into it when missing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_CUSTOMERS ?= 10000
RUN_ARGS ?=

# third-party telemetry off (see README, "Telemetry")
export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := 1
export SNOWFLAKE_DISABLE_TELEMETRY := true

.PHONY: run test test-fast lab demo-data lint format lock clean stop-warehouse scheduled-run rescore index bench

LOCK   := requirements.lock
# byte-compile the project's sources (quick when nothing changed), as pip does for the packages it
# installs: where PYTHONDONTWRITEBYTECODE is set (CI images, some containers) every kernel, the
# pipeline and the warehouse server would otherwise compile them again at each start (about 4 s
# of a 10k-order run on 2 cores; see bench/RESULTS.md)
PYC    := $(BIN)/python -m compileall -q -j 0 src

# the locked versions (requirements.lock), then the project itself without resolving anything more
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, $(PYTHON) is {sys.version.split()[0]}; run: make PYTHON=python3.11 ..."'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@$(PYC)
	touch $(STAMP)

# re-resolve requirements.lock after editing pyproject.toml (kept pins stay); UPGRADE=1 takes the
# newest versions pyproject.toml allows, UPGRADE=pkg one package only. Then: make test, commit both.
UPGRADE ?=
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11.7 --custom-compile-command "make lock" \
	  $(if $(filter 1,$(UPGRADE)),--upgrade,$(if $(UPGRADE),--upgrade-package $(UPGRADE))) -o $(LOCK)
	$(BIN)/python -m pip install --quiet -r $(LOCK)

demo-data: $(STAMP)
	$(BIN)/python -m customer_analytics.synthetic --out data/raw --customers $(DEMO_CUSTOMERS) --if-absent

run: demo-data
	@$(PYC)
	$(BIN)/customer-analytics run --echo $(RUN_ARGS)

# the scheduled jobs: the whole pipeline for today's date, and re-scoring only (registered model)
scheduled-run: $(STAMP)
	@$(PYC)
	$(BIN)/customer-analytics run --run-date today $(RUN_ARGS)

rescore: $(STAMP)
	@$(PYC)
	$(BIN)/customer-analytics score --run-date today $(RUN_ARGS)

index: $(STAMP)
	$(BIN)/customer-analytics index

test: $(STAMP)
	@$(PYC)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	@$(PYC)
	$(BIN)/python -m pytest -m "not slow and not warehouse" -q

# JupyterLab with the project's Jupyter config (.jupyter/: Ploomber's server extension off, it breaks JupyterLab 4)
lab: $(STAMP)
	JUPYTER_CONFIG_PATH=$(CURDIR)/.jupyter $(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) $(if $(filter 0,$(shell id -u)),--allow-root)

# benchmarks (by hand, not in CI): the pipeline at 10k/100k/1M orders beside the floor and limit
# scripts and Snowpark local_testing; writes bench/RESULTS.md and bench/scaling.png (about 20
# minutes; BENCH_ARGS="--sizes 10000" for a taste)
BENCH_ARGS ?=
bench: $(STAMP)
	@$(PYC)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m customer_analytics.pipeline --check

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/python -m customer_analytics.pipeline --write

stop-warehouse: $(STAMP)
	$(BIN)/python -c 'from pathlib import Path; from customer_analytics import warehouse as wh; wh.stop_local_server(Path("data/warehouse").resolve())'

clean: stop-warehouse
	rm -rf data/warehouse reports/*/ reports/index.html logs/
