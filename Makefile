# lmtools: make install | test | test-slow | fuzz | demo | bench | man | lint
# Every target creates the virtual environment (.venv) from pyproject.toml first, and compiles the scoring
# kernel ahead of time where its sources changed (lmtools/kernels/aot.py; needs a C compiler).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow fuzz demo bench bench-scale bench-query man lint clean

install: $(STAMP)
	-$(BIN)/python -m lmtools.kernels.aot --if-stale

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,dask]'
	touch $(STAMP)

# The tests run in TEST_JOBS processes (pytest-xdist; each test file in one process, so a file's
# module fixtures are built once); on a fresh clone conftest.py first compiles the kernels in two lanes.
TEST_JOBS ?= 2

test: install
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile

# The slow end-to-end set (marked @pytest.mark.slow): CI runs it after `make test`, in one process
# (some of its checks time a signal during a compilation).
test-slow: install
	$(BIN)/python -m pytest -q -m slow

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m lmtools.demo

bench: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/run.py

# Long benchmarks against KenLM, not part of `make bench` (minutes each; corpora and models are cached in
# $LMTOOLS_BENCH_DATA, default /tmp/lmtools-bench; KenLM is found through KENLM_BIN=/path/to/kenlm/build/bin
# and skipped when absent). bench-scale: lm-count | lm-train against lmplz on sampled corpora (issue 12),
# e.g. BENCH_SCALE_ARGS="--tokens 40M --repeat 2 --record". bench-query: lm-ppl against KenLM's query
# (issue 13), e.g. BENCH_QUERY_ARGS="--sampled 10M --record".
BENCH_SCALE_ARGS ?= --tokens 10M --repeat 2
BENCH_QUERY_ARGS ?= --repeat 3 --sampled 10M
bench-scale: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/scale.py $(BENCH_SCALE_ARGS)

bench-query: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/query_peer.py $(BENCH_QUERY_ARGS)

man:
	@for p in man/*.[15]; do \
	  echo "== $$p"; LC_ALL=C.UTF-8 MANWIDTH=100 man --warnings -E UTF-8 -l $$p > /dev/null || exit 1; \
	done

# Fuzz the model-file and ARPA readers for a fixed number of inputs (not part of make test):
# atheris (coverage-guided) when it installs, else the plain random-mutation loop. FUZZ_ITERATIONS=N.
FUZZ_ITERATIONS ?= 20000
fuzz: install
	$(BIN)/python -m pip install -q atheris || echo "atheris did not install: the plain loop runs"
	$(BIN)/python fuzz/fuzz_readers.py --iterations $(FUZZ_ITERATIONS)
	$(BIN)/python fuzz/fuzz_readers.py --plain --iterations $(FUZZ_ITERATIONS)

lint: install
	$(BIN)/python -m pip install -q ruff
	$(BIN)/ruff check lmtools tests bench fuzz

clean:
	rm -rf $(VENV) build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
