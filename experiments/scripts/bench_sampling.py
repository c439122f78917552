"""Sampling speed: characters/s with the KV cache against recomputing the context for every character.

    make bench-sampling          # or: python experiments/scripts/bench_sampling.py [--ckpt PATH] [--repeats 5]

The default model (`python -m gpt.train`'s config: phase 5, 4 layers x 128 wide, block 128) samples from a
one-character prompt, at batch 1 and in float32 as `gpt.sample` does, (a) one full block (block_size - 1 new
characters, all within the block: the cache never starts a new window) and (b) 2,000 new characters (past the
block: a fresh window on the newest half block every block_size / 2 characters; gpt/models/kv_cache.py). The
weights are a fresh initialisation unless --ckpt names a checkpoint (the speed does not depend on them). The two
samplers alternate, --repeats times per case, and the median is reported. Written to
experiments/sampling/<machine>/ with --write (else the same path under outputs/): sampling_speed.csv (every run)
and DEVICE.txt (machine, command, the medians).
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd
import torch
from hydra.utils import instantiate

from gpt.api import compose
from gpt.checkpoints import load_checkpoint
from gpt.errors import one_line_errors
from gpt.machine import add_output_arguments, describe_machine, output_dir

WAR_AND_PEACE_VOCAB = 111


def default_model(ckpt: str | None) -> torch.nn.Module:
    if ckpt:
        return load_checkpoint(ckpt).model
    cfg = compose()
    torch.manual_seed(cfg.seed)
    return instantiate(cfg.model, vocab_size=WAR_AND_PEACE_VOCAB)


def characters_per_second(model, new_characters: int, kv_cache: bool) -> float:
    prompt = torch.zeros(1, 1, dtype=torch.long)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in model.stream(prompt, new_characters, temperature=0.8, generator=generator, kv_cache=kv_cache):
        pass
    return new_characters / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="a checkpoint to sample from (default: the default model, fresh weights)")
    parser.add_argument("--repeats", type=int, default=5)
    add_output_arguments(parser, "sampling")
    args = parser.parse_args()
    out = output_dir(args)
    model = default_model(args.ckpt).eval()
    cases = {"one full block": model.block_size - 1, "2,000 characters": 2000}
    characters_per_second(model, 50, kv_cache=True)  # warm-up: first calls allocate and load kernels
    characters_per_second(model, 50, kv_cache=False)
    rows = [
        {"case": case, "new_characters": n, "sampler": "kv_cache" if kv else "recompute", "repeat": r,
         "chars_per_sec": characters_per_second(model, n, kv)}
        for case, n in cases.items()
        for r in range(args.repeats)
        for kv in (True, False)
    ]  # fmt: skip
    runs = pd.DataFrame(rows)
    medians = runs.groupby(["case", "sampler"], sort=False)["chars_per_sec"].median().unstack()
    medians["speed-up"] = medians["kv_cache"] / medians["recompute"]
    table = medians.round(2).to_string()
    out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "sampling_speed.csv", index=False)
    command = "python experiments/scripts/bench_sampling.py " + " ".join(sys.argv[1:])
    params = sum(p.numel() for p in model.parameters())
    (out / "DEVICE.txt").write_text(
        f"machine: {describe_machine()}\ntorch {torch.__version__}\ncommand: {command.strip()}\n"
        f"model: {type(model).__name__}, {params:,} parameters, block_size {model.block_size}, float32, batch 1\n"
        f"medians of {args.repeats} (characters/s):\n\n{table}\n"
    )
    print(table)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    with one_line_errors():  # a bad argument, checkpoint or config: one line, exit 2
        main()
