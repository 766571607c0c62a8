# make demo  : build .venv (idempotent) and run the main job on synthetic data
# make test  : build .venv (idempotent) and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
REQS := $(wildcard requirements/*.txt) setup.py

.PHONY: install demo test bench clean

install: $(STAMP)

# Order matters: build tools, then the pinned CPU torch, then mmcv compiled with ops against that torch
# (no build isolation; pip caches the built wheel so later installs take seconds), then the rest.
$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements/build.txt
	$(PIP) install -q -r requirements/torch.txt
	MMCV_WITH_OPS=1 $(PIP) install -q --no-build-isolation -r requirements/mmcv.txt -c requirements/runtime.txt
	$(PIP) install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import mmcv.ops, mmseg, mmseg_medical; print('environment ready:', mmseg_medical.__version__)"
	@touch $(STAMP)

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest

bench: install
	$(PY) tools/benchmarks/prepare_throughput.py

clean:
	rm -rf $(VENV) work_dirs build *.egg-info
