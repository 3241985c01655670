# Two entry points: `make demo` and `make test`. Each creates .venv if missing and installs first.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/worldmodel demo --out outputs/demo

lint: install
	$(PY) -m ruff check worldmodel tests benchmarks scripts

test: lint
	$(PY) -m pytest -q --timeout=900

bench: install
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done
