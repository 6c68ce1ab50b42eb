# meshlab — two commands do everything:
#   make lab    set up .venv, open JupyterLab on your working copy of the chapters (my-notebooks/,
#               refreshed from notebooks/ without losing your edits; local backend: no cluster needed)
#   make test   set up .venv with test extras, run the whole test suite
# Both are idempotent: the install steps rerun only when pyproject.toml changes (stamp files).

PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
PORT        ?= 8888
# Extra arguments for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --ServerApp.token=''"
LAB_ARGS    ?=
# Where learners work: a copy of notebooks/ (git-ignored), so JupyterLab's autosave never writes
# outputs into the tracked chapters and `git pull` never conflicts (course/prepare.py).
WORK        ?= my-notebooks
# Extra arguments for pytest, e.g. make test PYTEST_ARGS="-x tests/test_manifests.py"
PYTEST_ARGS ?=
# Which backend notebooks use; notebooks never branch on it (`Lab()` reads the default).
MESHLAB_BACKEND ?= local
# NO_INSTALL=1 uses $(VENV) as it is (tests that start `make lab` against an existing venv).
NO_INSTALL  ?=

# Containers (and some CI) run as root, which JupyterLab refuses unless told.
ROOT_ARGS   := $(if $(filter 0,$(shell id -u)),--allow-root,)

LAB_STAMP   := $(VENV)/.meshlab-lab.stamp
TEST_STAMP  := $(VENV)/.meshlab-test.stamp
CHAPTERS    := $(sort $(wildcard notebooks/[0-9]*.ipynb))

.PHONY: lab course test venv clean help chromium oracle oracle-test oracle-for-tests analysis-codes \
	fidelity fidelity-routes fidelity-analyze fidelity-golden fidelity-analyze-golden fidelity-corpus

help:
	@echo "make lab     open the course in JupyterLab (PORT=$(PORT), LAB_ARGS=...)"
	@echo "make course  run every chapter headless, HTML in build/ (works offline: open build/*.html)"
	@echo "make test    run the test suite (PYTEST_ARGS=...)"
	@echo "make apiserver  build kube-apiserver, kube-controller-manager and etcd for the API-server tests (kube/)"
	@echo "make oracle  build oracle/bin/meshlab-oracle (Istio's own code, linked; needs Go)"
	@echo "make oracle-test  run the oracle's Go tests"
	@echo "make fidelity  meshlab against Istio's own code over the whole corpus (fidelity/README.md)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "meshlab needs Python 3.11 or newer; '$(PYTHON)' is not. Run: make $(MAKECMDGOALS) PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

venv: $(BIN)/python

$(LAB_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@ $(LAB_STAMP)

ifeq ($(NO_INSTALL),)
lab: $(LAB_STAMP)
course: $(LAB_STAMP)
test: $(TEST_STAMP) chromium apiserver oracle-for-tests
fidelity-routes fidelity-golden fidelity-corpus: $(TEST_STAMP)
endif

lab:
	@mkdir -p notebooks
	$(BIN)/python course/prepare.py --course notebooks --into $(WORK)
	PATH="$(abspath $(BIN)):$$PATH" MESHLAB_BACKEND=$(MESHLAB_BACKEND) $(BIN)/python -m jupyter lab --notebook-dir=$(WORK) \
		--ServerApp.port=$(PORT) --ServerApp.ip=127.0.0.1 $(ROOT_ARGS) $(LAB_ARGS)

course:
ifeq ($(CHAPTERS),)
	@echo "no chapters yet: notebooks/ has no NN-*.ipynb to run"
else
	@mkdir -p build
	@# one plotly.js for every page, beside them: the pages work offline and hold no copy of it
	$(BIN)/python -c 'from plotly.offline import get_plotlyjs; open("build/plotly.min.js", "w").write(get_plotlyjs())'
	PATH="$(abspath $(BIN)):$$PATH" MESHLAB_BACKEND=$(MESHLAB_BACKEND) $(BIN)/python -m jupyter nbconvert --to html --execute \
		--ExecutePreprocessor.timeout=600 --ExecutePreprocessor.store_widget_state=False \
		--TemplateExporter.extra_template_basedirs=$(abspath course/nbconvert) --template meshlab \
		--output-dir build $(CHAPTERS)
endif

# The browser test drives Debian's chromium. Install it when missing and we may (root, or CI with
# sudo); otherwise that test skips and says why — except in CI, where it must run.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (apt-get) for the browser test"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| { echo "could not install chromium: the browser test cannot run"; [ -z "$$CI" ] || exit 1; }; \
	elif [ -n "$$CI" ] && command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium (sudo apt-get) for the browser test"; \
		(sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| { echo "could not install chromium: the browser test cannot run"; [ -z "$$CI" ] || exit 1; }; \
	else echo "chromium not found and not installable here: the browser test will skip"; fi

# `make apiserver` (a prerequisite of `make test`); optional, so a copy of the project without kube/
# still runs `make lab` and `make course`.
-include kube/kube.mk

test:
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build .pytest_cache

# The oracle: a Go module linking istiod's translation and analyzers at the pinned Istio commit
# (oracle/README.md). Rebuilt only when its sources change; Go's module and build caches
# (GOMODCACHE, GOCACHE) make a rebuild after a small change take seconds.
GO          ?= go
ORACLE_BIN  := oracle/bin/meshlab-oracle
ORACLE_SRC  := $(shell find oracle -name '*.go' -not -name '*_test.go' -not -path 'oracle/bin/*' 2>/dev/null) oracle/go.mod oracle/go.sum
ORACLE_GOFLAGS := -trimpath -buildvcs=false
ORACLE_LDFLAGS := -s -w

oracle: $(ORACLE_BIN)

$(ORACLE_BIN): $(ORACLE_SRC)
	@command -v $(GO) >/dev/null 2>&1 || { echo "make oracle needs Go (go.mod says which); '$(GO)' is not on PATH"; exit 1; }
	cd oracle && $(GO) build $(ORACLE_GOFLAGS) -ldflags="$(ORACLE_LDFLAGS)" -o bin/meshlab-oracle ./cmd/meshlab-oracle

# Before pytest, so a cold build (minutes: bench/README.md "Oracle") never runs inside a test's time
# limit. No Go: said, and the tests that ask the oracle skip — except in CI (CI set), where it fails.
oracle-for-tests:
	@if command -v $(GO) >/dev/null 2>&1; then $(MAKE) -s --no-print-directory $(ORACLE_BIN); \
	elif [ -n "$$CI" ]; then echo "go not found: CI must build the oracle (make oracle)"; exit 1; \
	else echo "go not found: the oracle is not built; the tests that ask it will skip"; fi

oracle-test:
	@command -v $(GO) >/dev/null 2>&1 || { echo "make oracle-test needs Go; '$(GO)' is not on PATH"; exit 1; }
	cd oracle && $(GO) test $(ORACLE_GOFLAGS) ./...

# meshlab/analysis/codes.py is Istio's analyzer message table, generated from the oracle's
# `meshlab-oracle messages` (scripts/gen_analysis_codes.py; tests/test_analysis_codes.py checks it).
analysis-codes: oracle
	$(BIN)/python scripts/gen_analysis_codes.py

# The differential runner (fidelity/README.md). Each part writes its counts to build/fidelity/<part>.json:
# `routes` (meshlab's Envoy against istiod's decision, per call) and `analyze` (`meshlab analyze`
# against Istio's analyzers, per input). `make fidelity` runs both, prints `analyze: A/N inputs agree`,
# then `fidelity: A/N calls agree over K scenarios (U unmodelled)` last.
FIDELITY_OUT ?= build/fidelity
FIDELITY_ARGS ?=

fidelity: oracle-for-tests $(TEST_STAMP)
	@rm -f $(FIDELITY_OUT)/*.json
	@$(MAKE) --no-print-directory fidelity-routes || true
	@$(MAKE) --no-print-directory fidelity-analyze || true
	@$(BIN)/python -m fidelity.summary $(FIDELITY_OUT)

fidelity-routes:
	$(BIN)/python -m fidelity.routes --golden --summary $(FIDELITY_OUT)/routes.json $(FIDELITY_ARGS)

fidelity-analyze: $(TEST_STAMP)
	$(BIN)/python -m fidelity.analyze --summary $(FIDELITY_OUT)/analyze.json $(FIDELITY_ARGS)

# Ask the oracle again and rewrite the goldens (needs Go); re-record the chapters' and tests' states.
fidelity-golden: oracle
	$(BIN)/python -m fidelity.routes --golden --no-lab

fidelity-analyze-golden: oracle $(TEST_STAMP)
	$(BIN)/python -m fidelity.analyze --golden $(FIDELITY_ARGS)

fidelity-corpus:
	$(BIN)/python -m fidelity.record
