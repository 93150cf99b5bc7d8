# Set-up and the two everyday commands (see README.md):
#   make tutorial   sets everything up, then runs the tutorial experiment (training, database, plots)
#   make test       sets everything up, then runs the whole test suite (slow end-to-end tests included)
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: setup tutorial test test-fast journey lint benchmark benchmark-quick clean

setup: $(VENV)/.installed

# torch 2.13.0 first: it installs a CPU build from local disk; the project only asks torch>=2.2.
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test,parquet,tensorboard]"
	touch $@

tutorial: setup
	$(BIN)/mosaic_run share/config.ini results/mosaic.db --plots results/plots

test: setup
	$(BIN)/python -m pytest -m "" tests

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not slurm" tests

# A wheel installed with torch 2.13.0 and nothing else into a fresh environment, then the README's commands
# from a temporary folder, every output checked (.ci/run makes it before `make test`; about 2 minutes).
journey:
	bash .ci/journey

lint: setup
	$(BIN)/ruff check mosaic tests benchmarks
	$(BIN)/snakemake --lint

benchmark: setup
	$(BIN)/python benchmarks/run_benchmarks.py

benchmark-quick: setup
	$(BIN)/python benchmarks/run_benchmarks.py --quick

clean:
	rm -rf results share/.runs .snakemake .mosaic
