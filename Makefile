# Developer entry points.  `make demo` and `make test` work on a fresh clone:
# they create .venv, install torch (CPU build, pinned here only) when it is
# missing, then install this package with its monai, test and codec extras.
# `make test-light` checks the light install (no torch/MONAI) in .venv-light.

PYTHON      ?= python3
VENV        := .venv
VENV_PY     := $(VENV)/bin/python
STAMP       := $(VENV)/.install.stamp
LIGHT       := .venv-light
LIGHT_PY    := $(LIGHT)/bin/python
LIGHT_STAMP := $(LIGHT)/.install.stamp
# Pinned only here (dev/CI), never in pyproject.toml: an unpinned `torch`
# from PyPI is the multi-GB CUDA build; this version resolves to the CPU
# wheel on our machines.
TORCH_PIN   := torch==2.13.0
PIP_FLAGS   := --no-input --disable-pip-version-check
PYTEST_ARGS ?=

.PHONY: all venv venv-light demo test test-light lint bench clean

all: test

$(VENV_PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changes (or the venv was recreated).
$(STAMP): pyproject.toml | $(VENV_PY)
	@$(VENV_PY) -c "import torch" >/dev/null 2>&1 || \
		$(VENV_PY) -m pip install $(PIP_FLAGS) "$(TORCH_PIN)"
	$(VENV_PY) -m pip install $(PIP_FLAGS) -e '.[monai,test,codecs]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV_PY) tutorials/demo.py
	$(VENV_PY) -W ignore::FutureWarning tutorials/end_to_end.py

test: $(STAMP)
	$(VENV_PY) -m pytest -n 2 -q -rs $(PYTEST_ARGS)

# ruff (rules chosen in pyproject.toml [tool.ruff.lint]) and mypy ([tool.mypy])
# over the package; ruff also over the tests, benchmarks and tutorials. Every
# `# type: ignore[code]` must say why in a trailing comment: the grep fails on
# an ignore that ends its line. Any step failing makes `make lint` fail.
lint: $(STAMP)
	$(VENV)/bin/ruff check monai_dicomseg tests benchmarks tutorials
	$(VENV)/bin/mypy monai_dicomseg
	@if grep -rnE --include='*.py' 'type: *ignore(\[[^]]*\])? *$$' monai_dicomseg; then \
		echo "lint: the type: ignore comments above give no reason (add '  # why' after the code)"; exit 1; fi

# ---------------------------------------------------------------- light install
# The package without its `monai` extra (what `pip install monai_dicomseg`
# gives a conversion/PACS user) plus the test tools; pip's cache keeps
# rebuilds cheap.

$(LIGHT_PY):
	$(PYTHON) -m venv $(LIGHT)

$(LIGHT_STAMP): pyproject.toml | $(LIGHT_PY)
	$(LIGHT_PY) -m pip install $(PIP_FLAGS) -e '.[test,codecs]'
	@touch $(LIGHT_STAMP)

venv-light: $(LIGHT_STAMP)

# Fails (non-zero) when torch/MONAI got in, when a CLI command fails on data/,
# when a marker-selected SEG test fails, or when importing the MONAI layer
# does not fail with the one-line install message.
test-light: $(LIGHT_STAMP)
	@echo "== light install: torch and MONAI must be absent"
	$(LIGHT_PY) -c "import importlib.util as u, sys; found = [m for m in ('torch', 'monai') if u.find_spec(m)]; sys.exit(f'light venv has {found}' if found else 0)"
	@echo "== light install: command line on data/"
	@set -e; out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
		$(LIGHT)/bin/monai-dicomseg --help >/dev/null; \
		$(LIGHT)/bin/monai-dicomseg info data/ct1/seg_binary.dcm; \
		$(LIGHT)/bin/monai-dicomseg to-nifti data/ct1/seg_labelmap.dcm "$$out/labels.nii.gz" --source data/ct1/series; \
		$(LIGHT)/bin/monai-dicomseg from-nifti data/ct1/labels.nii.gz data/ct1/series "$$out/seg.dcm" --metadata data/ct1/labels.json --type LABELMAP; \
		$(LIGHT)/bin/monai-dicomseg convert data/ct2/seg_binary.dcm "$$out/ct2_labelmap.dcm" --type LABELMAP --compress rle; \
		$(LIGHT)/bin/monai-dicomseg batch to-nifti data "$$out/batch" --recursive; \
		$(LIGHT)/bin/monai-dicomseg info "$$out/seg.dcm" >/dev/null; \
		echo "CLI OK"
	@echo "== light install: importing the MONAI layer names what to install"
	@set -e; for module in monai_dicomseg.transforms monai_dicomseg.io.reader monai_dicomseg.data; do \
		if msg=$$($(LIGHT_PY) -c "import $$module" 2>&1); then echo "import $$module did not fail"; exit 1; fi; \
		line=$$(printf '%s\n' "$$msg" | tail -n 1); echo "$$line"; \
		case "$$line" in "monai_dicomseg.errors.MissingDependencyError: "*'pip install "monai_dicomseg[monai]"'*) ;; \
		*) echo "unexpected error for import $$module"; exit 1;; esac; \
	done
	@echo "== light install: SEG tests (-m 'not monai')"
	$(LIGHT_PY) -m pytest -n 2 -q -rs -m "not monai" $(PYTEST_ARGS)

bench: $(STAMP)
	@set -e; found=0; for script in benchmarks/*.py; do \
		[ -e "$$script" ] || continue; found=1; \
		echo "== $$script"; $(VENV_PY) "$$script"; \
	done; [ $$found -eq 1 ] || echo "no benchmark scripts in benchmarks/"

clean:
	rm -rf build dist *.egg-info .pytest_cache .hypothesis .mypy_cache .ruff_cache $(STAMP) $(LIGHT_STAMP)
	find . -path ./$(VENV) -prune -o -path ./$(LIGHT) -prune -o -name __pycache__ -type d -exec rm -rf {} +
