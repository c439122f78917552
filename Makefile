# Everyday commands. Each target installs what it needs first, so any of them works on a fresh clone.
PYTHON_SYS    ?= python3
VENV          ?= .venv
PY            := $(VENV)/bin/python
# torch goes in first and pinned: on a CPU-only machine this takes the local CPU build instead of
# several GB of CUDA wheels; on a CUDA machine the same line takes the CUDA build.
TORCH_VERSION ?= 2.13.0
ARGS          ?=
SWEEP_ARGS    ?=
PYTEST_ARGS   ?=
HAS_GPU       := $(shell nvidia-smi -L 2>/dev/null | head -1)
# A sweep or run dir for report / dashboard / sync; by default the newest sweep.
DIR           ?= $(shell ls -dt multirun/*/ 2>/dev/null | head -1)
# A checkpoint for sample; by default the newest run's last.ckpt.
CKPT          ?= $(shell ls -t outputs/*/*/checkpoints/last.ckpt 2>/dev/null | head -1)
PROMPT        ?=
# PROMPT as typed (its $ not expanded by make) in a shell single-quoted word (' closed, escaped, reopened); sample
# hands it to Hydra through the environment (${oc.env:GPT_PROMPT}), where none of its characters is Hydra's syntax
PROMPT_WORD    = '$(subst ','\'',$(value PROMPT))'
NEED_DIR       = $(if $(DIR),,$(error no sweep under multirun/ yet: run make sweep first, or give DIR=<a sweep or run dir>))
NEED_CKPT      = $(if $(CKPT),,$(error no run under outputs/ yet: run make train first, or give CKPT=<a .ckpt file>))
# $(DIR)'s W&B runs, for dashboard and sync: $(call NEED_WANDB,<their folders' pattern>,<what they are>)
NEED_WANDB     = $(if $(wildcard $(DIR)/wandb/$(1)),,$(error $(DIR)/wandb holds no $(2): a run or sweep logs them \
                   there with logger=default (logger=csv and logger=none log none); give DIR=<a sweep or run dir>))

# The lent GPU machines run Python 3.12 with torch and triton but no network: wheels for what they lack.
GPU_PYTHON    ?= 3.12
GPU_PLATFORMS := $(foreach p,manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 \
                   manylinux_2_17 manylinux2014 manylinux1,--platform $(p)_x86_64)
# Where a venv exists (make install), GPU checks use it; on a bare GPU machine, the system python3.
RUN_PY         = $(if $(wildcard $(PY)),$(PY),$(PYTHON_SYS))

.PHONY: help install train test test-slow tour format sweep sweep-backends report dashboard sync bench bench-attention bench-sampling \
	sample clean kernels-compile gpu-check wheelhouse

## The targets and what each does (the ## lines above each in this file); `make` alone prints it.
help:
	@awk '/^## /{doc[++n] = substr($$0, 4); next} \
	      /^[a-z][a-z-]*:/ && n {split($$0, t, ":"); for (i = 1; i <= n; i++) printf "%-17s %s\n", i == 1 ? t[1] : "", doc[i]} \
	      {n = 0}' $(MAKEFILE_LIST)

## Make .venv and install the project into it (torch first, pinned); every other target runs it first.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

## Train the default model (full GPT, CPU-sized) on War and Peace, then print a sample.
train: install
	$(PY) -m gpt.train $(ARGS)

## Lint and format check (ruff), then the test suite on a worker per CPU, up to 4 (tests/conftest.py; about
## 3 minutes on 2 cores of an AMD EPYC). Kernel tests run compiled where CUDA is present, else interpreted.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q -n auto --maxprocesses 4 -m "not tour and not slow" $(PYTEST_ARGS)

## The tests too slow for make test (marked slow: DDP across processes, a run killed and resumed, processes started
## together, the console scripts, the kernels compiled for sm_80 and sm_90; about a minute on 2 cores). .ci/run runs
## them after make test.
test-slow: install
	$(PY) -m pytest -q -n auto --maxprocesses 4 -m slow $(PYTEST_ARGS)

## experiments/tour.ipynb run top to bottom in a Jupyter kernel on the real corpus (about a minute on 2 cores);
## .ci/run runs it after make test-slow.
tour: install
	$(PY) -m pytest -q -m tour $(PYTEST_ARGS)

## Apply ruff's formatting and its safe lint fixes.
format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Every phase side by side at the default budget, then report.md + plots in the sweep dir.
## Larger budgets: make sweep SWEEP_ARGS="trainer.max_steps=5000"
sweep: install
	$(PY) -m gpt.train -m +experiment=phases $(SWEEP_ARGS)

## Eager vs Triton flash attention (sdpa as reference) on one GPT and seed; without a GPU, a small GPT
## through Triton's interpreter.
sweep-backends: install
	$(if $(HAS_GPU),,TRITON_INTERPRET=1) $(PY) -m gpt.train -m \
		+experiment=$(if $(HAS_GPU),backends,backends_interpreted) $(SWEEP_ARGS)

## The comparison report of any sweep or run dir: make report DIR=multirun/...
report: install
	$(NEED_DIR)
	$(PY) -m gpt.report $(DIR)

## Browse a sweep's W&B runs in the terminal (W&B LEET, no account needed): make dashboard [DIR=...]
dashboard: install
	$(NEED_DIR)
	$(call NEED_WANDB,*run-*,W&B runs)
	$(VENV)/bin/wandb leet $(DIR)/wandb

## Upload offline W&B runs (needs `wandb login`): make sync [DIR=...]
sync: install
	$(NEED_DIR)
	$(call NEED_WANDB,offline-run-*,offline W&B runs)
# no credentials or W&B's server out of reach: one line, where wandb sync would retry for minutes
	$(PY) -c 'from gpt.validation import check_wandb_reachable; check_wandb_reachable("make sync")'
	$(VENV)/bin/wandb sync $(DIR)/wandb/offline-run-*

## Benchmarks print their figures and keep their files under outputs/experiments/<topic>/<machine>/; ARGS=--write
## records them in experiments/<topic>/<machine>/ instead, for committing (experiments/README.md indexes them).

## The harness (its defaults) against nanoGPT's plain fp32 loop: tokens/s and val loss at equal steps, at block x
## batch 64 x 12 and 128 x 32 (topic train_speed, ~12 min on 2 cores).
bench: install
	$(PY) experiments/scripts/bench_train.py $(ARGS)

## Attention backends against sequence length: time, TFLOP/s, memory (CSV + PNG, topic attention).
bench-attention: install
	$(PY) experiments/scripts/bench_attention.py $(ARGS)

## Sampling speed, KV cache against recomputing the context, default model (topic sampling, ~1 min).
bench-sampling: install
	$(PY) experiments/scripts/bench_sampling.py $(ARGS)

## Compile every Triton kernel config for sm_80 and sm_90 with the triton wheel's compiler and ptxas, no GPU
## needed (~10 min on 2 cores); fails on compile errors, shared memory over the limit or spills. Its table in
## experiments/kernels_compile/ holds no timings: rewritten over unchanged kernels, it stays the same.
kernels-compile: install
	$(PY) experiments/scripts/compile_kernels.py --write

## Everything only a GPU shows (compiled kernel tests, attention benchmark, launch overhead, eager/sdpa/triton
## training of phases 5 and 7, compiled and with CUDA graphs, and at block 4096), topic gpu (ARGS=--write to
## record them). Quick mode, every goal's figure at a smaller budget: ARGS=--quick. Without network there: make
## wheelhouse first, bring .whl/.
gpu-check:
	$(RUN_PY) experiments/scripts/gpu_check.py $(ARGS)

## Wheels of what the GPU machines lack (hydra-core, omegaconf, wandb and its needs) for their Python (GPU_PYTHON).
wheelhouse: install
	rm -rf .whl && mkdir -p .whl
	$(PY) -m pip download -q --only-binary=:all: --python-version $(GPU_PYTHON) --implementation cp \
		$(GPU_PLATFORMS) -d .whl wandb==$$($(PY) -c 'import wandb; print(wandb.__version__)')
	$(PY) -m pip download -q --no-deps -d .whl hydra-core==$$($(PY) -c 'import hydra; print(hydra.__version__)') \
		omegaconf==$$($(PY) -c 'import omegaconf; print(omegaconf.__version__)')
	$(PY) -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # hydra's parser: a source release only
	du -sh .whl

## Sample from a checkpoint (by default the newest run's): make sample [CKPT=path/to/last.ckpt] [PROMPT="Prince Andrew"]
sample: install
	$(NEED_CKPT)
	$(if $(value PROMPT),GPT_PROMPT=$(PROMPT_WORD)) $(PY) -m gpt.sample ckpt=$(CKPT) \
		$(if $(value PROMPT),'prompt=$${oc.env:GPT_PROMPT}') $(ARGS)

## Remove the run dirs (outputs/, multirun/) and pytest's cache.
clean:
	rm -rf outputs multirun .pytest_cache
