"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/gpu_steady_tokens_per_sec.py
"""

import csv
import statistics
from pathlib import Path

for run in sorted(Path("experiments/gpu/nvidia-h100-80gb-hbm3").glob("training*/*/metrics.csv")):
    rates = [float(row["train/tokens_per_sec"]) for row in csv.DictReader(run.open()) if row["train/tokens_per_sec"]]
    print(run.parent.name, f"first window {rates[0]:,.0f}, median of the rest {statistics.median(rates[1:]):,.0f}")
