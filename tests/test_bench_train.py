"""The training benchmark compares like with like: its nanoGPT-style loop trains what the harness trains."""

import importlib.util
import json

import pytest
from conftest import REPO, train_composed

spec = importlib.util.spec_from_file_location("bench_train", REPO / "experiments" / "scripts" / "bench_train.py")
bench_train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_train)


def test_the_nanogpt_loop_reaches_the_harness_val_loss_in_fp32(tmp_path, war_and_peace):
    """Same model init, batches, AdamW groups, LR schedule and clipping, both in fp32 with sdpa attention: the
    same val loss on the same windows after the same steps (the harness rounds it to 4 decimals)."""
    overrides = [*bench_train.shape_overrides("16x4", steps=6), "optim.warmup_steps=2", "data.val_windows=8"]
    overrides.append(f"data.path={war_and_peace}")
    out = tmp_path / "plain.json"
    bench_train.plain_loop(out, overrides)
    plain = json.loads(out.read_text())
    harness = train_composed(
        *overrides, "kernel=sdpa", "logger=none", "trainer.enable_progress_bar=false", "sample.max_new_tokens=1",
        "inspect.full_val=false", "inspect.attention_maps=false", run_dir=tmp_path / "harness",
    )  # fmt: skip
    assert harness["steps"] == 6 and plain["tokens_per_sec"] > 0
    assert plain["val_loss"] == pytest.approx(harness["val_loss"], abs=1e-4)


def test_shapes_are_block_by_batch():
    assert bench_train.block_by_batch("128x32") == "128x32"
    for wrong in ("64-12", "0x12", "64x", "x12", "64x12x3", "sixtyfourx12"):
        with pytest.raises(bench_train.argparse.ArgumentTypeError, match="BLOCKxBATCH"):
            bench_train.block_by_batch(wrong)
