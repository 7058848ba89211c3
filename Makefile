# Two commands for a fresh machine: `make demo` (bake the default project, run its pipeline,
# serve its Bento, print a prediction) and `make test` (every test, slow ones included).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export BENTOML_DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1

# Tests run on every core; tests sharing a module-scoped fixture stay on one worker (see tests/conftest.py).
# `make test PYTEST_WORKERS=0` runs them one after another in this process.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL := --numprocesses $(PYTEST_WORKERS) --dist loadgroup

.PHONY: demo test test-fast bench docs lint lock clean debian-tools

$(VENV)/.installed: requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements/dev.txt
	touch $@

# GitHub's OpenAPI description and webhook examples, which the tests' stand-in for GitHub checks against, and
# the Argo CD and Flux models whose validators check the generated Kubernetes manifests.
tests/node_modules/.installed: tests/package-lock.json
	npm ci --prefix tests --no-audit --no-fund --loglevel=error
	touch $@

# Debian packages the tests run for real: Prometheus (the monitor's and the canary analysis' queries) and
# Chromium (the screenshot of the pull request's report), with the emoji font the report's verdicts use.
DEBIAN_TOOLS := prometheus chromium
DEBIAN_FONTS := fonts-noto-color-emoji
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
debian-tools:
	@missing="$$(for tool in $(DEBIAN_TOOLS); do command -v $$tool >/dev/null || echo $$tool; done; \
		for font in $(DEBIAN_FONTS); do dpkg -s $$font >/dev/null 2>&1 || echo $$font; done)"; \
	[ -z "$$missing" ] || $(APT_INSTALL) $$missing >/dev/null || \
		{ $(SUDO) apt-get update -qq && $(APT_INSTALL) $$missing >/dev/null; }

demo: $(VENV)/.installed tests/node_modules/.installed  ## Bake the default project into demo/, reproduce, build, serve and predict.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python tests/demo.py demo

test: $(VENV)/.installed tests/node_modules/.installed debian-tools  ## All tests, including the slow end-to-end ones.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest $(PYTEST_PARALLEL)

test-fast: $(VENV)/.installed tests/node_modules/.installed debian-tools  ## Unit and quick bake tests only.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest $(PYTEST_PARALLEL) -m "not slow"

bench: $(VENV)/.installed  ## Every benchmark in benchmarks/ (minutes); writes BENCHMARKS.md. Not part of `make test`.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run.py --write $(if $(BENCH_NOTE),--note "$(BENCH_NOTE)")

docs: $(VENV)/.installed  ## The documentation site into site/ (mkdocs-material, offline, strict); open site/index.html.
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lock:  ## Re-resolve requirements/dev.txt from requirements/dev.in.
	$(BIN)/uv pip compile requirements/dev.in -o requirements/dev.txt --python-version 3.11 --no-header --quiet

clean:
	rm -rf $(VENV) demo site .pytest_cache tests/node_modules
