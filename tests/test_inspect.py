"""Looking inside a model: the loss over a whole split (gpt/inspection.py) against a float64 evaluation character
by character, the attention maps (gpt/inspection.py too) against the attention each layer applied, and both at the
end of training and from the command line."""

import copy
import math

import matplotlib.image
import pandas as pd
import pytest
import torch
from conftest import assert_one_line_error, read_summary, run_entry, tiny_except, train_composed
from test_models import ATTENTION_PHASES, T, V, build

import kernels
from gpt.errors import UserError
from gpt.inspection import attention_layers, attention_maps, evaluate_ids
from kernels.triton_runtime import INTERPRETING


def reference_loss(model, ids: torch.Tensor, stride: int) -> float:
    """Each character p = 1 .. N-1 scored alone, in float64, from the window that first reaches it: windows end at
    T, T + stride, T + 2 stride, ... (the last at N - 1), and span T characters (fewer only if N - 1 < T)."""
    model = copy.deepcopy(model).double()
    n_targets, block = len(ids) - 1, min(T, len(ids) - 1)
    total = 0.0
    for p in range(1, n_targets + 1):
        end = min(block + max(0, math.ceil((p - block) / stride)) * stride, n_targets)
        logits = model.logits(ids[None, end - block : p])[0, -1]
        total -= torch.log_softmax(logits, dim=-1)[ids[p]].item()
    return total / n_targets


@pytest.mark.parametrize("phase", ["bigram", "gpt", "modern"])
@pytest.mark.parametrize("stride, length", [(1, 60), (5, 61), (T // 2, 97), (T, 80), (T, T - 7)])
def test_the_whole_split_loss_matches_a_float64_evaluation_character_by_character(phase, stride, length):
    torch.manual_seed(0)
    model = build(phase).eval()
    ids = torch.randint(V, (length,))
    result = evaluate_ids(model, ids, stride, batch_tokens=3 * T)  # several batches, the last one short
    assert result.characters == length - 1 and result.stride == min(stride, length - 1)
    with torch.inference_mode():
        want = reference_loss(model, ids, stride)
    assert result.loss == pytest.approx(want, rel=1e-5)
    assert result.bits_per_character == pytest.approx(result.loss / math.log(2))


def test_a_model_that_knows_the_text_scores_zero_and_a_uniform_one_log_vocab():
    """The two limits: certainty about every next character costs 0 bits; a uniform guess log2(V) bits."""
    ids = torch.randint(V, (200,))
    uniform = build("bigram").eval()
    torch.nn.init.zeros_(uniform.table.weight)
    assert evaluate_ids(uniform, ids).bits_per_character == pytest.approx(math.log2(V), rel=1e-6)
    cycle = torch.arange(200) % V  # each character follows from the one before: a bigram table can know it
    oracle = build("bigram").eval()
    with torch.no_grad():
        oracle.table.weight.fill_(-100.0)
        oracle.table.weight[torch.arange(V), (torch.arange(V) + 1) % V] = 100.0
    assert evaluate_ids(oracle, cycle).loss == pytest.approx(0.0, abs=1e-6)


def attention_outputs(model, idx):
    """What each attention layer received (its input, and the value embedding in phase 7) and returned in a
    forward pass of idx."""
    seen = []
    hooks = [
        layer.register_forward_hook(lambda layer, args, output: seen.append((layer, args[:2], output)))
        for layer in attention_layers(model)
    ]
    with torch.inference_mode():
        model.logits(idx)
    for hook in hooks:
        hook.remove()
    return seen


BACKENDS = ["eager", "sdpa", *(kernels.TRITON_BACKENDS if INTERPRETING or torch.cuda.is_available() else [])]


@pytest.mark.parametrize("phase", ATTENTION_PHASES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_maps_are_the_attention_each_layer_applied(phase, backend):
    """Weights rows that are distributions over the past only, and that, applied to the layer's values and
    projected, give back the output the backend computed: so they are that backend's attention, not a lookalike."""
    device = "cuda" if backend in kernels.TRITON_BACKENDS and not INTERPRETING else "cpu"
    torch.manual_seed(0)
    model = build(phase, backend).to(device).eval()
    idx = torch.randint(V, (1, T), device=device)
    maps = attention_maps(model, idx)
    layers = attention_outputs(model, idx)
    assert maps.shape == (len(layers), layers[0][0].n_head, T, T)
    torch.testing.assert_close(maps.sum(-1), torch.ones(maps.shape[:-1]))
    assert maps.triu(diagonal=1).abs().max() == 0  # no query sees a later key
    for (layer, inputs, output), weights in zip(layers, maps, strict=True):
        with torch.inference_mode():
            _, _, v = layer.queries_keys_values(*inputs)  # (x, and phase 7's value embedding)
            heads = weights.to(device) @ v[0]  # (heads, T, head_dim)
            want = layer.proj(heads.transpose(0, 1).reshape(T, -1))
        torch.testing.assert_close(want, output[0], rtol=1e-4, atol=1e-5)


def test_phase_7_maps_are_the_same_through_every_backend():
    """Rotary embeddings and QK-norm act before the backend, so the maps (from the same q, k) agree, as do the
    deeper layers' inputs up to the backends' rounding."""
    torch.manual_seed(0)
    idx = torch.randint(V, (1, T))
    eager, sdpa = build("modern", "eager").eval(), build("modern", "sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    torch.testing.assert_close(attention_maps(eager, idx), attention_maps(sdpa, idx), rtol=1e-5, atol=1e-6)


def test_a_model_without_attention_is_refused():
    with pytest.raises(UserError, match="BigramLM has no attention"):
        attention_maps(build("bigram"), torch.zeros(1, 4, dtype=torch.long))


def test_training_ends_with_the_whole_split_figures_and_the_attention_maps(tmp_path, short_text):
    run_dir = tmp_path / "run"
    result = run_entry(
        "gpt.train",
        "data=text",
        f"data.path={short_text.name}",  # relative to the training's folder: the checkpoint records it absolute
        "model.n_layer=2",
        "model.n_embd=16",
        "model.n_head=2",
        *tiny_except("inspect.full_val", "inspect.attention_maps"),
        f"hydra.run.dir={run_dir}",
        "inspect.stride=4",
        cwd=short_text.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_summary(run_dir)
    val_characters = len(short_text.read_text()) - int(0.9 * len(short_text.read_text()))
    assert summary["val_chars_scored"] == val_characters - 1 and summary["val_stride"] == 4
    assert summary["val_bpc"] == pytest.approx(summary["val_loss_full"] / math.log(2), abs=1e-4)
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["val/bpc"].dropna().tolist() == [summary["val_bpc"]]
    picture = matplotlib.image.imread(run_dir / "attention.png")
    assert picture.shape[0] > 200 and picture.shape[1] > 200
    assert f"whole validation split {summary['val_loss_full']}" in result.stdout

    # The command line gives the same figure for the same checkpoint, from anywhere: by default on the corpus the
    # checkpoint was trained on (not War and Peace, the default data=), with data.KEY=... on top
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evaluated = run_entry("gpt.evaluate", f"ckpt={ckpt}", "stride=4", cwd=elsewhere)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"val split of {short_text}, {val_characters - 1:,} characters scored" in evaluated.stdout
    assert f"loss {summary['val_loss_full']:.4f} nats/char" in evaluated.stdout
    n_text = len(short_text.read_text())
    train = run_entry("gpt.evaluate", f"ckpt={ckpt}", "split=train", cwd=elsewhere)
    assert f"{int(0.9 * n_text) - 1:,} characters scored" in train.stdout
    half = run_entry("gpt.evaluate", f"ckpt={ckpt}", "data.train_fraction=0.5", cwd=elsewhere)
    assert f"val split of {short_text}, {n_text - int(0.5 * n_text) - 1:,} characters scored" in half.stdout
    moved = short_text.rename(tmp_path / "moved.txt")
    gone = run_entry("gpt.evaluate", f"ckpt={ckpt}", cwd=elsewhere)
    assert_one_line_error(gone, "the checkpoint's corpus", f"{short_text}: no such file", "data.path=FILE")
    found = run_entry("gpt.evaluate", f"ckpt={ckpt}", f"data.path={moved}", "stride=4", cwd=elsewhere)
    assert f"loss {summary['val_loss_full']:.4f} nats/char" in found.stdout
    moved.rename(short_text)

    drawn = run_entry("gpt.attention", f"ckpt={ckpt}", "text='the lazy dog'", f"out={tmp_path / 'maps.png'}")
    assert drawn.returncode == 0 and (tmp_path / "maps.png").is_file(), drawn.stderr
    into_a_folder = run_entry("gpt.attention", f"ckpt={ckpt}", "text=the", f"out={tmp_path / 'figures'}/")
    assert into_a_folder.stdout.strip() == str(tmp_path / "figures" / "attention.png"), into_a_folder.stderr
    for module, override, fragments in (
        ("gpt.evaluate", "stride=17", ("stride=17 is more than the model's block_size=16", "1 .. 16")),
        ("gpt.evaluate", "split=test", ("split=test", "no test split", "allowed: train, val")),
        ("gpt.attention", "text='the quick brown fox jumps'", ("25 characters", "block_size=16")),
        ("gpt.attention", "text=Zebra", ("'Z'", "vocabulary")),
        ("gpt.attention", "out=maps.png", ("no text= given", "War and Peace's first line", "'W'", "give text=")),
        ("gpt.attention", "out=maps.txt", ("out=maps.txt", "not a figure format", ".pdf, .pgf, .png")),
    ):
        assert_one_line_error(run_entry(module, f"ckpt={ckpt}", override, cwd=tmp_path), *fragments)
    under_a_file = run_entry("gpt.attention", f"ckpt={ckpt}", "text=the", "out=run/summary.json/maps.png", cwd=tmp_path)
    assert_one_line_error(under_a_file, "cannot write", str(run_dir / "summary.json" / "maps.png"), "can be written")
    other = tmp_path / "other.txt"
    other.write_text("THE QUICK BROWN FOX " * 20)
    assert_one_line_error(
        run_entry("gpt.evaluate", f"ckpt={ckpt}", "data=text", f"data.path={other}"), "val split of", "'B'"
    )


def test_a_bigram_run_reports_the_whole_split_and_draws_no_maps(tmp_path, short_text):
    run_dir = tmp_path / "run"
    overrides = [*tiny_except("inspect.full_val"), "model=bigram", "data=text", f"data.path={short_text}"]
    result = run_entry("gpt.train", *overrides, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_summary(run_dir)["val_bpc"] > 0 and not (run_dir / "attention.png").exists()


def test_a_fast_dev_run_skips_the_inspection(tmp_path, short_text, capsys):
    """Lightning's smoke test of the loop stays quick: no whole-split evaluation, no maps, and a line saying so."""
    overrides = [*tiny_except("inspect.full_val", "inspect.attention_maps"), "data=text", f"data.path={short_text}"]
    summary = train_composed(*overrides, "trainer.fast_dev_run=true", run_dir=tmp_path / "run")
    assert summary["steps"] == 1 and "val_loss_full" not in summary
    assert not (tmp_path / "run" / "attention.png").exists()
    assert "trainer.fast_dev_run: no whole-split evaluation and no attention maps" in capsys.readouterr().err
