"""End to end through the real entry points, as a user runs them: every phase trains and writes its summary,
checkpoints sample on their own, a tiny model overfits; AdamW steps fused and the trainer's gradient clipping
still holds. (W&B without credentials: tests/test_sweep.py.)"""

import csv
import itertools
import math
import re
from collections import Counter
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import TINY, assert_one_line_error, read_summary, run_entry, tiny_except, train_composed
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

import gpt.callbacks
import gpt.config
from gpt.checkpoints import load_checkpoint
from gpt.machine import run_precision
from gpt.module import LanguageModelModule

PHASES = list(gpt.config.PHASES)
SUMMARY_KEYS = {
    "phase",
    "kernel",
    "params",
    "steps",
    "tokens_seen",
    "train_loss",
    "val_loss",
    "tokens_per_sec",
    "wall_seconds",
    "peak_gpu_memory_mib",
    "precision",
    "checkpoint",
    "run_dir",
}


@pytest.mark.parametrize("phase", PHASES)
def test_every_phase_trains(phase, tmp_path, war_and_peace, capsys):
    summary = train_composed(f"model={phase}", *TINY, run_dir=tmp_path, env={"GPT_DATA": str(war_and_peace)})
    assert read_summary(tmp_path) == summary
    assert set(summary) == SUMMARY_KEYS
    assert summary["phase"] == phase and summary["kernel"] == "eager" and summary["steps"] == 4
    assert summary["tokens_seen"] == 4 * 4 * 16 and summary["tokens_per_sec"] > 0
    assert 0 < summary["val_loss"] < math.log(111) + 0.5
    checkpoint = torch.load(summary["checkpoint"], map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 4 and len(checkpoint["hyper_parameters"]["vocab"]) == 111
    assert (tmp_path / "metrics.csv").is_file()
    assert "val loss" in capsys.readouterr().out
    assert summary["peak_gpu_memory_mib"] is None  # trained on the CPU
    assert summary["precision"] == run_precision("auto", "cpu")  # the default, as it ran (Lightning takes no auto)
    # the checkpoint commands build, without Lightning, the very model Lightning's own loading gives
    loaded = load_checkpoint(summary["checkpoint"])
    module = LanguageModelModule.load_from_checkpoint(summary["checkpoint"])
    assert loaded.tokenizer.vocab == module.tokenizer.vocab and loaded.hparams == dict(module.hparams)
    want = module.model.state_dict()
    assert all(torch.equal(value, want[name]) for name, value in loaded.model.state_dict().items())
    assert loaded.model.state_dict().keys() == want.keys()
    idx = torch.randint(0, loaded.tokenizer.vocab_size, (2, 16))
    assert torch.equal(loaded.model.eval()(idx)[0], module.model.eval()(idx)[0])


@pytest.mark.parametrize(
    "accelerator, cuda, capabilities, precision",
    [
        ("auto", None, {"avx2": True, "avx512_f": True}, "32-true"),  # bf16 emulated: 20x slower than fp32 on AVX2
        ("auto", None, {"avx512_f": True, "avx512_bf16": True}, "bf16-mixed"),  # AVX-512 BF16 (an AMD EPYC Zen 4)
        ("cpu", True, {"amx_tile": True, "amx_bf16": True}, "bf16-mixed"),  # AMX (Intel Xeon from Sapphire Rapids)
        ("auto", True, {}, "bf16-mixed"),  # a GPU from Ampere on, whatever the CPU
        ("gpu", False, {"amx_bf16": True}, "16-mixed"),  # an older GPU: fp16 autocast, with its loss scaling
    ],
)
def test_the_default_precision_is_bf16_where_the_hardware_multiplies_it_natively(
    accelerator, cuda, capabilities, precision, monkeypatch
):
    monkeypatch.setattr("torch.cuda.is_available", lambda: cuda is not None)
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda including_emulation=True: bool(cuda))
    monkeypatch.setattr("torch.cpu.get_capabilities", lambda: capabilities)
    assert run_precision("auto", accelerator) == precision
    for given in gpt.config.PRECISIONS[1:]:  # every other value is taken as it is
        assert run_precision(given, accelerator) == given


def test_checkpoint_samples_without_the_corpus(tmp_path, short_text):
    run_dir = tmp_path / "run"
    trained = run_entry(
        "gpt.train",
        "model=gpt",
        "data=text",
        f"data.path={short_text}",
        "model.n_layer=1",
        "model.n_embd=16",
        "model.n_head=2",
        *TINY,
        f"hydra.run.dir={run_dir}",
        "kernel=sdpa",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Sample:" in trained.stdout and (run_dir / ".hydra" / "config.yaml").is_file()
    ckpt = read_summary(run_dir)["checkpoint"]
    short_text.unlink()
    result = run_entry(
        "gpt.sample", f"ckpt={ckpt}", "prompt='the quick'", "max_new_tokens=25", cwd=tmp_path, env={"GPT_DATA": ""}
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout.rstrip("\n")
    assert text.startswith("the quick") and len(text) == len("the quick") + 25
    assert set(text) <= set("the quick brown fox jumps over the lazy dog. ")
    assert not list(tmp_path.glob("outputs")), "sampling must not write a run dir"
    assert re.search(r"\[25 characters in [\d.]+ s: [\d,]+ characters/s, with a KV cache\]", result.stderr)
    assert "\n[1 character in " in run_entry("gpt.sample", f"ckpt={ckpt}", "max_new_tokens=1").stderr
    # within the block (16 characters) the cache samples what recomputing the context samples
    within = [
        run_entry(
            "gpt.sample", f"ckpt={ckpt}", "prompt='the quick'", "max_new_tokens=7", f"kv_cache={kv_cache}", "device=cpu"
        )
        for kv_cache in ("true", "false")
    ]
    assert within[0].stdout == within[1].stdout and "recomputing the context]" in within[1].stderr

    unknown = run_entry("gpt.sample", f"ckpt={ckpt}", "prompt='Zebra'", cwd=tmp_path)
    assert_one_line_error(unknown, "'Z'", "vocabulary")
    missing = run_entry("gpt.sample", f"ckpt={tmp_path}/nope.ckpt", cwd=tmp_path)
    assert_one_line_error(missing, "nope.ckpt", "no such file")
    for module in ("gpt.sample", "gpt.evaluate", "gpt.attention"):
        assert_one_line_error(run_entry(module, f"ckpt={ckpt}", "device=gpu"), "device=gpu", "auto, cpu, cuda")
    on_cuda = run_entry("gpt.sample", f"ckpt={ckpt}", "device=cuda", "max_new_tokens=5")
    if torch.cuda.is_available():
        assert on_cuda.returncode == 0 and len(on_cuda.stdout.rstrip("\n")) == 6, on_cuda.stderr
    else:
        assert_one_line_error(on_cuda, "device=cuda", "no CUDA GPU", "allowed here: auto, cpu")


def test_a_checkpoint_trained_through_triton_is_read_through_eager_on_the_cpu(tmp_path, short_text, monkeypatch):
    """On the CPU the Triton kernels run only in the interpreter: without it, the checkpoint commands read a
    checkpoint trained through them through eager attention (the same weights, said on stderr), and asking for a
    Triton kernel is a one-line error."""
    run_dir = tmp_path / "run"
    trained = run_entry(
        "gpt.train", "data=text", f"data.path={short_text}", "model.n_layer=1", *TINY, f"hydra.run.dir={run_dir}"
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    eager_ckpt, triton_ckpt = run_dir / "checkpoints" / "last.ckpt", tmp_path / "triton.ckpt"
    checkpoint = torch.load(eager_ckpt, weights_only=True)
    checkpoint["hyper_parameters"]["model"]["backend"] = "triton"  # as a GPU run through kernel=triton saves it
    torch.save(checkpoint, triton_ckpt)
    monkeypatch.setattr("kernels.INTERPRETING", False)
    sample = ["prompt='the quick'", "max_new_tokens=20", "device=cpu"]
    through_eager = run_entry("gpt.sample", f"ckpt={eager_ckpt}", *sample)
    read = run_entry("gpt.sample", f"ckpt={triton_ckpt}", *sample)
    assert read.returncode == 0, read.stderr
    assert read.stdout == through_eager.stdout and "trained with kernel=triton" in read.stderr
    assert "read with kernel=eager" in read.stderr
    maps = run_entry("gpt.attention", f"ckpt={triton_ckpt}", "text=quick", f"out={tmp_path / 'maps.png'}", "device=cpu")
    assert maps.returncode == 0 and (tmp_path / "maps.png").is_file(), maps.stderr
    by_key = run_entry("gpt.sample", f"ckpt={triton_ckpt}", "kernel.backend=eager", *sample)  # as training spells it
    assert by_key.returncode == 0 and by_key.stdout == through_eager.stdout, by_key.stderr
    for module in ("gpt.sample", "gpt.evaluate", "gpt.attention"):
        for kernel in ("kernel=triton", "kernel.backend=triton"):
            asked = run_entry(module, f"ckpt={triton_ckpt}", kernel, "device=cpu", cwd=tmp_path)
            assert_one_line_error(asked, "kernel=triton", "TRITON_INTERPRET=1", "allowed here: eager, sdpa")


def test_missing_corpus_is_a_one_line_error(tmp_path):
    result = run_entry(
        "gpt.train",
        *TINY,
        f"hydra.run.dir={tmp_path}",
        env={
            "GPT_DATA": "",
            "GPT_CACHE_DIR": str(tmp_path / "cache"),
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
        },
    )
    assert_one_line_error(result, "data.path=", "GPT_DATA=", str(tmp_path / "cache"))


def conditional_entropy(text: str) -> float:
    """H(next char | current char) in nats: the best loss any bigram model can reach on this text."""
    pairs = Counter(itertools.pairwise(text))
    firsts = Counter(text[:-1])
    return -sum(n / (len(text) - 1) * math.log(n / firsts[a]) for (a, _), n in pairs.items())


def test_a_tiny_model_overfits_a_short_text(tmp_path):
    corpus = tmp_path / "poem.txt"
    corpus.write_text("Well, Prince, so Genoa and Lucca are now just family estates of the Buonapartes.\n" * 3)
    summary = train_composed(
        "data=text",
        f"data.path={corpus}",
        "model.n_layer=2",
        "model.n_embd=32",
        "model.n_head=2",
        "data.block_size=32",
        "data.batch_size=16",
        "data.val_windows=4",
        "data.train_fraction=0.6",
        "trainer.max_steps=250",
        "trainer.val_check_interval=250",
        "optim.warmup_steps=20",
        "optim.lr=3e-3",
        "optim.weight_decay=0",
        "trainer.precision=32",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        "sample.max_new_tokens=10",
        run_dir=tmp_path / "run",
    )
    # The text repeats, so the held-out 40% is text the model saw and both losses must collapse towards zero
    # (uniform guessing over its 33 characters is ln 33 = 3.5 nats). Not to zero: the first characters of a
    # window have too little context to tell which occurrence of a letter they follow.
    bigram_entropy = conditional_entropy(corpus.read_text())
    assert summary["train_loss"] < 0.3 and summary["val_loss"] < 0.3, summary
    assert summary["val_loss"] < bigram_entropy / 3, (summary, bigram_entropy)


def train_losses(run_dir) -> list[float]:
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return [float(row["train/loss"]) for row in rows if row.get("train/loss")]


@pytest.mark.parametrize("backend", ["triton", "triton_naive"])
def test_triton_training_follows_the_eager_loss_curve(backend, tmp_path, war_and_peace):
    """Same seed, same batches: the Triton kernels (interpreted) must give eager's losses at every step."""
    curves = {}
    for kernel in ("eager", backend):
        run_dir = tmp_path / kernel
        train_composed(
            f"kernel={kernel}",
            "model.n_layer=1",  # each interpreted kernel launch costs ~0.2 s: one layer, five steps
            "model.n_embd=32",
            "model.n_head=2",
            *tiny_except("trainer.max_steps", "trainer.val_check_interval", "sample.max_new_tokens"),
            "trainer.max_steps=5",
            "trainer.val_check_interval=5",  # the train losses are compared: one validation, a 1-character sample
            "sample.max_new_tokens=1",
            "trainer.log_every_n_steps=1",
            "trainer.precision=32",
            run_dir=run_dir,
            env={"GPT_DATA": str(war_and_peace)},
        )
        curves[kernel] = train_losses(run_dir)
    assert len(curves["eager"]) == 5
    assert curves["eager"][-1] < curves["eager"][0]  # it is learning, so the steps differ from each other
    for step, (eager, triton) in enumerate(zip(curves["eager"], curves[backend], strict=True)):
        assert triton == pytest.approx(eager, abs=1e-4), f"step {step}"


@pytest.mark.parametrize("algorithm", ["adamw", "muon"])
@pytest.mark.parametrize(("precision", "clip"), [("bf16-mixed", "norm"), ("32-true", "norm"), ("bf16-mixed", "value")])
def test_adamw_steps_fused_and_the_trainers_clipping_still_holds(algorithm, precision, clip):
    """Lightning's mixed-precision plugin refuses to clip a fused optimiser's gradients; the module clips them."""
    model = {"_target_": "gpt.models.GPT", "block_size": 8, "n_layer": 1, "n_embd": 8, "n_head": 2, "dropout": 0.0,
             "backend": "eager"}  # fmt: skip
    optim = {"algorithm": algorithm, "lr": 1e-3, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1,
             "warmup_steps": 2, "schedule": "cosine", "min_lr_ratio": 0.1}  # fmt: skip
    module = LanguageModelModule(model, optim, vocab="abcde", max_steps=10)
    module.trainer = L.Trainer(precision=precision, gradient_clip_val=0.5, gradient_clip_algorithm=clip,
                               accelerator="cpu", logger=False, enable_checkpointing=False)  # fmt: skip
    optimizer = module.configure_optimizers()["optimizer"]
    assert (optimizer if algorithm == "adamw" else optimizer.parts[1]).defaults["fused"]
    for p in module.parameters():
        p.grad = torch.linspace(-3.0, 4.0, p.numel()).view_as(p)
    module.configure_gradient_clipping(optimizer, 0.5, module.trainer.gradient_clip_algorithm)
    grads = torch.cat([p.grad.flatten() for p in module.parameters()])
    if clip == "norm":
        assert torch.linalg.vector_norm(grads).item() == pytest.approx(0.5, rel=1e-5)
    else:
        assert grads.abs().max().item() == 0.5 and grads.min().item() == -0.5


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")  # inside Lightning (a run leaves it out: training)
@pytest.mark.parametrize("steps", [1, 7])
def test_tokens_per_second_leaves_out_the_first_step_validation_and_checkpoints(steps, tmp_path, monkeypatch):
    """A real Trainer on a fake clock: each step takes 1 s, the first 50 s more (one-off costs such as Triton's
    autotuning), each validation batch 30 s and each checkpoint 100 s. The pace is that of the 1 s steps, unless
    the first step is the only one; every step's tokens are counted."""
    clock = [0.0]
    monkeypatch.setattr(gpt.callbacks, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    windows = TensorDataset(torch.zeros(64, 8, dtype=torch.long))  # 4 x 8 = 32 tokens a batch

    class ClockedModel(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)

        def training_step(self, batch, batch_idx):
            clock[0] += 1.0 + 50.0 * (self.global_step == 0)
            return self.layer(batch[0].float()).mean()

        def validation_step(self, batch, batch_idx):
            clock[0] += 30.0

        def on_save_checkpoint(self, checkpoint):
            clock[0] += 100.0

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            return DataLoader(windows, batch_size=4)

        def val_dataloader(self):
            return DataLoader(windows, batch_size=4)

    throughput = gpt.callbacks.TokensPerSecond()
    trainer = L.Trainer(max_steps=steps, val_check_interval=2, limit_val_batches=2, accelerator="cpu", logger=False,
                        callbacks=[throughput, ModelCheckpoint(dirpath=tmp_path, monitor=None)],
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(ClockedModel())
    assert clock[0] > 51.0 * steps and throughput.tokens == 32 * steps
    assert throughput.tokens_per_sec == (32 / 51.0 if steps == 1 else 32 / 1.0)


@pytest.mark.parametrize(("setting", "mode"), [("true", None), ("reduce-overhead", "reduce-overhead")])
def test_compile_compiles_the_training_and_validation_steps(setting, mode, tmp_path, war_and_peace, monkeypatch):
    """compile=true|MODE hands the model's forward to torch.compile with that mode, and every training and
    validation step runs through what it returns (a stand-in here: tests/test_compile.py compiles for real).
    The sample after training runs the plain model."""
    compiled, calls = [], Counter()

    def compile_spy(function, mode=None):
        compiled.append(mode)

        def counted(*args):
            calls["training" if function.__self__.training else "validation"] += 1
            return function(*args)

        return counted

    monkeypatch.setattr(torch, "compile", compile_spy)
    summary = train_composed(f"compile={setting}", *TINY, run_dir=tmp_path, env={"GPT_DATA": str(war_and_peace)})
    assert compiled == [mode]
    assert calls["training"] == summary["steps"]
    # Lightning's sanity check (2 batches), then two validations of data.val_windows=8 windows, 4 a batch; the
    # sample's 20 characters are not among them
    assert calls["validation"] == 2 + 2 * 8 // 4
    checkpoint = torch.load(summary["checkpoint"], map_location="cpu", weights_only=False)
    assert all(key.startswith("model.") for key in checkpoint["state_dict"])  # the plain parameter names


def test_64_bit_training_follows_32_bit_training_in_float64(tmp_path, war_and_peace):
    """trainer.precision=64 (Lightning's 64-true) keeps the weights in float64: the same seed and batches give fp32's
    losses to fp32's rounding, and the checkpoint holds float64 weights."""
    curves = {}
    for precision in ("32-true", "64"):
        run_dir = tmp_path / precision
        summary = train_composed(
            *tiny_except("trainer.max_steps", "trainer.val_check_interval", "sample.max_new_tokens"),
            "trainer.max_steps=4",
            "trainer.val_check_interval=4",
            "sample.max_new_tokens=1",
            "trainer.log_every_n_steps=1",
            f"trainer.precision={precision}",
            run_dir=run_dir,
            env={"GPT_DATA": str(war_and_peace)},
        )
        curves[precision] = train_losses(run_dir)
        weights = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"].values()
        assert {w.dtype for w in weights if w.is_floating_point()} == {
            torch.float64 if precision == "64" else torch.float32
        }
    assert summary["precision"] == "64-true"
    assert curves["32-true"][-1] < curves["32-true"][0]
    assert curves["64"] == pytest.approx(curves["32-true"], abs=1e-4)
