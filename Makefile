# Everyday commands. Each target installs what it needs first, so any of them works on a fresh clone.
PYTHON_SYS    ?= python3
VENV          ?= .venv
PY            := $(VENV)/bin/python
# torch goes in first and pinned: on a CPU-only machine this takes the local CPU build instead of
# several GB of CUDA wheels; on a CUDA machine the same line takes the CUDA build.
TORCH_VERSION ?= 2.13.0
ARGS          ?=
PYTEST_ARGS   ?=

.PHONY: install train test test-slow phases bench-attention sample clean

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

## The test suite (< 10 minutes on 2 CPU cores). Kernel tests run through Triton's interpreter.
test: install
	$(PY) -m pytest -q $(PYTEST_ARGS)

## Longer checks kept out of `make test`.
test-slow: install
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

## Train all five phases at their default budgets and print the README results table.
phases: install
	$(PY) experiments/phases.py $(ARGS)

## Attention backends against sequence length: time, TFLOP/s, memory (CSV + PNG in experiments/attention/).
bench-attention: install
	$(PY) experiments/bench_attention.py

## Sample from a checkpoint: make sample CKPT=path/to/last.ckpt PROMPT="Prince Andrew"
sample: install
	$(PY) -m gpt.sample ckpt=$(CKPT) prompt="$(PROMPT)" $(ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
