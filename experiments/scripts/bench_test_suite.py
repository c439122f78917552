"""Where `make test` spends its time: the suite run as make test runs it, timed, its time split by test.

    python experiments/scripts/bench_test_suite.py [--checkout DIR] [--repeats N] [--workers N] [--write]

Each repeat runs `python -m pytest -n auto --maxprocesses 4 -m "not tour and not slow" --durations=0` (the tests
of make test, without its lint; `-n auto` is a worker per CPU, tests/conftest.py) and records its wall seconds and
its CPU seconds (user + system of pytest and of every process it started). Printed and written (topic test_suite): per
repeat the wall and CPU time; then, from the last repeat's durations, the seconds each test file took and the
slowest test functions (their parametrized cases added up, setup included). Two workers share two cores, so the
wall time is about half the CPU time: the CPU time is the steadier of the two between runs. --checkout runs
another checkout's tests and code with this interpreter (a worktree of an earlier commit: before and after a
change, measured one after the other on one machine). --workers 1 runs the suite in one worker, as xdist's own
`-n auto` did where the two CPUs are one core's two hyperthreads.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from gpt.machine import REPO, add_output_arguments, describe_machine, output_dir

PYTEST = ["-m", "pytest", "-q", "--maxprocesses", "4", "-m", "not tour and not slow", "--durations=0"]
DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)$")


def run_suite(checkout: Path, workers: str) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, pytest's output) of one run of the suite in `checkout` on `workers` workers."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, *PYTEST, "-n", workers], cwd=checkout, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        sys.exit(f"the suite failed in {checkout}:\n{result.stdout[-3000:]}")
    return wall, cpu, result.stdout


def where_the_time_went(output: str, top: int) -> list[str]:
    """Seconds per test file, then the `top` slowest test functions, from pytest's --durations=0 lines."""
    per_file, per_test = defaultdict(float), defaultdict(float)
    for line in output.splitlines():
        if match := DURATION.match(line.strip()):
            seconds, node = float(match[1]), match[3]
            per_file[node.split("::")[0]] += seconds
            per_test[node.split("[")[0]] += seconds
    lines = [f"test time {sum(per_file.values()):.0f} s over all workers, by file:"]
    lines += [f"  {s:6.1f} s  {name}" for name, s in sorted(per_file.items(), key=lambda kv: -kv[1])]
    lines.append(f"the {top} slowest test functions (parametrized cases and setup added up):")
    lines += [f"  {s:6.1f} s  {name}" for name, s in sorted(per_test.items(), key=lambda kv: -kv[1])[:top]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, default=REPO, help="the tests and code to run (default: this one)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", default="auto", help="pytest-xdist's -n (default: auto, as make test)")
    parser.add_argument("--top", type=int, default=25, help="how many of the slowest test functions to list")
    add_output_arguments(parser, "test_suite")
    args = parser.parse_args()
    checkout = args.checkout.resolve()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    lines = [
        f"machine: {describe_machine()}; checkout {checkout} at {commit.stdout.strip()}",
        f"command: python {' '.join(PYTEST)} -n {args.workers}",
    ]
    print(*lines, sep="\n", flush=True)
    for repeat in range(args.repeats):
        wall, cpu, output = run_suite(checkout, args.workers)
        passed = re.findall(r"^(\d+ passed.*) in ", output, flags=re.MULTILINE)
        lines.append(f"run {repeat + 1}: wall {wall:.0f} s, CPU {cpu:.0f} s ({passed[-1] if passed else '?'})")
        print(lines[-1], flush=True)
    summary = where_the_time_went(output, args.top)
    print(*summary, sep="\n")
    out = output_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    name = "DEVICE" + ("" if checkout == REPO else "-before") + ("" if args.workers == "auto" else f"-n{args.workers}")
    name += ".txt"
    (out / name).write_text("\n".join(lines + summary) + "\n")
    print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
