# Set-up and entry points; every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test quick bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The whole workflow at paper scale (downloads MNIST).
run: $(BIN)/.installed
	$(BIN)/snakemake --cores all

# A quick tour on synthetic digits (no network).
quick: $(BIN)/.installed
	$(BIN)/snakemake --cores all --configfile config/quick.yaml

# Unit tests and end-to-end Snakemake runs on the tiny preset.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

# Speed and memory figures on this machine (several minutes).
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/data_stage.py
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/job_layout.py
	$(BIN)/python benchmarks/inference_speed.py
