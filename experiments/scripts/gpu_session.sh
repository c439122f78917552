#!/usr/bin/env bash
# A lent GPU machine's whole session in one call: the quick GPU check, recorded with --write, its log and every
# file it wrote packed into $OUT (a lent machine returns a few files, none deep in folders). From the device
# tool:   run(command="bash experiments/scripts/gpu_session.sh", carry=[".whl", ".corpus"], timeout_s=580)
# Before it, on this side: `make wheelhouse` (hydra-core, omegaconf, wandb for the machine's Python) and the corpus
# copied into .corpus/ (both ignored by git). Then unpack here: tar xzf gpu-check.tgz. Extra arguments go to
# gpu_check.py (e.g. --only training cudagraphs).
set -uo pipefail
out="${OUT:-/tmp}"
export GPT_DATA="${GPT_DATA:-$PWD/.corpus/war_and_peace.txt}" PYTHONUNBUFFERED=1
timeout 540 python3 experiments/scripts/gpu_check.py --quick --write "$@" > "$out/gpu-check.log" 2>&1
status=$?
tar czf "$out/gpu-check.tgz" experiments/gpu experiments/attention
tail -60 "$out/gpu-check.log"
exit $status
