"""Everything only a GPU shows, in one run: `make gpu-check` (about 10 minutes on one H100).

Writes experiments/gpu/<device>/:
    kernel-tests.txt    tests/test_kernels.py with the kernels compiled (not interpreted), every numeric mode
    attention/          bench_attention: eager, sdpa, triton_naive, triton; fwd and fwd+bwd; causal bf16;
                        head_dim 64 and 128; T = 512 ... 16384; ms, TFLOP/s, peak memory (CSV + PNG)
    training/           the same 6 x 6 x 384 GPT at block 256, same seed, with kernel=eager, sdpa, triton:
                        W&B (offline) + CSV logs, report.md with the three loss curves and tokens/s
    training-phase7/    the same with phase 7's modern GPT (model=modern: RoPE, ReLU², Muon)
    SUMMARY.md          the goals of issue 10 read off the above, and the command and machine

On a machine without network (the lent GPU machines here), build the wheels it lacks first, on a machine with
network: `make wheelhouse` puts hydra-core, omegaconf and wandb for Python 3.12 in .whl/; this script installs
them into .whl/site when they are not importable.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = REPO / ".whl"
TRAINING_STEPS = 500
PROFILE = """
import torch, kernels
from torch.profiler import ProfilerActivity, profile
q, k, v = (torch.randn(2, 16, {T}, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
grad = torch.randn_like(q)
for backend in ("sdpa", "triton"):
    for _ in range(5):
        kernels.attention(q, k, v, backend=backend).backward(grad)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            kernels.attention(q, k, v, backend=backend).backward(grad)
        torch.cuda.synchronize()
    print(f"== {{backend}}: 20 x forward+backward, T={T}, head_dim 64, bf16, causal")
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=12, max_name_column_width=60))
"""


def ensure_packages() -> dict:
    """The environment for the child processes, with the wheelhouse's packages where they are missing."""
    env = {
        **os.environ,
        "TRITON_INTERPRET": "0",
        "PYTHONUNBUFFERED": "1",
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    missing = [name for name in ("hydra", "omegaconf", "wandb") if importlib.util.find_spec(name) is None]
    if missing:
        site = WHEELS / "site"
        if not site.exists():
            wheels = sorted(str(w) for w in WHEELS.glob("*.whl"))
            if not wheels:
                sys.exit(
                    f"error: {', '.join(missing)} not installed and no wheels in {WHEELS}: run `make wheelhouse` "
                    "on a machine with network and bring .whl/ along"
                )
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--no-index",
                    "--no-deps",
                    "--no-compile",
                    "--upgrade",
                    "--target",
                    str(site),
                    *wheels,
                ],
                check=True,
            )
        env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    return env


def run(step: str, command: list[str], env: dict, log: Path | None = None, timeout: float = 600) -> bool:
    """Run one step, echoing its output (and keeping it in `log`); True when it succeeded."""
    print(f"\n=== {step}: {' '.join(command)}", flush=True)
    start = time.time()
    with subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        lines = []
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            code = -9
    if log:
        log.write_text("".join(lines) + f"\n[{step}: exit {code} after {time.time() - start:.0f} s]\n")
    print(f"=== {step}: exit {code} after {time.time() - start:.0f} s", flush=True)
    return code == 0


def train_backends(name: str, overrides: list[str], out: Path, env: dict) -> bool:
    """The backends experiment (one GPT, seed and batches through eager, triton and sdpa) on the GPU in bf16, into
    out/name: the runs, report.md and the loss curves."""
    return run(
        name,
        [
            sys.executable,
            "-m",
            "gpt.train",
            "-m",
            "+experiment=backends",
            *overrides,
            "trainer=gpu",
            f"trainer.max_steps={TRAINING_STEPS}",
            "trainer.val_check_interval=100",
            "trainer.log_every_n_steps=10",
            "trainer.enable_progress_bar=false",
            "sample.max_new_tokens=200",
            f"hydra.sweep.dir={(out / name).relative_to(REPO)}",
        ],
        env,
        out / f"{name}.log",
        timeout=300,
    )


def read_curves(attention: Path, D: int, metric: str):
    import pandas as pd

    path = attention / f"attention-{metric}-fwd+bwd-d{D}.csv"
    if not path.exists():
        return None
    table = pd.read_csv(path)
    table.columns = [column.split(" (")[0] for column in table.columns]  # "triton (time (ms))" -> "triton"
    return table.astype({"T": int}).set_index("T")


def summarise(out: Path, device: str, results: dict) -> Path:
    """The goals of issue 10, each read off the figures just measured."""
    lines = [
        f"# GPU check on {device}",
        "",
        f"Command: `make gpu-check` (`python experiments/gpu_check.py`), {time.strftime('%Y-%m-%d')}.",
        "",
        "| step | result |",
        "| --- | --- |",
        *[f"| {step} | {'passed' if ok else 'FAILED'} |" for step, ok in results.items()],
        "",
    ]
    attention = out / "attention"
    for D in (64, 128):
        ms, memory = read_curves(attention, D, "ms"), read_curves(attention, D, "memory")
        if ms is None:
            continue
        lines += [
            f"## Causal attention, bf16, forward + backward, head_dim {D}",
            "",
            "| T | triton ms | sdpa ms | triton / sdpa speed | eager ms | triton / eager speed | "
            "triton peak MiB | eager peak MiB |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for T in ms.index:
            row = ms.loc[T]
            ratio = lambda a, b: f"{a / b:.2f}x" if math.isfinite(a) and math.isfinite(b) else "-"
            lines.append(
                f"| {T} | {row['triton']:.3f} | {row['sdpa']:.3f} | {ratio(row['sdpa'], row['triton'])} | "
                f"{row['eager']:.3f} | {ratio(row['eager'], row['triton'])} | "
                f"{memory.loc[T, 'triton']:.0f} | {memory.loc[T, 'eager']:.0f} |"
            )
        lengths = [T for T in memory.index if math.isfinite(memory.loc[T, "triton"])]
        if len(lengths) > 1:
            first, last = lengths[0], lengths[-1]
            growth = math.log(memory.loc[last, "triton"] / memory.loc[first, "triton"]) / math.log(last / first)
            lines += ["", f"triton peak memory grows as T^{growth:.2f} from T={first} to T={last} (1 = linear)."]
        lines.append("")
    for name, title in (("training", "phase 5 GPT"), ("training-phase7", "phase 7 modern GPT (model=modern)")):
        report = out / name / "report.md"
        if report.exists():
            lines += [
                f"## Training the {title}: eager, sdpa, triton on one seed",
                "",
                f"See `{name}/report.md` and `{name}/val_loss.png` ({TRAINING_STEPS} steps, bf16-mixed).",
                "",
                *[line for line in report.read_text().splitlines() if line.startswith("|")],
                "",
            ]
    path = out / "SUMMARY.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="WORD",
        help="rerun just the steps named by these words (tests, benchmark, profile, training, phase)",
    )
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(
            "error: make gpu-check needs a CUDA GPU; on a CPU, make test runs the kernels interpreted and make "
            "kernels-compile compiles them for sm_80 / sm_90",
            file=sys.stderr,
        )
        return 2
    env = ensure_packages()
    sys.path.insert(0, str(REPO))
    from gpt.machine import describe_machine, machine_slug

    out = REPO / "experiments" / "gpu" / machine_slug()
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"  # each step's last outcome, so that one step can be rerun alone
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    xdist = ["-n", str(min(14, os.cpu_count()))] if importlib.util.find_spec("xdist") else []  # compiles in parallel
    steps = {
        "kernel tests, compiled": lambda: run(
            "kernel tests",
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *xdist, "tests/test_kernels.py"],
            env,
            out / "kernel-tests.txt",
            timeout=240,
        ),
        "attention benchmark": lambda: run(
            "attention benchmark",
            [sys.executable, "experiments/bench_attention.py", "--out", str((out / "attention").relative_to(REPO))],
            env,
            out / "attention.log",
            timeout=300,
        ),
        "profile at T=1024": lambda: run(
            "profile", [sys.executable, "-c", PROFILE.format(T=1024)], env, out / "profile-T1024.txt", timeout=120
        ),
        "training eager / sdpa / triton": lambda: train_backends("training", [], out, env),
        "phase 7 training eager / sdpa / triton": lambda: train_backends("training-phase7", ["model=modern"], out, env),
    }
    for step, execute in steps.items():
        if not args.only or any(word in step for word in args.only):
            results[step] = execute()
            results_file.write_text(json.dumps(results, indent=1) + "\n")
    summary = summarise(out, describe_machine(), results)
    print(f"\n{summary.read_text()}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
