# Developer entry points.  `make demo` and `make test` work on a fresh clone:
# they create .venv, install torch (CPU build, pinned here only) when it is
# missing, then install this package with its test and codec extras.

PYTHON      ?= python3
VENV        := .venv
VENV_PY     := $(VENV)/bin/python
STAMP       := $(VENV)/.install.stamp
# Pinned only here: an unpinned `torch` from pyproject.toml would pull the
# multi-GB CUDA build; this version resolves to the CPU wheel on our machines.
TORCH_PIN   := torch==2.13.0
PIP_FLAGS   := --no-input --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: all venv demo test bench clean

all: test

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes (or the venv was recreated).
$(STAMP): pyproject.toml | $(VENV_PY)
	@$(VENV_PY) -c "import torch" >/dev/null 2>&1 || \
		$(VENV_PY) -m pip install $(PIP_FLAGS) "$(TORCH_PIN)"
	$(VENV_PY) -m pip install $(PIP_FLAGS) -e '.[test,codecs]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV_PY) tutorials/demo.py
	$(VENV_PY) -W ignore::FutureWarning tutorials/end_to_end.py

test: $(STAMP)
	$(VENV_PY) -m pytest -n 2 -q $(PYTEST_ARGS)

bench: $(STAMP)
	@set -e; found=0; for script in benchmarks/*.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; $(VENV_PY) "$$script"; \
	done; [ $$found -eq 1 ] || echo "no benchmark scripts in benchmarks/"

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis $(STAMP)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
