"""Train all five phases at their default budgets and write the README's results table.

    make phases                        # or: python experiments/phases.py [extra overrides for every phase]

Each phase runs through the real entry point (`python -m gpt.train model=<phase>`), one after the other, in
experiments/runs/phases/<phase>/. The table goes to stdout and to experiments/phases.md with the machine it
ran on.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
PHASES = ["bigram", "attention", "multihead", "block", "gpt"]
TITLES = {"bigram": "1 bigram", "attention": "2 single-head attention", "multihead": "3 multi-head attention",
          "block": "4 transformer block", "gpt": "5 full GPT"}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def run_phase(phase: str, overrides: list[str]) -> dict:
    run_dir = HERE / "runs" / "phases" / phase
    command = [sys.executable, "-m", "gpt.train", f"model={phase}", "logger=csv",
               "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}", *overrides]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    return json.loads((run_dir / "summary.json").read_text())


def table(summaries: list[dict]) -> str:
    rows = ["| phase | params | steps | val loss (nats) | tokens/s | wall (s) |", "|---|---:|---:|---:|---:|---:|"]
    for s in summaries:
        rows.append(f"| {TITLES[s['phase']]} | {s['params']:,} | {s['steps']} | {s['val_loss']:.3f} | "
                    f"{s['tokens_per_sec']:,.0f} | {s['wall_seconds']:.0f} |")
    return "\n".join(rows)


def main() -> None:
    overrides = sys.argv[1:]
    summaries = [run_phase(phase, overrides) for phase in PHASES]
    report = (f"{table(summaries)}\n\nMeasured {date.today()} on {machine()} with "
              f"`make phases{' ARGS=' + repr(' '.join(overrides)) if overrides else ''}`; "
              f"precision {summaries[0]['precision']}, kernel {summaries[0]['kernel']}.\n")
    (HERE / "phases.md").write_text(report)
    print("\n" + report)


if __name__ == "__main__":
    main()
