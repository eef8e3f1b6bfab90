# The two commands of the README: `make run` and `make test`. Both set everything up first
# (idempotent: a stamp file skips the install until a pyproject/requirements file changes).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.llmops-installed

# Every installable package of the repository; later services add themselves here.
PACKAGES := libs/common libs/cli libs/testkit services/gateway services/feedback
INSTALL_INPUTS := Makefile constraints.txt requirements-test.txt scripts/ensure-system-packages.sh scripts/check-python.sh \
	$(addsuffix /pyproject.toml,$(PACKAGES))

# The first Python >= 3.11 on PATH; override with `make PYTHON=/path/to/python3.12 ...`.
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
endif

PYTEST_ARGS ?=

.PHONY: help install run test lint clean distclean

help:
	@echo "make run        set up (if needed) and start the platform locally (llmops up)"
	@echo "make test       set up (if needed) and run the whole test suite"
	@echo "make install    create $(VENV) and install all packages (idempotent)"
	@echo "make lint       ruff check"
	@echo "make clean      remove caches and build files (distclean also removes $(VENV))"

install: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	@bash scripts/check-python.sh "$(PYTHON)" $(VENV)
	@PYTHON="$(PYTHON)" NEED_VENV=$$([ -x $(VENV_PY) ] && echo 0 || echo 1) bash scripts/ensure-system-packages.sh
	@if [ ! -x $(VENV_PY) ]; then echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); fi
	$(VENV_PY) -m pip install --quiet --upgrade pip
	$(VENV_PY) -m pip install --quiet -c constraints.txt $(addprefix -e ,$(PACKAGES)) -r requirements-test.txt
	@touch $@

run: install
	$(VENV)/bin/llmops up

# pytest's own exit code is make's: 5 ("no tests collected") fails the build too.
test: install
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf .pytest_cache .ruff_cache build dist $(STAMP)
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf

# The local state (.llmops: secrets, keys database, logs) is kept; remove it by hand if you mean to.
distclean: clean
	rm -rf $(VENV)
