"""Training speed of the harness against nanoGPT's plain loop: tokens/s and val loss at equal steps.

    make bench          # or: python experiments/scripts/bench_train.py [--steps 400] [--shapes 64x12 128x32] [--write]

The baseline is a plain PyTorch loop the way nanoGPT's train.py runs on a CPU (its README's CPU command:
4 layers x 4 heads x 128 wide, block 64 x batch 12, dropout 0): fp32, no autocast, no compile, AdamW with
weight decay on the 2-D weights, linear warmup then cosine decay, gradient clipping at 1.0, and attention through
F.scaled_dot_product_attention as nanoGPT's model does. It trains this project's GPT (nanoGPT's layout: pre-LN
blocks, GELU MLP, tied head, GPT-2 init) on the same War and Peace split, batches and seed, written out below.

The harness runs `python -m gpt.train` with its defaults (bf16-mixed, eager attention) at the same shape and
number of steps. Each run is its own process, the two loops alternating --repeats times per shape (the
median is reported: one configuration's speed varies by up to 20% between runs on a shared machine);
tokens/s counts training steps only (no validation, and not the first step, which pays one-off costs), and
both report the loss on the same 256 validation windows after the same steps. Written to
experiments/train_speed/<machine>/ with --write (else the same path under outputs/): train_speed.csv (every run)
and DEVICE.txt (machine, matmul peaks, command, the medians).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.benchmark import Timer

from gpt.api import compose
from gpt.data import RandomWindows
from gpt.errors import one_line_errors
from gpt.machine import REPO, add_output_arguments, describe_machine, output_dir
from gpt.module import LanguageModelModule
from gpt.optim import build_schedule, decay_groups

MODEL = ["model.n_layer=4", "model.n_head=4", "model.n_embd=128", "model.dropout=0.0"]  # nanoGPT's CPU model
# nanoGPT's shakespeare_char recipe (lr 1e-3, beta2 0.99, warmup 100, weight decay 0.1, clip 1.0)
NANOGPT_OPTIM = ["optim.lr=1e-3", "optim.beta2=0.99", "optim.warmup_steps=100", "optim.weight_decay=0.1"]


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    """FLOP/s of one large square matmul: the most this machine does with this dtype."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    timer = Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())  # its default is 1
    return 2 * n**3 / timer.blocked_autorange(min_run_time=2).median


def block_by_batch(shape: str) -> str:
    """--shapes' argparse type: BLOCKxBATCH, two positive integers."""
    if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", shape):
        raise argparse.ArgumentTypeError(f"{shape!r} is not BLOCKxBATCH, e.g. 64x12")
    return shape


def shape_overrides(shape: str, steps: int) -> list[str]:
    block, batch = shape.split("x")
    return [*MODEL, *NANOGPT_OPTIM, f"data.block_size={block}", f"data.batch_size={batch}",
            f"trainer.max_steps={steps}", "trainer.precision=32"]  # fmt: skip


def plain_loop(out: Path, overrides: list[str]) -> None:
    """nanoGPT's loop in fp32, on the model and data the harness composes for these overrides. nanoGPT's AdamW
    (decay on the 2-D weights, fused only on CUDA) and its get_lr (linear warmup, cosine decay to a tenth of the
    peak) are what gpt/optim.py builds for the harness, so the loop takes them from there."""
    cfg = compose(*overrides, "kernel=sdpa")  # nanoGPT attends through F.sdpa
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(cfg.seed)
    data = instantiate(cfg.data)
    data.setup("fit")
    module = LanguageModelModule(model=OmegaConf.to_container(cfg.model, resolve=True), optim=dict(cfg.optim),
                                 vocab=data.tokenizer.chars,
                                 max_steps=cfg.trainer.max_steps)  # fmt: skip
    model = module.model.to(device)
    opt = cfg.optim
    groups = decay_groups(list(model.parameters()), opt.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=opt.lr, betas=(opt.beta1, opt.beta2), fused=device == "cuda")
    schedule = build_schedule(optimizer, opt, cfg.trainer.max_steps)
    batches = iter(RandomWindows(data.train_data, cfg.data.block_size, cfg.data.batch_size, cfg.seed))
    model.train()
    step_seconds = []
    for _ in range(cfg.trainer.max_steps):
        start = time.perf_counter()
        x, y = (t.to(device) for t in next(batches))
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()  # nanoGPT reads the loss every step (its log_interval=1 on a CPU)
        step_seconds.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():  # the mean over the harness's validation windows, weighted by batch as Lightning does
        losses = [(model(x.to(device), y.to(device))[1].item(), len(x)) for x, y in data.val_dataloader()]
    val_loss = sum(loss * n for loss, n in losses) / sum(n for _, n in losses)
    timed = step_seconds[1:] or step_seconds  # the first step's one-off costs left out, as the harness does
    tokens = len(timed) * cfg.data.batch_size * cfg.data.block_size
    out.write_text(json.dumps({"tokens_per_sec": tokens / sum(timed), "val_loss": val_loss}))


def run(command: list[str], log: Path) -> None:
    """Run a child to completion, its output in a file (a pipe nobody reads would block it once full)."""
    with log.open("w") as output:
        status = subprocess.run(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(command)}\n{log.read_text()[-3000:]}")


def measure(shape: str, steps: int, repeat: int, workdir: Path) -> list[dict]:
    """One plain loop, then one harness run, at this shape: repetition `repeat` of both."""
    overrides = shape_overrides(shape, steps)
    plain_out = workdir / f"plain-{shape}-{repeat}.json"
    run([sys.executable, __file__, "--plain", str(plain_out), *overrides], plain_out.with_suffix(".log"))
    plain = json.loads(plain_out.read_text())
    harness_dir = workdir / f"harness-{shape}-{repeat}"
    harness_overrides = [o for o in overrides if not o.startswith("trainer.precision")]  # the harness's default
    run([sys.executable, "-m", "gpt.train", *harness_overrides, f"trainer.val_check_interval={steps}",
         "logger=csv", "trainer.enable_progress_bar=false", "sample.max_new_tokens=1",
         f"hydra.run.dir={harness_dir}"], harness_dir.with_suffix(".log"))  # fmt: skip
    harness = json.loads((harness_dir / "summary.json").read_text())
    common = {"shape": shape, "repeat": repeat, "steps": steps}
    return [
        {**common, "loop": "nanoGPT plain fp32", "precision": "32",
         "tokens_per_sec": round(plain["tokens_per_sec"]), "val_loss": round(plain["val_loss"], 4)},
        {**common, "loop": "harness (defaults)", "precision": harness["precision"],
         "tokens_per_sec": round(harness["tokens_per_sec"]), "val_loss": harness["val_loss"]},
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="training steps per run (val loss after them)")
    parser.add_argument("--shapes", nargs="+", type=block_by_batch, default=["64x12", "128x32"], help="BLOCKxBATCH")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each loop per shape, alternating (median)")
    parser.add_argument("--plain", metavar="OUT", type=Path, help=argparse.SUPPRESS)  # internal: one plain loop
    add_output_arguments(parser, "train_speed")
    args, rest = parser.parse_known_args()  # the rest: Hydra overrides, for the internal plain loop only
    if args.plain:
        return plain_loop(args.plain, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    machine = describe_machine()
    peaks = {"fp32": matmul_peak(torch.float32) / 1e9, "bf16": matmul_peak(torch.bfloat16) / 1e9}
    print(f"{machine}; matmul peak fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for shape in args.shapes:
            for repeat in range(args.repeats):
                rows += measure(shape, args.steps, repeat, Path(workdir))
                plain, harness = rows[-2:]
                print(f"{shape} #{repeat}: nanoGPT fp32 {plain['tokens_per_sec']:,} tokens/s, harness "
                      f"{harness['tokens_per_sec']:,} tokens/s", flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    summary = table.groupby(["shape", "loop"], sort=False).agg(
        tokens_per_sec=("tokens_per_sec", "median"), val_loss=("val_loss", "first")
    )
    rates = summary["tokens_per_sec"].unstack()
    summary_text = (
        summary.to_string()
        + "\n\nharness / nanoGPT (medians):\n"
        + (rates["harness (defaults)"] / rates["nanoGPT plain fp32"]).round(2).to_string()
    )
    print("\n" + summary_text)
    out_dir = output_dir(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "train_speed.csv", index=False)
    (out_dir / "DEVICE.txt").write_text(
        f"{machine}\ncommand: python experiments/scripts/bench_train.py --steps {args.steps} --repeats {args.repeats} "
        f"--shapes {' '.join(args.shapes)}\nmatmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 "
        f"{peaks['bf16']:.1f} GFLOP/s\n\n{summary_text}\n"
    )
    print(f"written to {out_dir}")


if __name__ == "__main__":
    with one_line_errors():  # a bad argument, checkpoint or config: one line, exit 2
        main()
