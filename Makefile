# The two commands of the README's quick start, plus what they need.
# Each target creates .venv and installs the project into it on first use,
# so a fresh clone needs nothing but python3 (3.11+) and make.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint serve bench clean browser

# Exactly the versions in requirements-dev.lock, each checked by its hash
# (made from pyproject.toml by pip-compile: see README, "Dependencies").
$(STAMP): pyproject.toml requirements-dev.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m service demo

test: $(STAMP) browser
	$(VENV)/bin/ruff check service simulator tests bench
	$(VENV)/bin/ruff format --check service simulator tests bench
	$(VENV)/bin/mypy
	$(PY) -m pytest

# The preview page is tested in Debian's Chromium. The tests never install
# anything; this does, where it can (root with apt-get) and Chromium is
# missing. Elsewhere the browser test skips, saying how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		{ echo "make: installing Debian's chromium for the browser test"; \
		  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "make: chromium could not be installed; the browser test will say so"

# mypy: service/ and simulator/, strict, as pyproject.toml's [tool.mypy] says.
lint: $(STAMP)
	$(VENV)/bin/ruff check service simulator tests bench
	$(VENV)/bin/ruff format --check service simulator tests bench
	$(VENV)/bin/mypy

serve: $(STAMP)
	$(PY) -m service serve

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) bundles data .pytest_cache .mypy_cache
