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

# Every benchmark on one commit, then the README tables from the JSON files. data.py (worker-process scaling) runs
# alone first; the rest run BENCH_JOBS at a time with BENCH_THREADS torch threads each, longest first
# (`make bench BENCH_JOBS=2 BENCH_THREADS=1` on a 2-core box; -k: one failure does not stop the others). long_video_gpu.py skips itself without CUDA.
BENCH_JOBS    ?= 1
BENCH_THREADS ?= 2
BENCHES       := default_model long_video understanding tokenizer serving moe attention generation evaluation \
                 long_video_gpu
BENCH_ARGS_understanding := --checkpoint stages/small
BENCH_ARGS_generation    := --clock cpu

bench: install
	$(PY) benchmarks/data.py
	$(MAKE) --no-print-directory -k -j$(BENCH_JOBS) $(addprefix bench-,$(BENCHES))
	$(PY) benchmarks/readme_tables.py

bench-%:
	$(PY) benchmarks/$*.py $(if $(filter long_video_gpu,$*),,--threads $(BENCH_THREADS)) $(BENCH_ARGS_$*)
