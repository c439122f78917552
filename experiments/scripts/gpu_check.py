"""Everything only a GPU shows, in one run: `make gpu-check` (quick mode: `make gpu-check ARGS=--quick`).

With --write, into the committed record experiments/gpu/<device>/ (else the same path under outputs/):
    kernel-tests.txt     tests/test_kernels.py and tests/test_compile.py with the kernels compiled (not
                         interpreted): every numeric mode and autotune config; the model through torch.compile
    ../../attention/<device>/  bench_attention (its own topic's folder): eager, sdpa, triton_naive, triton; fwd
                         and fwd+bwd; causal bf16; head_dim 64, 128; T = 512 ... 16384 (quick: 4096); the
                         autotuner's choices (autotune.txt: tiles, TMA descriptors or not)
    launch-overhead.txt  bench_launch_overhead: the host's time to issue a call against the GPU's, per backend
    profile-T1024.txt    torch.profiler of sdpa and triton at T = 1024 (not in quick mode)
    training/            the 6 x 6 x 384 GPT at block 256, same seed, kernel=eager, sdpa, triton: report.md
    training-compile/    the same with compile=true (not in quick mode)
    training-cudagraphs/ the same with compile=reduce-overhead (CUDA graphs; quick: sdpa and triton only)
    training-phase7/     the same with phase 7's modern GPT (model=modern; not in quick mode)
    long-context/        +experiment=long_context: block 4096, eager / sdpa / triton, tokens/s and peak memory
    SUMMARY.md           the goals read off the above, with the command and the machine

Quick mode (--quick) keeps every goal's figure at a smaller budget: one T per head_dim, fewer training steps,
no profile, no phase 7, no compile=true sweep, and about 10 minutes on a lent H100 / H200 with its start.

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
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEELS = REPO / ".whl"
TRAINING_STEPS = {False: 500, True: 150}  # by quick mode
LONG_CONTEXT_STEPS = {False: 300, True: 40}
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


@dataclass(frozen=True)
class Training:
    """A training step: the backends sweep with `overrides`, for `steps` steps, into out/`folder`."""

    folder: str
    overrides: tuple[str, ...]
    steps: int
    timeout: int  # seconds


def trainings(quick: bool) -> dict[str, Training | None]:
    """The training steps by name; None where quick mode leaves one out. tests/test_scripts.py composes and checks
    every job of each."""
    steps = TRAINING_STEPS[quick]
    compiled = Training("training-compile", ("compile=true",), steps, 600)
    phase7 = Training("training-phase7", ("model=modern",), steps, 300)
    return {
        "training eager / sdpa / triton": Training("training", (), steps, 300),
        "training with compile=true": None if quick else compiled,
        "training with compile=reduce-overhead (cudagraphs)": Training(
            "training-cudagraphs", ("compile=reduce-overhead", *(["kernel=sdpa,triton"] if quick else [])), steps, 600
        ),
        "phase 7 training eager / sdpa / triton": None if quick else phase7,
        "long-context training at block 4096": Training(
            "long-context",
            ("+experiment=long_context", *(["data.val_windows=8"] if quick else [])),
            LONG_CONTEXT_STEPS[quick],
            600,
        ),
    }


def training_arguments(training: Training, sweep_dir: Path) -> list[str]:
    """gpt.train's arguments for the backends experiment (one GPT, seed and batches through eager, triton and sdpa)
    on the GPU in bf16, into sweep_dir. The training's overrides may replace the experiment or the kernels."""
    experiment = next((o for o in training.overrides if o.startswith("+experiment=")), "+experiment=backends")
    return [
        "-m",
        experiment,
        *[o for o in training.overrides if o != experiment],
        "trainer=gpu",
        f"trainer.max_steps={training.steps}",
        f"trainer.val_check_interval={max(training.steps // 5, 10)}",
        "trainer.log_every_n_steps=10",
        "trainer.enable_progress_bar=false",
        "sample.max_new_tokens=200",
        f"hydra.sweep.dir={sweep_dir}",
    ]


def train_backends(training: Training, out: Path, env: dict) -> bool:
    """One training step into out/folder: the runs, report.md and the loss curves."""
    sweep_dir = out / training.folder
    shutil.rmtree(sweep_dir, ignore_errors=True)  # a measurement again replaces the record (a sweep refuses old runs)
    arguments = training_arguments(training, sweep_dir.relative_to(REPO))
    return run(training.folder, [sys.executable, "-m", "gpt.train", *arguments], env,
               out / f"{training.folder}.log", timeout=training.timeout)  # fmt: skip


def summaries(sweep: Path) -> dict[str, dict]:
    """kernel -> summary.json of each finished run of a backends sweep."""
    from gpt.run_dirs import SUMMARY

    found = {}
    for path in sorted(sweep.glob(f"*/{SUMMARY}")):
        summary = json.loads(path.read_text())
        found[summary["kernel"]] = summary
    return found


def read_curves(attention: Path, D: int, metric: str):
    import pandas as pd

    path = attention / f"attention-{metric}-fwd+bwd-d{D}.csv"
    if not path.exists():
        return None
    table = pd.read_csv(path)
    table.columns = [column.split(" (")[0] for column in table.columns]  # "triton (time (ms))" -> "triton"
    return table.astype({"T": int}).set_index("T")


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b and math.isfinite(a) and math.isfinite(b) else "-"


TRAININGS = {  # sweep dir -> what it trains
    "training": "phase 5 GPT",
    "training-compile": "phase 5 GPT, compile=true",
    "training-cudagraphs": "phase 5 GPT, compile=reduce-overhead (CUDA graphs)",
    "training-phase7": "phase 7 modern GPT (model=modern)",
    "long-context": "phase 5 GPT at block 4096 (+experiment=long_context)",
}


def goals(out: Path, attention: Path) -> list[str]:
    """The goals of the flash-attention work, each read off the figures just measured (- where not measured)."""
    rows = ["| goal | measured | met |", "| --- | --- | --- |"]

    def goal(text: str, measured: str, met: bool | None) -> None:
        rows.append(f"| {text} | {measured} | {'-' if met is None else 'yes' if met else 'no'} |")

    for name in ("training", "training-compile", "training-cudagraphs"):
        runs = summaries(out / name)
        triton, sdpa = (runs.get(k, {}).get("tokens_per_sec") for k in ("triton", "sdpa"))
        measured = f"{triton:,.0f} / {sdpa:,.0f} = {ratio(triton, sdpa)}" if triton and sdpa else "-"
        goal(f"{TRAININGS[name]}: triton tokens/s >= sdpa's", measured,
             None if not (triton and sdpa) else triton >= sdpa)  # fmt: skip
    overhead = out / "launch-overhead.txt"
    found = re.findall(r"triton / sdpa: ([\d.]+)x", overhead.read_text()) if overhead.exists() else []
    goal("host time to issue one forward+backward (B=64 H=6 T=256 D=64): triton <= 1.2x sdpa",
         f"{found[0]}x" if found else "-", float(found[0]) <= 1.2 if found else None)  # fmt: skip
    for D in (64, 128):
        ms = read_curves(attention, D, "ms")
        if ms is None:
            continue
        short, long = [T for T in ms.index if 1024 <= T <= 2048], [T for T in ms.index if T >= 4096]
        for lengths, floor in ((short, 0.9), (long, 1.0)):
            if lengths:
                speeds = [ms.loc[T, "sdpa"] / ms.loc[T, "triton"] for T in lengths]
                measured = ", ".join(f"{T}: {x:.2f}x" for T, x in zip(lengths, speeds, strict=True))
                goal(f"causal bf16 fwd+bwd, head_dim {D}, T = {lengths[0]}-{lengths[-1]}: triton >= {floor}x sdpa",
                     measured, min(speeds) >= floor)  # fmt: skip
    runs = summaries(out / "long-context")
    eager, triton = runs.get("eager", {}), runs.get("triton", {})
    speed = (triton.get("tokens_per_sec"), eager.get("tokens_per_sec"))
    goal("block 4096 training: triton >= 3x eager tokens/s", ratio(*speed),
         None if not all(speed) else speed[0] >= 3 * speed[1])  # fmt: skip
    memory = (triton.get("peak_gpu_memory_mib"), eager.get("peak_gpu_memory_mib"))
    goal("block 4096 training: triton peak memory <= 1/4 of eager's",
         f"{memory[0]:,} / {memory[1]:,} MiB" if all(memory) else "-",
         None if not all(memory) else 4 * memory[0] <= memory[1])  # fmt: skip
    return rows


def summarise(out: Path, attention: Path, device: str, results: dict, command: str) -> Path:
    """SUMMARY.md: each step's outcome, the goals, the attention tables and the training tables."""
    lines = [
        f"# GPU check on {device}",
        "",
        f"Command: `{command}`, {time.strftime('%Y-%m-%d')}.",
        "",
        "| step | result |",
        "| --- | --- |",
        *[f"| {step} | {'passed' if ok else 'FAILED'} |" for step, ok in results.items()],
        "",
        "## Goals",
        "",
        *goals(out, attention),
        "",
    ]
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
    for name, title in TRAININGS.items():
        report = out / name / "report.md"
        if report.exists():
            lines += [
                f"## Training the {title}: eager, sdpa, triton on one seed",
                "",
                f"See `{name}/report.md` and `{name}/val_loss.png` (bf16-mixed).",
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
        help="rerun just the steps whose names hold one of these words (tests, benchmark, launch, profile, "
        "training, compile, cudagraphs, phase, long)",
    )
    parser.add_argument("--quick", action="store_true", help="every goal's figure at a smaller budget (docstring)")
    parser.add_argument("--write", action="store_true", help="into experiments/, the committed record (else outputs/)")
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
    sys.path.insert(0, str(REPO))  # the bare GPU machines run this without the editable install
    from gpt.machine import describe_machine, results_dir

    out, attention = results_dir("gpu", args.write), results_dir("attention", args.write)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"  # each step's last outcome, so that one step can be rerun alone
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    xdist = ["-n", str(min(14, os.cpu_count()))] if importlib.util.find_spec("xdist") else []  # compiles in parallel
    quick = args.quick
    lengths = ["--lengths", "4096"] if quick else []
    steps = {
        "kernel tests, compiled": lambda: run(
            "kernel tests",
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *xdist,
                "tests/test_kernels.py",
                "tests/test_compile.py",
            ],
            env,
            out / "kernel-tests.txt",
            timeout=300,
        ),
        "attention benchmark": lambda: run(
            "attention benchmark",
            [
                sys.executable,
                "experiments/scripts/bench_attention.py",
                *(["--write"] if args.write else []),
                *lengths,
            ],
            env,
            out / "attention.log",
            timeout=300,
        ),
        "launch overhead": lambda: run(
            "launch overhead",
            [sys.executable, "experiments/scripts/bench_launch_overhead.py", *(["--calls", "50"] if quick else [])],
            env,
            out / "launch-overhead.txt",
            timeout=120,
        ),
        "profile at T=1024": None
        if quick
        else lambda: run(
            "profile", [sys.executable, "-c", PROFILE.format(T=1024)], env, out / "profile-T1024.txt", timeout=120
        ),
        **{
            step: training and (lambda training=training: train_backends(training, out, env))
            for step, training in trainings(quick).items()
        },
    }
    for step, execute in steps.items():
        if execute is not None and (not args.only or any(word in step for word in args.only)):
            results[step] = execute()
            results_file.write_text(json.dumps(results, indent=1) + "\n")
    command = "make gpu-check" + (f" ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else "")
    summary = summarise(out, attention, describe_machine(), results, command)
    print(f"\n{summary.read_text()}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
