"""The training benchmark compares like with like: its plain loop trains exactly what the harness trains."""

import csv
import json
import subprocess
import sys

import pytest

from conftest import REPO, run_entry, tiny_except

SMALL = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2", "data.batch_size=4", "data.block_size=16",
         "trainer.precision=32"]


def test_the_plain_loop_follows_the_harness_loss(tmp_path, war_and_peace):
    """Same model init, batches, AdamW groups, LR schedule and clipping: same loss after 6 steps."""
    out = tmp_path / "plain.json"
    subprocess.run([sys.executable, str(REPO / "experiments" / "bench_train.py"), "--plain", str(out), "--steps", "6",
                    "--warmup", "0", *SMALL], cwd=REPO, check=True, env={"GPT_DATA": str(war_and_peace),
                                                                        "PATH": "/usr/bin:/bin"})
    plain = json.loads(out.read_text())["final_loss"]
    tiny = tiny_except("trainer.max_steps", "data.batch_size", "data.block_size")
    run = tmp_path / "harness"
    result = run_entry("gpt.train", *tiny, *SMALL, "trainer.max_steps=6", "trainer.log_every_n_steps=1",
                       f"hydra.run.dir={run}", env={"GPT_DATA": str(war_and_peace)})
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [float(row["train/loss"]) for row in csv.DictReader((run / "metrics.csv").open()) if row["train/loss"]]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert plain == pytest.approx(losses[-1], abs=1e-5)
