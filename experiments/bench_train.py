"""Training throughput of the harness against a plain PyTorch loop: same model, batches, optimiser and seed.

    make bench                          # or: python experiments/bench_train.py [--steps 30] [--warmup 10]

For each precision (fp32, bf16-mixed) x torch.compile (off, on) x attention (eager, sdpa) it measures
  harness: `python -m gpt.train` itself, tokens/s from the TokensPerSecond windows it logs after warm-up;
  plain:   the loop below: the same LanguageModelModule's model and optimiser/schedule, the same batches,
           autocast, gradient clipping; no Lightning.
each in its own process, timing the same steps (after `--warmup`, which also absorbs compilation), and
reading the process's peak resident memory. It prints harness/plain ratios and model FLOPs utilisation
against this machine's matmul peak, measured here for fp32 and bf16, and writes a CSV and a bar chart to
experiments/train_speed/<machine>/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch.utils.benchmark import Timer  # noqa: E402

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from gpt.config import register_configs  # noqa: E402
from gpt.data import RandomWindows  # noqa: E402
from gpt.module import LanguageModelModule  # noqa: E402
from gpt.machine import describe_machine, machine_slug  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

PRECISIONS = ["32", "bf16-mixed"]
LOG_EVERY = 10  # the harness's default trainer.log_every_n_steps: its tokens/s windows


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    """FLOP/s of one large square matmul: the most this machine does with this dtype."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    timer = Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())  # its default is 1
    seconds = timer.blocked_autorange(min_run_time=2).median
    return 2 * n**3 / seconds


def flops_per_token(model, n_layer: int, n_embd: int, block_size: int) -> float:
    """Training FLOPs per token: 6 per matmul weight (forward 2, backward 4; the tied head counts through the
    token embedding, the position table is a lookup), plus attention's QK^T and AV: 12 L T d (PaLM, appendix B)."""
    weights = model.num_params() - model.pos_emb.weight.numel()
    return 6 * weights + 12 * n_layer * block_size * n_embd


def overrides(precision: str, compile: bool, backend: str) -> list[str]:
    return [f"trainer.precision={precision}", f"compile={str(compile).lower()}", f"kernel={backend}"]


def run_harness(args, precision: str, compile: bool, backend: str) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        steps = args.warmup + args.steps
        command = [sys.executable, "-m", "gpt.train", *overrides(precision, compile, backend),
                   f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}", "logger=csv",
                   f"trainer.log_every_n_steps={LOG_EVERY}", "trainer.enable_progress_bar=false",
                   "sample.max_new_tokens=1", f"hydra.run.dir={run_dir}"]
        peak_kib = run_child(command)
        metrics = pd.read_csv(Path(run_dir) / "metrics.csv")
    windows = metrics.dropna(subset=["train/tokens_per_sec"])
    timed = windows[windows["step"] >= args.warmup]["train/tokens_per_sec"]
    # equal tokens per window, so the rate over all of them is the harmonic mean of the window rates
    return {"tokens_per_sec": len(timed) / (1 / timed).sum(), "peak_rss_mib": peak_kib / 1024}


def run_plain(args, precision: str, compile: bool, backend: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, __file__, "--plain", out.name, "--steps", str(args.steps), "--warmup",
                   str(args.warmup), *overrides(precision, compile, backend)]
        peak_kib = run_child(command)
        result = json.loads(Path(out.name).read_text())
    return {**result, "peak_rss_mib": peak_kib / 1024}


def run_child(command: list[str]) -> int:
    """Run to completion; its peak resident memory in KiB."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{process.stderr.read()[-3000:]}")
    return usage.ru_maxrss


def compose_config(cli_overrides: list[str]) -> DictConfig:
    """The training config `python -m gpt.train <overrides>` would run with."""
    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", cli_overrides)


def plain_loop(out: str, steps: int, warmup: int, cli_overrides: list[str]) -> None:
    """The minimal loop: compose the same config, build the same module, train without Lightning."""
    cfg = compose_config(cli_overrides)
    torch.manual_seed(cfg.seed)
    data = instantiate(cfg.data)
    data.setup("fit")
    module = LanguageModelModule(model=OmegaConf.to_container(cfg.model, resolve=True),
                                 optim=OmegaConf.to_container(cfg.optim, resolve=True),
                                 vocab=data.tokenizer.chars, max_steps=warmup + steps)
    model = module.model
    if cfg.compile:
        model.compile()
    optimizers = module.configure_optimizers()
    optimizer, schedule = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    batches = iter(RandomWindows(data.train_data, cfg.data.block_size, cfg.data.batch_size, cfg.seed))
    bf16 = cfg.trainer.precision == "bf16-mixed"
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        x, y = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.trainer.gradient_clip_val)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    tokens = steps * cfg.data.batch_size * cfg.data.block_size
    Path(out).write_text(json.dumps({"tokens_per_sec": tokens / seconds, "final_loss": float(loss)}))


def chart(table: pd.DataFrame, path: Path, title: str) -> None:
    configs = table[table["loop"] == "harness"][["precision", "compile", "backend"]].values.tolist()
    labels = [f"{'bf16' if p == 'bf16-mixed' else 'fp32'}\n{'compiled' if c else 'eager-mode'}\n{b}"
              for p, c, b in configs]
    fig, ax = plt.subplots(figsize=(12, 5), layout="constrained")
    width = 0.4
    for offset, loop in ((-width / 2, "harness"), (width / 2, "plain")):
        rates = table[table["loop"] == loop]["tokens_per_sec"].to_numpy() / 1000
        bars = ax.bar([i + offset for i in range(len(configs))], rates, width, label=loop)
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xticks(range(len(configs)), labels, fontsize=9)
    ax.set(ylabel="training tokens/s (thousands)", title=title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation happens here)")
    parser.add_argument("--plain", metavar="OUT", help=argparse.SUPPRESS)  # internal: run one plain loop
    args, rest = parser.parse_known_args()
    if args.plain:
        return plain_loop(args.plain, args.steps, args.warmup, rest)
    if args.warmup % LOG_EVERY or args.steps % LOG_EVERY:
        parser.error(f"--steps and --warmup must be multiples of {LOG_EVERY} (the harness's tokens/s windows)")

    machine = describe_machine()
    peaks = {"32": matmul_peak(torch.float32), "bf16-mixed": matmul_peak(torch.bfloat16)}
    print(f"{machine}; matmul peak fp32 {peaks['32'] / 1e9:.0f} GFLOP/s, bf16 {peaks['bf16-mixed'] / 1e9:.0f} GFLOP/s")

    cfg = compose_config([])
    model = instantiate(cfg.model, vocab_size=111)  # War and Peace's 111 distinct characters
    per_token = flops_per_token(model, cfg.model.n_layer, cfg.model.n_embd, cfg.data.block_size)

    rows = []
    for precision in PRECISIONS:
        for compile in (False, True):
            for backend in ("eager", "sdpa"):
                for loop, run in (("harness", run_harness), ("plain", run_plain)):
                    result = run(args, precision, compile, backend)
                    mfu = result["tokens_per_sec"] * per_token / peaks[precision]
                    rows.append({"precision": precision, "compile": compile, "backend": backend, "loop": loop,
                                 "tokens_per_sec": round(result["tokens_per_sec"]), "mfu": round(mfu, 4),
                                 "peak_rss_mib": round(result["peak_rss_mib"])})
                    print(f"{precision:>10} compile={str(compile):5} {backend:5} {loop:7} "
                          f"{result['tokens_per_sec']:9.0f} tokens/s  MFU {mfu:6.1%}  "
                          f"peak {result['peak_rss_mib']:5.0f} MiB", flush=True)
    table = pd.DataFrame(rows)
    key = ["precision", "compile", "backend"]
    ratios = table.pivot_table(index=key, columns="loop", values="tokens_per_sec")
    ratios["harness / plain"] = (ratios["harness"] / ratios["plain"]).round(3)
    print("\n" + ratios.to_string())
    harness = table[table["loop"] == "harness"].set_index(key)["tokens_per_sec"]
    base = harness[("32", False, "eager")]
    print(f"\nharness speed-up over fp32 eager-mode eager attention:\n{(harness / base).round(2).to_string()}")

    out_dir = REPO / "experiments" / "train_speed" / machine_slug()
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "train_speed.csv", index=False)
    chart(table, out_dir / "train_speed.png",
          f"default GPT ({cfg.model.n_layer} x {cfg.model.n_embd}, block {cfg.data.block_size}, batch "
          f"{cfg.data.batch_size}): Lightning harness vs plain loop, {machine}")
    (out_dir / "DEVICE.txt").write_text(
        f"{machine}\ncommand: python experiments/bench_train.py --steps {args.steps} --warmup {args.warmup}\n"
        f"matmul peak: fp32 {peaks['32'] / 1e9:.1f} GFLOP/s, bf16 {peaks['bf16-mixed'] / 1e9:.1f} GFLOP/s\n"
        f"model FLOPs per token (training): {per_token:.3e}\n")
    print(f"\nwritten to {out_dir}")


if __name__ == "__main__":
    main()
