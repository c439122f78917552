#!/usr/bin/env bash
# Run a command as on a machine whose CPUs are hyperthread pairs of one core each (as Intel Xeon cloud machines
# give them), on a machine without hyperthreads: Linux's CPU topology in sysfs, which psutil reads, is replaced
# for this command alone by a copy in which every two CPUs are siblings of one core. Needs root (a private mount
# namespace: unshare -m). What reads the topology from the CPU itself (PyTorch's cpuinfo, CPUID) still sees the
# real machine.
#
#     sudo experiments/scripts/measurements/hyperthreaded_topology.sh \
#         .venv/bin/python -m pytest -n auto -m "not tour" -k test_tokenizer    # make test's workers: "created: ..."
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
cpus=/sys/devices/system/cpu
for file in possible present online kernel_max; do cat "$cpus/$file" > "$fake/$file"; done
for cpu in "$cpus"/cpu[0-9]*; do
    n=${cpu##*cpu}
    pair=$((n / 2 * 2))
    mkdir -p "$fake/cpu$n/topology"
    for file in "$cpu"/topology/*; do cat "$file" > "$fake/cpu$n/topology/${file##*/}"; done
    for file in thread_siblings_list core_cpus_list; do echo "$pair-$((pair + 1))" > "$fake/cpu$n/topology/$file"; done
    echo $((pair / 2)) > "$fake/cpu$n/topology/core_id"
done
unshare -m bash -c 'mount --bind "$0" /sys/devices/system/cpu && exec "$@"' "$fake" "$@"
