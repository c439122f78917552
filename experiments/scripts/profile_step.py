"""Where a training step's time goes: torch.profiler over steps of any composed config, on the GPU if there is one.

    python experiments/scripts/profile_step.py [--steps 10] [OVERRIDES ...]      e.g. +experiment=backends model=modern

Builds the model, the optimiser (as the harness builds it: gpt/optim.py, fused AdamW) and the training batches of
the composed config, runs 5 warm-up steps, times --steps steps without the profiler (ms per step) and the
optimiser step alone, then profiles --steps steps and prints the ops with the most self time (CUDA time, then CPU
time, on a GPU). A step is the forward pass (under bf16 autocast where trainer.precision is bf16-mixed, as auto is
on a GPU), the backward pass, clipping at trainer.gradient_clip_val and the optimiser step: what Lightning runs,
without its loop.
"""

from __future__ import annotations

import argparse
import time

import torch
from hydra.utils import instantiate
from torch.profiler import ProfilerActivity, profile

from gpt.api import compose
from gpt.data import RandomWindows
from gpt.errors import one_line_errors
from gpt.machine import run_precision
from gpt.optim import build_optimizer

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for python -m gpt.train")
    args = parser.parse_args()
    cfg = compose(*args.overrides)
    torch.manual_seed(cfg.seed)
    data = instantiate(cfg.data)
    data.setup("fit")
    model = instantiate(cfg.model, vocab_size=data.tokenizer.vocab_size).to(DEVICE)
    optimizer = build_optimizer(model, dict(cfg.optim), fused=True)
    batches = iter(RandomWindows(data.train_data, cfg.data.block_size, cfg.data.batch_size, cfg.seed))
    precision = run_precision(cfg.trainer.precision, cfg.trainer.accelerator)
    autocast = torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")
    synchronize = torch.cuda.synchronize if DEVICE == "cuda" else lambda: None

    def step():
        x, y = (t.to(DEVICE) for t in next(batches))
        with autocast:
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize()
    ms = (time.perf_counter() - start) / args.steps * 1e3
    tokens = cfg.data.batch_size * cfg.data.block_size
    x, y = (t.to(DEVICE) for t in next(batches))
    model(x, y)[1].backward()  # gradients for the optimiser alone
    synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        optimizer.step()
    synchronize()
    optimizer_ms = (time.perf_counter() - start) / args.steps * 1e3
    optimizer.zero_grad(set_to_none=True)
    device = torch.cuda.get_device_name() if DEVICE == "cuda" else "CPU"
    print(
        f"{device}; {' '.join(args.overrides) or 'defaults'}: {ms:.2f} ms a step, {tokens / ms * 1e3:,.0f} "
        f"tokens/s; the optimiser step alone {optimizer_ms:.2f} ms"
    )
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if DEVICE == "cuda" else [])]
    with profile(activities=activities) as profiler:
        for _ in range(args.steps):
            step()
        synchronize()
    for key in ("self_cuda_time_total", "self_cpu_time_total") if DEVICE == "cuda" else ("self_cpu_time_total",):
        print(f"by {key}:")
        print(profiler.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=60))


if __name__ == "__main__":
    with one_line_errors():  # a bad argument, checkpoint or config: one line, exit 2
        main()
