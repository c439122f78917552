#!/usr/bin/env bash
# Does the code the next `make gpu-check` runs work with the lent GPU machines' versions (torch 2.11.0+cu130,
# triton 3.6.0, Python 3.12: experiments/gpu/README.md)? Checked without a GPU, in a venv of those versions (PyPI's
# CUDA build of torch runs on a CPU):
#   1. make test's suite, the Triton kernels interpreted by triton 3.7.0, since 3.6's interpreter cannot run beside
#      NumPy 2.4 or 2.5 (kernels/interpreter.py);
#   2. triton 3.6.0's interpreter asked for: refused in one line;
#   3. every kernel and config compiled by triton 3.6.0 for sm_80 and sm_90 (compile_kernels.py, into VENV/);
#   4. in a second venv of only what the machines' image has that the project uses (VENV-bare: no hydra-core,
#      omegaconf or wandb), `make wheelhouse`'s wheels installed as gpu_check.py installs them there, then a short
#      training through its environment (W&B offline) and its report.
#     bash experiments/scripts/measurements/gpu_machine_versions.sh [VENV]   (PYTHON=python3.12 makes VENV; about 5 GB of
#                                                                              wheels, 25 minutes on 2 cores)
set -uo pipefail
venv="${1:-/tmp/gpu-machine-versions}"
repo="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$repo" || exit 2
test -x "$venv/bin/python" || "${PYTHON:-python3.12}" -m venv "$venv" || exit 2
"$venv/bin/python" -m pip install -q torch==2.11.0 triton==3.6.0 && "$venv/bin/python" -m pip install -q -e ".[dev]" || exit 2
"$venv/bin/python" -m pip install -q --no-deps --upgrade --target "$venv/triton-3.7" triton==3.7.0 || exit 2
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

echo "== 4. the wheelhouse on a venv of the machines' image, a training and its report"
test -x "$venv-bare/bin/python" || "${PYTHON:-python3.12}" -m venv "$venv-bare" || exit 2
"$venv-bare/bin/python" -m pip install -q torch==2.11.0 triton==3.6.0 lightning==2.6.6 numpy matplotlib pandas rich psutil \
    pytest pytest-xdist || exit 2
make -s wheelhouse > /dev/null && rm -rf .whl/site "$venv/bare-run" || exit 2
"$venv-bare/bin/python" - "$venv" <<'PYTHON' || status=1
import subprocess, sys
sys.path.insert(0, "experiments/scripts")
import gpu_check  # its ensure_packages installs .whl/ into .whl/site where hydra, omegaconf or wandb is missing

env = gpu_check.ensure_packages()
run = f"{sys.argv[1]}/bare-run"
for command in (["gpt.train", "+experiment=backends", "kernel=eager", "trainer.max_steps=3", "data.batch_size=4",
                 "trainer.val_check_interval=3", "data.val_windows=4", "inspect.full_val=false",
                 "trainer.enable_progress_bar=false", f"hydra.run.dir={run}"], ["gpt.report", run]):
    result = subprocess.run([sys.executable, "-m", *command], env=env, capture_output=True, text=True)
    print(f"python -m {' '.join(command[:3])} ...: exit {result.returncode}; {result.stdout.strip().splitlines()[-1]}")
    if result.returncode:
        sys.exit(result.stderr.strip().splitlines()[-1])
PYTHON
exit $status
