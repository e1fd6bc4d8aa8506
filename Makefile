PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-fast run bench ui clean

# torch is pinned here: torch==2.13.0 is the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
install:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'

# The whole suite, slow tests included (this is what CI runs).
test:
	$(BIN)/python -m pytest -q -ra

# Unit and integration tests only (no multi-minute fine-tuning).
test-fast:
	$(BIN)/python -m pytest -q -ra -m "not slow"

# The main job: the default run (model=minilm dataset=ncbi_disease scheme=welt).
run:
	$(BIN)/python -m bioner_grid

# The MLflow UI on the default store (conf/tracking/sqlite.yaml): http://127.0.0.1:5000
ui:
	$(BIN)/mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db --default-artifact-root outputs/mlartifacts --host 127.0.0.1 --port 5000

bench:
	$(BIN)/python bench/throughput.py
