"""Which machine a figure was measured on, as recorded beside every benchmark and report, and where a benchmark
writes it: one folder per topic and machine (experiments/README.md indexes them)."""

from __future__ import annotations

import argparse
import os
import platform
import re
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def describe_machine() -> str:
    """The GPU's name when CUDA is there, else the CPU model and the threads torch uses."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor() or "cpu",
    )
    return f"{cpu} ({torch.get_num_threads()} threads)"


def memory_bytes(device: torch.device) -> int:
    """The most memory a run on `device` can have: a GPU's own, else this machine's RAM, within the limit of the
    control group it runs in (a container's)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        value = limit.read_text().strip() if limit.exists() else ""
        if value.isdigit():  # cgroup v2 writes "max" where there is no limit
            memory = min(memory, int(value))
    return memory


def run_precision(precision: str, accelerator: str) -> str:
    """trainer.precision as a run on this machine takes it. auto (the default): bf16-mixed where the hardware
    multiplies bf16 natively (a CUDA GPU from Ampere on; a CPU with AMX or AVX-512 BF16), else 16-mixed on an older
    GPU and 32-true (fp32) on a CPU, where bf16 is emulated: on an AVX2-only AMD EPYC the default GPT trains 20x
    slower in bf16-mixed than in fp32 (experiments/precision.md)."""
    if precision != "auto":
        return precision
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"
    capabilities = getattr(torch.cpu, "get_capabilities", dict)()  # torch >= 2.13; before it, taken as neither
    return "bf16-mixed" if capabilities.get("amx_bf16") or capabilities.get("avx512_bf16") else "32-true"


def machine_slug() -> str:
    """describe_machine() as a folder name: where a benchmark writes this machine's figures."""
    return re.sub(r"[^A-Za-z0-9]+", "-", describe_machine()).strip("-").lower()


def results_dir(topic: str, committed: bool, per_machine: bool = True) -> Path:
    """Where a benchmark writes its files on `topic`: experiments/<topic>/<machine>/, the committed record, when
    asked to (`--write`); else the same path under outputs/ (ignored by git), so that running a check leaves the
    tree as it was. Figures that do not depend on the machine (compiling for GPU targets) drop the <machine>."""
    base = REPO / "experiments" if committed else REPO / "outputs" / "experiments"
    return base / topic / machine_slug() if per_machine else base / topic


def add_output_arguments(parser: argparse.ArgumentParser, topic: str, per_machine: bool = True) -> None:
    """--write and --out, the same for every benchmark; `output_dir` reads them."""
    where = f"experiments/{topic}/" + ("<machine>/" if per_machine else "")
    parser.add_argument("--write", action="store_true", help=f"write into {where}, the committed record "
                        f"(default: outputs/{where}, ignored by git)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="write into this folder instead")
    parser.set_defaults(topic=topic, per_machine=per_machine)


def output_dir(args: argparse.Namespace) -> Path:
    return args.out or results_dir(args.topic, args.write, args.per_machine)
