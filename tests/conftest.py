"""Shared fixtures: the corpus, small text files, and a runner for the real entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# The Triton kernels run compiled where there is a CUDA GPU and through Triton's CPU interpreter elsewhere
# (TRITON_INTERPRET=1 forces the interpreter anywhere). It must be set before triton is first imported;
# subprocesses inherit it.
os.environ.setdefault("TRITON_INTERPRET", "0" if torch.cuda.is_available() else "1")

REPO = Path(__file__).resolve().parents[1]
# The fast settings every tiny end-to-end run shares; tests add the overrides they are about.
TINY = ["trainer.max_steps=4", "trainer.val_check_interval=2", "data.batch_size=4", "data.block_size=16",
        "data.val_windows=8", "trainer.enable_progress_bar=false", "sample.max_new_tokens=20", "logger=csv"]


def tiny_except(*keys: str) -> list[str]:
    """TINY without the overrides of these keys, for a test that sets them itself (Hydra refuses a key twice)."""
    return [o for o in TINY if o.split("=")[0] not in keys]


@pytest.fixture(scope="session")
def war_and_peace() -> Path:
    """The real corpus: $GPT_DATA (as .ci/run sets it), else the shared data folder beside the checkout."""
    path = Path(os.environ.get("GPT_DATA") or REPO.parent / "shared/data/war_and_peace.txt")
    assert path.is_file(), f"War and Peace not found at {path}: set GPT_DATA to the corpus file"
    return path


@pytest.fixture
def short_text(tmp_path) -> Path:
    """A small corpus with a 21-character vocabulary, long enough for block_size 16 in both splits."""
    path = tmp_path / "short.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 12, encoding="utf-8")
    return path


def run_entry(module: str, *overrides: str, env: dict | None = None, timeout: float = 300,
              cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run `python -m <module> <overrides>` as a user would, and capture its output.
    `env` adds variables; a value of None removes one."""
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}
    return subprocess.run([sys.executable, "-m", module, *overrides], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=cwd)


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The run failed with a short message naming what was wrong, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) <= 3, message  # Hydra adds one hint line after its own errors
    for fragment in fragments:
        assert fragment in message, message
