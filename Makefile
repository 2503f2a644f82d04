# VMS: the two commands of a fresh clone, and the benchmarks.
#   make run    create .venv if missing, install, serve the demo configuration
#   make test   install what the tests need (SIPp when root), run the whole suite
#   make bench  benchmarks (not part of make test); see DEVELOPERS.md
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEBIAN_TEST := sip-tester redis-server
DEBIAN_BENCH := sip-tester kamailio redis-server

.PHONY: run test bench lint clean debian-test debian-bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP) $@

run: $(STAMP)
	$(BIN)/vms serve --config config/vms.yaml

# Debian packages the tests drive (SIPp): installed when missing and we are root.
debian-test:
	@missing=""; for p in $(DEBIAN_TEST); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (install them, or run as root)"; fi; \
	fi

debian-bench:
	@$(MAKE) --no-print-directory debian-test DEBIAN_TEST="$(DEBIAN_BENCH)"

test: debian-test $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: debian-bench $(TEST_STAMP)
	$(BIN)/python bench/run.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
