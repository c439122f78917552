"""Which machine a figure was measured on, as recorded beside every benchmark and report."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import torch


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


def machine_slug() -> str:
    """describe_machine() as a folder name: where a benchmark writes this machine's figures."""
    return re.sub(r"[^A-Za-z0-9]+", "-", describe_machine()).strip("-").lower()
