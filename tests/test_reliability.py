"""Nothing is lost: signals checkpoint and resume exactly, NaN stops the run, bad input is one line, DDP matches."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch
from conftest import (
    REPO,
    TINY,
    assert_one_line_error,
    environment,
    read_summary,
    run_entry,
    run_process,
    tiny_except,
)
from omegaconf import OmegaConf
from torch.utils._python_dispatch import TorchDispatchMode

import gpt.api
from gpt.checkpoints import build_model
from gpt.errors import UserError
from gpt.machine import memory_bytes
from gpt.module import LanguageModelModule
from gpt.run_dirs import LAST_CHECKPOINT, find_checkpoint
from gpt.validation import kept_scores_bytes

# Slow enough (about 15 ms a step) that a signal lands mid-run; deterministic fp32, a loss logged every step; with
# dropout, so that a resumed run matches only if the random state (the dropout masks to come) was restored too.
STEPS = 200
STEADY = [
    "model.n_layer=2",
    "model.n_embd=64",
    "model.n_head=2",
    "model.dropout=0.1",
    "data.block_size=64",
    "data.batch_size=8",
    "data.val_windows=8",
    f"trainer.max_steps={STEPS}",
    "trainer.val_check_interval=25",
    "trainer.log_every_n_steps=1",
    "trainer.precision=32",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "sample.max_new_tokens=20",
    "logger=csv",
    "inspect.full_val=false",  # the end-of-training inspection: tests/test_inspect.py
    "inspect.attention_maps=false",
]


def losses(run_dir: Path, key: str = "train/loss") -> dict[int, float]:
    rows = [row for row in csv.DictReader((run_dir / "metrics.csv").open()) if row.get(key)]
    steps = [int(row["step"]) for row in rows]
    assert len(steps) == len(set(steps)), f"steps logged twice: {sorted(steps)}"
    return {int(row["step"]): float(row[key]) for row in rows}


def interrupt(run_dir: Path, signum: int, corpus: Path) -> subprocess.CompletedProcess:
    """Start a training, send it a signal once it is training, and let it finish."""
    env = {**os.environ, "GPT_DATA": str(corpus), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gpt.train", *STEADY, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:  # the model summary is printed when training starts
        if "Total params" in line:
            break
    first_checkpoint, deadline = run_dir / "checkpoints" / "last.ckpt", time.monotonic() + 120
    while signum == signal.SIGKILL and not first_checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # a killed run keeps only its validations' checkpoints: kill it after the first (a busy
        # machine may take longer than the sleep below to get there)
    time.sleep(1)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def checkpoint_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, war_and_peace) -> Path:
    run = tmp_path_factory.mktemp("uninterrupted")
    result = run_entry("gpt.train", *STEADY, f"hydra.run.dir={run}", env={"GPT_DATA": str(war_and_peace)})
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.mark.parametrize("signum", [signal.SIGINT, pytest.param(signal.SIGKILL, marks=pytest.mark.slow)])
def test_resume_after_ctrl_c_or_a_crash_continues_the_same_losses(signum, tmp_path, war_and_peace, uninterrupted):
    """Ctrl-C checkpoints the step it stopped at; a killed run keeps its last validation's checkpoint. Either way
    the resumed run logs, from there on, the losses of the run that was never stopped."""
    run = tmp_path / "interrupted"
    stopped = interrupt(run, signum, war_and_peace)
    step = checkpoint_step(run / "checkpoints" / "last.ckpt")
    assert 0 < step < STEPS, "the signal did not land mid-run"
    if signum == signal.SIGINT:
        assert stopped.returncode == 130 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
        assert f"stopped by SIGINT at step {step}" in stopped.stderr and f"resume={run}" in stopped.stderr

    resumed = run_entry("gpt.train", *STEADY, f"resume={run}", env={"GPT_DATA": str(war_and_peace)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run / 'checkpoints' / 'last.ckpt'} at step {step}" in resumed.stdout
    assert "site-packages" not in resumed.stderr, resumed.stderr  # no library's warning (its checkpoints exist: yes)
    assert read_summary(run)["steps"] == STEPS  # the run went on in its own dir, to the planned end
    expected, got = losses(uninterrupted), losses(run)
    assert sorted(got) == sorted(expected) == list(range(STEPS))  # the history continues, no step twice
    for s in range(step, STEPS):
        assert got[s] == pytest.approx(expected[s], rel=1e-6, abs=1e-6), f"step {s} (resumed at {step})"
    assert losses(run, "val/loss") == pytest.approx(losses(uninterrupted, "val/loss"), rel=1e-6)


def test_ctrl_c_after_training_keeps_the_summary_and_before_it_leaves_no_run(tmp_path, war_and_peace, monkeypatch):
    """Ctrl-C once training is done (its closing sample and look inside, which take a while on a large model): the
    summary is still written, the command ends as Ctrl-C does (130). Before training (while loading): one line, and
    the fresh run dir it had claimed is gone. From Python, either is an interrupted cell (KeyboardInterrupt)."""
    import gpt
    import gpt.training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(gpt.training, "look_inside", interrupted)
    closing = run_entry("gpt.train", *TINY, f"hydra.run.dir={run}", env={"GPT_DATA": str(war_and_peace)})
    assert closing.returncode == 130 and "Traceback" not in closing.stderr, closing.stderr[-3000:]
    assert "stopped by Ctrl-C after training" in closing.stderr and "summary.json" in closing.stderr
    assert read_summary(run)["steps"] == 4 and (run / "checkpoints" / "last.ckpt").is_file()

    monkeypatch.setattr(gpt.training, "train_in", interrupted)  # as if pressed while torch and Lightning load
    loading = run_entry("gpt.train", *TINY, "runs_dir=runs", env={"GPT_DATA": str(war_and_peace)}, cwd=tmp_path)
    assert loading.returncode == 130 and loading.stderr.strip() == "stopped by Ctrl-C", loading.stderr[-3000:]
    assert not list((tmp_path / "runs").glob("*/*")), "the claimed run dir is left behind"
    with environment({"GPT_DATA": str(war_and_peace)}, tmp_path), pytest.raises(KeyboardInterrupt):
        gpt.run(*TINY, "runs_dir=runs")


def test_a_ctrl_c_while_modules_load_waits_for_the_import_to_finish():
    """An interrupt inside an extension module's initialisation can surface as an ImportError (a traceback); the
    heavy imports hold Ctrl-C back until they are done, then raise it."""
    from gpt.process import ctrl_c_after

    assert threading.current_thread() is threading.main_thread()  # where Python delivers signals
    finished, before = False, signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), ctrl_c_after():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs at the next bytecode: it only records the Ctrl-C
        finished = True
    assert finished and signal.getsignal(signal.SIGINT) is before  # the handler before it is back


def test_resume_auto_without_a_run_is_a_one_line_error(tmp_path):
    result = run_entry("gpt.train", "resume=auto", *TINY, cwd=tmp_path)  # tmp_path has no outputs/
    assert_one_line_error(result, "resume=auto", "no model=gpt run", "resume=PATH")


def test_resume_takes_a_run_dir_or_a_file_and_sends_a_folder_of_runs_to_one_of_them(tmp_path):
    sweep = tmp_path / "sweep"
    for age, job in enumerate(("1-gpt-eager", "0-gpt-eager")):  # the first job's checkpoint written last
        checkpoint = sweep / job / LAST_CHECKPOINT
        checkpoint.parent.mkdir(parents=True)
        checkpoint.touch()
        os.utime(checkpoint, (1e9 - age, 1e9 - age))
    assert find_checkpoint(str(sweep / "1-gpt-eager"), "gpt", "outputs") == sweep / "1-gpt-eager" / LAST_CHECKPOINT
    assert find_checkpoint(str(sweep / "0-gpt-eager" / LAST_CHECKPOINT), "gpt", "outputs").is_file()
    refusal = r"no checkpoint there; give a run dir \(holding checkpoints/last.ckpt\), a .ckpt file, or resume=auto"
    folder = r"; this is a folder of runs \(2 with a checkpoint\): e.g. resume="
    for given, line in (
        (sweep, rf"{refusal}{folder}{sweep}/1-gpt-eager \(the newest\)"),
        (tmp_path, rf"{refusal}{folder}{sweep}/1-gpt-eager \(the newest\)"),
        (sweep / "0-gpt-eager" / "checkpoints", refusal),
        (sweep / "none", refusal),
    ):
        with pytest.raises(UserError, match=rf"^resume={given}: {line}$"):
            find_checkpoint(str(given), "gpt", "outputs")


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, war_and_peace):
    run = tmp_path / "run"
    tiny = tiny_except("trainer.max_steps", "trainer.val_check_interval")
    result = run_entry(
        "gpt.train",
        *tiny,
        "trainer.max_steps=60",
        "trainer.val_check_interval=2",
        "trainer.log_every_n_steps=1",
        "optim.lr=30",
        "optim.warmup_steps=10",  # diverges by ~step 16
        "trainer.gradient_clip_val=null",
        f"hydra.run.dir={run}",
        env={"GPT_DATA": str(war_and_peace)},
    )
    assert_one_line_error(result, "loss is nan at step", "The last good checkpoint is kept")
    step = int(re.search(r"at step (\d+)", result.stderr).group(1))
    kept = checkpoint_step(run / "checkpoints" / "last.ckpt")
    assert step - 2 <= kept < step and f"(step {kept})" in result.stderr  # the newest, not merely the best
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in state.values())


@pytest.fixture
def tiny_run(tmp_path, short_text) -> Path:
    run = tmp_path / "tiny"
    result = run_entry(
        "gpt.train", "data=text", f"data.path={short_text}", "model.n_layer=1", *TINY, f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["model.n_layer=2"], ["does not fit this run", "model.n_layer=1 there, 2 here"]),
        (["model=block"], ["does not fit this run", "GPT", "BlockLM"]),
        (["model.n_layer=1", "trainer.max_steps=9"], ["trainer.max_steps=4 there", "9 here"]),
        (
            ["model.n_layer=1", "data.tokenizer=bytes"],
            ["does not fit this run", "data.tokenizer=chars there, bytes here"],
        ),
    ],
)
def test_resuming_an_incompatible_checkpoint_is_a_one_line_error(tiny_run, short_text, overrides, fragments):
    tiny = tiny_except("trainer.max_steps")
    result = run_entry(
        "gpt.train",
        "data=text",
        f"data.path={short_text}",
        *tiny,
        "trainer.max_steps=4",
        *overrides,
        f"resume={tiny_run}",
    )
    assert_one_line_error(result, *fragments)


def test_a_corrupt_checkpoint_is_a_one_line_error_for_resume_and_sample(tmp_path, tiny_run, short_text):
    ckpt = tiny_run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated, as by a full disk
    result = run_entry("gpt.train", "data=text", f"data.path={short_text}", "model.n_layer=1", *TINY, f"resume={ckpt}")
    assert_one_line_error(result, str(ckpt), "not a readable checkpoint", "(beside it: best.ckpt)")
    assert_one_line_error(run_entry("gpt.sample", f"ckpt={ckpt}"), str(ckpt), "not a readable checkpoint")


@pytest.mark.parametrize(
    "alter, fragment",
    [
        (lambda weights: weights.update({"model.tok_emb.weight": weights["model.tok_emb.weight"][:5]}),
         "tok_emb.weight: (5, 128) there, (28, 128) here"),
        (lambda weights: weights.update({"model.pos_emb.old_name": weights.pop("model.pos_emb.weight")}),
         "pos_emb.old_name unexpected; pos_emb.weight missing"),
    ],
)  # fmt: skip
def test_a_checkpoint_whose_weights_do_not_fit_its_model_is_one_line_for_sample_and_resume(
    tmp_path, tiny_run, short_text, alter, fragment
):
    """Weights another version of the harness wrote, or altered since: torch's load_state_dict would print its
    wall of missing and mismatched keys."""
    checkpoint = torch.load(tiny_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    alter(checkpoint["state_dict"])
    altered = tmp_path / "altered.ckpt"
    torch.save(checkpoint, altered)
    refusal = [str(altered), "its weights do not fit the model its hyper-parameters describe", fragment]
    assert_one_line_error(run_entry("gpt.sample", f"ckpt={altered}"), *refusal)
    resume = ["data=text", f"data.path={short_text}", "model.n_layer=1", *TINY, f"resume={altered}"]
    assert_one_line_error(run_entry("gpt.train", *resume), *refusal)


CPU_ALLOCATOR = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate "
    "28800000000 bytes. Error code 12 (Cannot allocate memory)"
)


def test_running_out_of_memory_in_a_checkpoint_command_is_one_line_and_other_errors_keep_their_traceback(
    tiny_run, monkeypatch
):
    """The CPU allocator's refusal, in gpt.evaluate: one line with the size in GiB and what to ask less of, from
    the command and from Python (a UserError); any other RuntimeError is a bug and stays one."""

    def raising(message: str):
        def evaluate_ids(*args, **kwargs):
            raise RuntimeError(message)

        return evaluate_ids

    monkeypatch.setattr("gpt.inspection.evaluate_ids", raising(CPU_ALLOCATOR))
    result = run_entry("gpt.evaluate", f"ckpt={tiny_run}")
    assert_one_line_error(result, "out of memory: torch could not allocate 26.8 GiB more", "smaller batch_tokens")
    with pytest.raises(UserError, match=r"out of memory: torch could not allocate 26\.8 GiB more"):
        gpt.api.load(tiny_run).evaluate()
    monkeypatch.setattr("gpt.inspection.evaluate_ids", raising("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        run_entry("gpt.evaluate", f"ckpt={tiny_run}")


@pytest.mark.parametrize(
    "content, fragments",
    [
        (b"", ["empty"]),
        (b"abc\x00def" * 100, ["binary", "or data.tokenizer=bytes to train on its bytes"]),
        (b"caf\xe9 " * 100, ["not valid UTF-8", "or data.tokenizer=bytes to train on its bytes"]),
    ],
)
def test_a_bad_corpus_is_a_one_line_error(tmp_path, content, fragments):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    assert_one_line_error(run_entry("gpt.train", "data=text", f"data.path={corpus}", *TINY), str(corpus), *fragments)


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["data.batch_size=100000"], ["data.batch_size=100000", "distinct windows", "data.batch_size <="]),
        (["model.block_size=8"], ["data.block_size=16", "beyond the model's 8 positions"]),
        (  # counted in the tokenizer's unit
            ["data.tokenizer=bytes", "data.block_size=100", "model.block_size=100"],
            ["data.block_size=100 does not fit the validation split", "(54 bytes)", "data.block_size <= 52"],
        ),
    ],
)
def test_data_the_model_or_text_cannot_hold_is_a_one_line_error(tmp_path, short_text, overrides, fragments):
    result = run_entry(
        "gpt.train", "data=text", f"data.path={short_text}", *TINY, *overrides, f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert_one_line_error(result, *fragments)


class LiveScores(TorchDispatchMode):
    """Watches every op's outputs and keeps the peak of the bytes held at once by (batch, heads, T, T) tensors:
    scores, probabilities, and the copies made of them (flattened views count once, by their storage)."""

    def __init__(self, scores_shape: tuple[int, ...]):
        super().__init__()
        self.T, self.numel = scores_shape[-1], math.prod(scores_shape)
        self.tensors, self.peak = [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in torch.utils._pytree.tree_leaves(out):
            scores = isinstance(tensor, torch.Tensor) and tensor.shape[-2:] == (self.T, self.T)
            if scores and tensor.numel() == self.numel:
                self.tensors.append(weakref.ref(tensor))
        alive = [tensor for tensor in (ref() for ref in self.tensors) if tensor is not None]
        storages = {tensor.untyped_storage().data_ptr(): tensor.untyped_storage().nbytes() for tensor in alive}
        self.peak = max(self.peak, sum(storages.values()))
        return out


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_the_attention_memory_bound_is_at_most_what_a_training_forward_holds(precision):
    """kept_scores_bytes, which refuses runs, is a lower bound: eager attention's forward at a training shape holds
    at least that many bytes of T x T scores at once (those kept for the backward, and the layer computing)."""
    overrides = ["model=gpt", "model.n_layer=3", "model.n_head=2", "data.batch_size=3", "data.block_size=24"]
    cfg = gpt.api.compose(*overrides, "kernel=eager", f"trainer.precision={precision}")
    model, _ = build_model(OmegaConf.to_container(cfg.model, resolve=True), "chars", "abcdefghij")
    ids = torch.randint(10, (3, 24))
    watch = LiveScores((3, 2, 24, 24))
    with torch.autocast("cpu", torch.bfloat16, enabled=precision != "32"), watch:
        model(ids, ids)
    assert 0 < kept_scores_bytes(cfg) <= watch.peak
    compiled = gpt.api.compose(*overrides, "kernel=eager", f"trainer.precision={precision}", "compile=true")
    assert kept_scores_bytes(compiled) == kept_scores_bytes(cfg) * 3 // 4  # the three layers' kept tensors only
    assert kept_scores_bytes(gpt.api.compose(*overrides, "kernel=sdpa", "model.dropout=0")) == 0


def test_a_cpus_memory_is_the_machines_within_its_control_groups_limit():
    total = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1)) * 1024
    assert 0 < memory_bytes(torch.device("cpu")) <= total


def test_attention_scores_past_the_devices_memory_are_refused_before_training(tmp_path, war_and_peace, monkeypatch):
    """Scores that cannot fit (here a device of 256 MiB) are one line naming the sizes and what keeps no scores
    (3 layers' worth of 32 x 4 x 1024^2 bf16 scores), before the run writes anything."""
    monkeypatch.setattr("gpt.training.memory_bytes", lambda device: 2**28)
    tiny = tiny_except("data.block_size", "data.batch_size", "trainer.max_steps")
    run = tmp_path / "run"
    big = ["data.block_size=1024", "data.batch_size=32", "model.n_layer=2", "trainer.max_steps=1",
           "trainer.precision=bf16-mixed"]  # fmt: skip
    result = run_entry("gpt.train", *tiny, *big, f"hydra.run.dir={run}", env={"GPT_DATA": str(war_and_peace)})
    needed = f"{3 * 32 * 4 * 1024**2 * 2 / 2**30:.1f} GiB at least"
    sizes = "data.batch_size=32 x model.n_head=4 x data.block_size=1024"
    assert_one_line_error(result, sizes, needed, "this cpu has 0.2 GiB", "kernel=sdpa or kernel=triton")
    assert {path.name for path in run.iterdir()} == {".hydra", "train.log"}


def test_running_out_of_memory_in_training_is_one_line_keeping_the_last_checkpoint(tmp_path, short_text, monkeypatch):
    """torch.OutOfMemoryError (a GPU's) at step 3, after the step-2 checkpoint: one line naming the sizes to cut,
    and the checkpoint kept."""
    step = LanguageModelModule.training_step

    def out_of_memory_at_step_3(self, batch, batch_idx):
        if self.global_step == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity")
        return step(self, batch, batch_idx)

    monkeypatch.setattr(LanguageModelModule, "training_step", out_of_memory_at_step_3)
    run = tmp_path / "run"
    result = run_entry("gpt.train", "data=text", f"data.path={short_text}", *TINY, f"hydra.run.dir={run}")
    kept = f"The last good checkpoint is kept: {run / 'checkpoints' / 'last.ckpt'} (step 2)"
    advice = ["smaller data.batch_size, data.block_size or model", "kernel=sdpa or kernel=triton"]
    assert_one_line_error(result, "out of memory: torch could not allocate 2.50 GiB more", *advice, kept)


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_follows_one_process_with_the_same_global_batch(tmp_path, war_and_peace):
    tiny = tiny_except("logger", "trainer.max_steps", "data.batch_size")
    common = [
        "model.n_layer=1",
        "model.n_embd=32",
        "model.n_head=2",
        *tiny,
        "trainer.max_steps=6",
        "trainer.precision=32",
        "logger=default",
    ]
    env = {"GPT_DATA": str(war_and_peace), "WANDB_MODE": "offline"}
    single = run_entry("gpt.train", *common, "data.batch_size=4", f"hydra.run.dir={tmp_path / 'one'}", env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = run_process(  # Lightning starts rank 1 by running this process's command line again
        "gpt.train",
        *common,
        "trainer=ddp",
        "data.batch_size=2",
        f"hydra.run.dir={tmp_path / 'two'}",
        env=env,
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    noise = [line for line in (ddp.stdout + ddp.stderr).splitlines() if re.search("warn|Initializing distributed", line,
                                                                                  re.IGNORECASE)]  # fmt: skip
    assert not noise  # Lightning's per-rank notes: only what the run says
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]  # one run dir, shared by both processes
    assert len(list((tmp_path / "two" / "wandb").glob("offline-run-*"))) == 1  # one W&B run, from rank 0
    assert len(list((tmp_path / "two").rglob("config.yaml"))) == 1
    one, two = losses(tmp_path / "one", "val/loss"), losses(tmp_path / "two", "val/loss")
    assert len(one) == 3 and sorted(one) == sorted(two)
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4), step
    assert read_summary(tmp_path / "two")["tokens_seen"] == read_summary(tmp_path / "one")["tokens_seen"]


def children(pid: int) -> list[int]:
    """The processes whose parent is pid (from /proc: Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_stops_every_rank_with_one_checkpoint(tmp_path, war_and_peace):
    """Two gloo processes; only rank 1 gets SIGTERM. Both leave after the same step, rank 0 having written the
    checkpoint of that step, and the run says how to resume: no rank is left waiting in a collective. (SIGTERM as
    a scheduler sends it; one process stopped by a signal, and resumed: the Ctrl-C test above.)"""
    run = tmp_path / "run"
    steady = [o for o in STEADY if not o.startswith(("data.batch_size", "trainer.max_steps"))]
    env = {**os.environ, "GPT_DATA": str(war_and_peace), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpt.train",
            *steady,
            "trainer=ddp",
            "data.batch_size=4",
            "trainer.max_steps=2000",
            f"hydra.run.dir={run}",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ranks = [process.pid]
    try:
        for line in process.stdout:  # printed by rank 0 once training starts, when both ranks are up
            if "Total params" in line:
                break
        time.sleep(1)
        ranks += children(process.pid)
        os.kill(ranks[1], signal.SIGTERM)
        _, stderr = process.communicate(timeout=300)
    finally:  # a rank that a failure left waiting in a collective goes too
        for rank in ranks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(rank, signal.SIGKILL)
    assert process.returncode == 143, stderr[-3000:]
    step = checkpoint_step(run / "checkpoints" / "last.ckpt")
    assert 0 < step < 2000 and f"stopped by SIGTERM at step {step}" in stderr, stderr[-3000:]
    assert "resume with: python -m gpt.train" in stderr and f"resume={run}" in stderr, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
