# hotstandby developer entry points (GNU make). `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HS := $(VENV)/bin/hotstandby
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SIM_ARGS ?= --seed 0 --runs 100000
BENCH_ARGS ?=
BENCH_LONG_ARGS ?= --long
NEMESIS_MINUTES ?= 20
NEMESIS_ARGS ?=

# $(call need,PATH,what it is): fail with one clear line when a piece is not there yet,
# instead of a traceback (or, worse, a green run that did nothing).
need = @test -e $(1) || { echo "make $@: $(1) not found ($(2))" >&2; exit 2; }
# $(call need_cmd,SUBCOMMAND): the same for a `hotstandby` subcommand.
need_cmd = @$(HS) $(1) --help >/dev/null 2>&1 || { echo "make $@: 'hotstandby $(1)' is not available yet" >&2; exit 2; }

.PHONY: help venv run test lint fuzz sim chaos nemesis bench bench-long tools clean distclean

help:
	@echo "make venv        create $(VENV)/ with the project installed (editable, dev extras)"
	@echo "make run         the demo pair + HAProxy on 127.0.0.10-13 (installs haproxy if missing)"
	@echo "make test        the test suite except 'slow' tests (fails when no test ran)"
	@echo "make lint        ruff + mypy"
	@echo "make fuzz        property/fuzz tests with a large example budget"
	@echo "make sim         the failover simulator (SIM_ARGS=...)"
	@echo "make chaos       fault-injection tests (network namespaces; root)"
	@echo "make nemesis     overlapping random faults on the real pair, judged as a history (NEMESIS_MINUTES=20)"
	@echo "make bench       quick benchmarks; make bench-long for the long ones"
	@echo "make tools       fetch helm into .tools/ (for tests/deploy)"
	@echo "make clean       remove $(VENV), caches and run/"

venv: $(STAMP)

# Re-install only when the dependencies may have changed; creating the venv is skipped
# when it already exists, so `make venv` twice is cheap.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: venv
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { \
	  echo "make run: installing haproxy"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y haproxy; }
	$(HS) demo

# No `|| true`, no pipe: pytest's exit status is make's (5, "no tests collected", fails too).
# Four workers on two cores: most integration tests wait on real nodes, so they overlap well.
TEST_WORKERS ?= 3
test: venv
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Property-based fuzz tests (tests/fuzz) with a large budget, then schemathesis against both services of
# a real pair (tests/security/test_fuzz.py): FUZZ_EXAMPLES per operation, a random seed unless FUZZ_SEED.
FUZZ_EXAMPLES ?= 300
FUZZ_SEED ?=
fuzz: venv
	@if test -d tests/fuzz; then HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/fuzz -p no:cacheprovider $(PYTEST_ARGS); \
	else echo "make fuzz: no tests/fuzz yet; schemathesis only"; fi
	HS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HS_FUZZ_SEED=$(FUZZ_SEED) \
	  $(PY) -m pytest tests/security/test_fuzz.py -p no:cacheprovider -s $(PYTEST_ARGS)

sim: venv
	$(call need_cmd,sim)
	$(HS) sim $(SIM_ARGS)

# The whole fault matrix (slow rows included, long faults at full length), then its table.
chaos: venv
	$(call need,tests/lab/test_chaos.py,the fault lab)
	HS_LAB_FULL=1 $(PY) -m pytest tests/lab -m lab -p no:cacheprovider $(PYTEST_ARGS)

# Random, overlapping faults on the real pair for NEMESIS_MINUTES (half without, half with the witness), every
# run's history judged by lab/nemesis/checker.py; summary and charts to bench/results/nemesis/ (root).
nemesis: venv
	$(PY) -m lab.nemesis --minutes $(NEMESIS_MINUTES) --results $(NEMESIS_ARGS)

bench: venv
	$(call need,bench/__main__.py,the benchmark runner: python -m bench)
	$(PY) -m bench $(BENCH_ARGS)

bench-long: venv
	$(call need,bench/__main__.py,the benchmark runner: python -m bench)
	$(PY) -m bench $(BENCH_LONG_ARGS)

tools: .tools/helm

.tools/helm: deploy/helm/get-helm.sh
	deploy/helm/get-helm.sh $@

clean:
	rm -rf $(VENV) run/ build/ .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

# Also the downloaded tools (helm); they are fetched again on demand.
distclean: clean
	rm -rf .tools
