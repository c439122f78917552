#!/usr/bin/env bash
# Does the code the next `make gpu-check` runs work with the lent GPU machines' versions (torch 2.11.0+cu130,
# triton 3.6.0, Python 3.12: experiments/gpu/README.md)? Checked without a GPU, in a venv of those versions (PyPI's
# CUDA build of torch runs on a CPU):
#   1. make test's suite, the Triton kernels interpreted by triton 3.7.0, since 3.6's interpreter cannot run beside
#      NumPy 2.4 or 2.5 (kernels/interpreter.py);
#   2. triton 3.6.0's interpreter asked for: refused in one line;
#   3. every kernel and config compiled by triton 3.6.0 for sm_80 and sm_90 (compile_kernels.py, into VENV/).
#     bash experiments/scripts/measurements/gpu_machine_versions.sh [VENV]   (PYTHON=python3.12 makes VENV; about 5 GB of
#                                                                              wheels, 25 minutes on 2 cores)
set -uo pipefail
venv="${1:-/tmp/gpu-machine-versions}"
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$repo" || exit 2
test -x "$venv/bin/python" || "${PYTHON:-python3.12}" -m venv "$venv" || exit 2
"$venv/bin/pip" install -q torch==2.11.0 triton==3.6.0 && "$venv/bin/pip" install -q -e ".[dev]" || exit 2
"$venv/bin/pip" install -q --no-deps --upgrade --target "$venv/triton-3.7" triton==3.7.0 || exit 2
"$venv/bin/python" -c 'import sys, torch, triton, numpy; from gpt.machine import describe_machine
print(f"{describe_machine()}; Python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}, numpy {numpy.__version__}")'
status=0

echo "== 1. make test's suite, the kernels interpreted by triton 3.7.0"
PYTHONPATH="$venv/triton-3.7" "$venv/bin/python" -m pytest -q -n auto --maxprocesses 4 -m "not tour" \
    -p no:cacheprovider | tail -3 || status=1

echo "== 2. triton 3.6.0's interpreter asked for"
TRITON_INTERPRET=1 "$venv/bin/python" -m gpt.train kernel=triton model.dropout=0 trainer.max_steps=1 logger=none \
    hydra.run.dir="$venv/run" 2>&1 | tail -1

echo "== 3. every kernel and config compiled by triton 3.6.0"
TRITON_INTERPRET=0 "$venv/bin/python" experiments/scripts/compile_kernels.py --out "$venv/kernels_compile" \
    | grep -E "FAILED|compilations in" || status=1
exit $status
