"""Start-up against corpus size: one training step on War and Peace repeated up to ~1 GB, time and peak memory.

    python experiments/scripts/bench_corpus_size.py [--sizes 1 8 32 100 333] [--checkout DIR] [--write]
    python experiments/scripts/bench_corpus_size.py --sizes --presets enwik8 text8 [--write]

For each size (copies of the corpus, concatenated into one file under outputs/, never committed) it runs
`python -m gpt.train data=text data.path=FILE` for one step of the default model, the end-of-training
inspection, logging and the sample turned off, twice: the first start encodes the text into the token cache (a
fresh one, under outputs/), the second finds it there (code from before the token cache encodes it both times).
Each run is its own process; printed and written (topic corpus_size): wall seconds and the process's peak
resident memory. --checkout runs another checkout's code (a worktree of an earlier commit, for the figures
before the token cache) with the same corpora and command. --presets runs `data=enwik8` (or text8) the same way
on a synthetic file of its shape and size, 10^8 bytes (gpt/synthetic.py): its tokenizer and its 90/5/5 split.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from gpt.errors import one_line_errors
from gpt.machine import REPO, add_output_arguments, describe_machine, output_dir
from gpt.synthetic import write_synthetic

ONE_STEP = [
    "trainer.max_steps=1",
    "trainer.val_check_interval=1",
    "data.val_windows=8",
    "trainer.enable_progress_bar=false",
    "logger=none",
    "sample.max_new_tokens=1",
    "inspect.full_val=false",
    "inspect.attention_maps=false",
]
# runs `command` and prints its wall time and its peak resident set (ru_maxrss of the one child it waited for)
MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
status = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, status.returncode)
sys.stderr.write(status.stderr[-2000:] if status.returncode else "")
"""


def corpus(copies: int, source: Path, folder: Path) -> Path:
    path = folder / f"war_and_peace_x{copies}.txt"
    if not path.exists():
        text = source.read_bytes()
        with path.open("wb") as file:
            for _ in range(copies):
                file.write(text)
    return path


def one_step(checkout: Path, path: Path, cache: Path, preset: str = "text") -> tuple[float, float]:
    """(wall seconds, peak GiB) of one training step's whole process on the text at path, read as data=preset."""
    env = {**os.environ, "GPT_CACHE_DIR": str(cache), "PYTHONPATH": str(checkout), "WANDB_MODE": "disabled"}
    command = [sys.executable, "-c", MEASURE, sys.executable, "-m", "gpt.train", f"data={preset}",
               f"data.path={path}", "data.sha256=null", f"runs_dir={cache / 'runs'}", *ONE_STEP]  # fmt: skip
    result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=True)
    seconds, peak_gib, status = result.stdout.split()
    if status != "0":
        sys.exit(f"error: the run on {path} failed:\n{result.stderr}")
    return float(seconds), float(peak_gib)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1, 8, 32, 100, 333], help="copies of the corpus")
    parser.add_argument("--presets", nargs="*", default=[], choices=["enwik8", "text8"], help="synthetic, 10^8 bytes")
    parser.add_argument("--checkout", type=Path, default=REPO, help="the code to run (default: this checkout)")
    parser.add_argument("--corpus", type=Path, default=Path(os.environ.get("GPT_DATA", "")), help="War and Peace")
    add_output_arguments(parser, "corpus_size")
    args = parser.parse_args()
    if args.sizes and not args.corpus.is_file():
        parser.error("give --corpus FILE or GPT_DATA=FILE: War and Peace, the text the corpora repeat")
    work = REPO / "outputs" / "corpus_size"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    corpora = [("text", corpus(copies, args.corpus, work)) for copies in args.sizes]
    for preset in args.presets:
        synthetic = work / f"synthetic_{preset}"
        if not synthetic.exists():
            write_synthetic(preset, synthetic, 10**8)
        corpora.append((preset, synthetic))
    for preset, path in corpora:
        cache = work / f"cache-{time.time_ns()}"  # a fresh token cache: the first start encodes
        for start in ("first", "second"):
            seconds, peak = one_step(args.checkout.resolve(), path, cache, preset)
            rows.append({"data": preset, "corpus_mb": round(path.stat().st_size / 1e6), "start": start,
                         "seconds": round(seconds, 1), "peak_gib": round(peak, 2)})  # fmt: skip
            print(f"data={preset:7} {rows[-1]['corpus_mb']:>6} MB  {start:7} start {seconds:6.1f} s  {peak:5.2f} GiB",
                  flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    out = output_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    name = "before" if args.checkout.resolve() != REPO else "presets" if args.presets else "after"
    table.to_csv(out / f"corpus_size_{name}.csv", index=False)
    command = " ".join(["python experiments/scripts/bench_corpus_size.py", *sys.argv[1:]])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=args.checkout, capture_output=True, text=True)
    (out / f"DEVICE-{name}.txt").write_text(
        f"{describe_machine()}\ncommand: {command}\ncode: {commit.stdout.strip()}\n\n{table.to_string()}\n"
    )
    print(f"written to {out}")


if __name__ == "__main__":
    with one_line_errors():  # a bad argument, checkpoint or config: one line, exit 2
        main()
