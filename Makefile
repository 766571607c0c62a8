# make demo         : build .venv (idempotent) and run the main job on synthetic data
# make test         : build .venv (idempotent) and run the whole test suite
# make install      : only the environment: mmcv-lite (a wheel, no compiler; ~1-4 min)
# make install-full : the same plus mmcv 2.1.0 compiled with its ops (~25 min on 2 cores), for CCNet, PSANet, DCN...
# make bench        : the side-by-side benchmarks (installs the bench-only extras): prepare throughput, metric
#                     speed vs peers and medpy, infer_volume vs mim test
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
FULL_STAMP := $(VENV)/.installed-full
BENCH_STAMP := $(VENV)/.installed-bench
REQS := $(wildcard requirements/*.txt) setup.py
# True when mmcv's compiled extension is installed (then `make install` keeps it instead of mmcv-lite).
HAS_OPS := $(PY) -c "import importlib.util as u, sys; sys.exit(u.find_spec('mmcv._ext') is None)" 2>/dev/null

.PHONY: install install-full demo test bench clean

install: $(STAMP)

# Build tools, the pinned CPU torch, mmcv-lite (unless compiled mmcv is already there), the rest, the package.
$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements/build.txt
	$(PIP) install -q -r requirements/torch.txt
	@if $(HAS_OPS); then echo 'keeping the compiled mmcv (make install-full)'; \
	 else $(PIP) install -q -r requirements/mmcv.txt; fi
	$(PIP) install -q -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install -q --no-deps -r requirements/nnunet.txt
	$(PIP) install -q -r requirements/nnunet-deps.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import mmseg_medical, mmseg.models; from mmseg_medical.mmcv_ops import compiled_ops_available as c; \
	print('environment ready:', mmseg_medical.__version__, '(mmcv compiled ops)' if c() else '(mmcv-lite)')"
	@touch $(STAMP)

# mmcv 2.1.0 compiled with ops against the installed torch (no wheel exists for torch 2.13): replaces mmcv-lite.
# pip caches the built wheel, so a second build takes seconds.
install-full: $(FULL_STAMP)

$(FULL_STAMP): $(STAMP) requirements/mmcv-full.txt
	@if ! $(HAS_OPS); then \
	  $(PIP) uninstall -q -y mmcv-lite && \
	  MMCV_WITH_OPS=1 $(PIP) install -q --no-build-isolation -r requirements/mmcv-full.txt -c requirements/runtime.txt; \
	fi
	$(PY) -c "import mmcv.ops, mmseg_medical, mmseg.models; print('compiled mmcv ops:', mmcv.ops.__file__)"
	@touch $(FULL_STAMP)

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest

$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(PIP) install -q -r requirements/bench.txt
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) tools/benchmarks/prepare_throughput.py
	$(PY) tools/benchmarks/metrics_speed.py
	$(PY) tools/benchmarks/inference_speed.py

clean:
	rm -rf $(VENV) work_dirs build *.egg-info
