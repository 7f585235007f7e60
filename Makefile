# Targets the README names. Everything runs from the project's own virtual environment (.venv).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LAB_STAMP := $(VENV)/.lab-installed
SMALL  ?= 1
RELIABILITY_SIZE ?= large

.PHONY: setup lab tour docs test browser-full lint format bench scaling reliability simulate cassandra-start cassandra-stop clean

# A venv made before the cassandra extra moved to scylla-cqlsh has PyPI's cqlsh and its
# cassandra-driver, whose `cassandra` module overwrote scylla-driver's: remove both, then
# reinstall scylla-driver's files (uninstalling took the shared ones with it).
define ONE_DRIVER
if $(PY) -m pip show --quiet cassandra-driver >/dev/null 2>&1; then \
  $(PY) -m pip uninstall --quiet --yes cassandra-driver cqlsh && \
  $(PY) -m pip install --quiet --force-reinstall --no-deps \
    "scylla-driver==$$($(PY) -c 'import importlib.metadata as m; print(m.version("scylla-driver"))')" && \
  $(PY) -m pip install --quiet --force-reinstall --no-deps scylla-cqlsh; \
fi
endef

setup: $(STAMP)  ## create .venv and install the project with every extra (what `make test` needs)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cassandra,notebooks,docs,test,bench,dask]"
	$(ONE_DRIVER)
	touch $(LAB_STAMP) $(STAMP)

$(LAB_STAMP): pyproject.toml  ## only what the lab needs: the notebooks' libraries, the Cassandra driver and Dask
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cassandra,notebooks,dask]"
	$(ONE_DRIVER)
	touch $(LAB_STAMP)

lab: $(LAB_STAMP)  ## open JupyterLab on the notebooks (embedded SQLite store by default)
	$(VENV)/bin/jupyter lab notebooks/ $(LAB_ARGS)

tour: $(LAB_STAMP)  ## headless: run the tour, print what it did, export the notebooks to HTML
	$(PY) -m workbench tour

docs: setup  ## the documentation site in artifacts/site/ (notebooks executed in small mode, reused when unchanged)
	$(PY) -m workbench docs

test: setup  ## lint + the whole test suite (starts a Cassandra node when Java and Maven are present)
	bash scripts/run-tests

browser-full: setup  ## every notebook at full size in JupyterLab, driven by the browser (make test runs the widget ones)
	ES_BROWSER_FULL=all ES_SMALL= $(PY) -m pytest -p no:cacheprovider tests/e2e/test_workbench_notebooks.py

lint: setup  ## ruff, the import contracts and the type check (as the test run starts)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: setup
	$(VENV)/bin/ruff format es_core downloads workbench benchmarks reliability tests

bench: setup  ## benchmarks on the embedded default, JSON on stdout
	$(PY) -m benchmarks run --store sqlite:///data/local/bench.db --workload downloads --json

scaling: setup
	$(PY) -m benchmarks scaling --json

reliability: setup  ## crash, race, idempotency, bad-input, fallback, subscription and forgetting scenarios (+ the cluster ones with ES_RELIABILITY_CLUSTER=1); prints a table
	$(PY) -m reliability run --size $(RELIABILITY_SIZE)

simulate: setup  ## a year of simulated member activity into the default store
	$(PY) -m downloads simulate --members 1000 --days 365 --seed 7

cassandra-start:
	scripts/cassandra-node start

cassandra-stop:
	scripts/cassandra-node stop

clean:
	rm -rf data/local artifacts .pytest_cache .ruff_cache .hypothesis
