"""The Python API (gpt.api) against the commands it stands for: the same run dirs for the same overrides, the same
one-line refusals (as an exception), the same samples, evaluations and attention maps from a checkpoint."""

import datetime
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, TINY, assert_one_line_error, environment, run_entry, tiny_except
from hydra.core.global_hydra import GlobalHydra

import gpt
import kernels

SMALL = ["model=gpt", "model.n_layer=1", "model.n_embd=16", "model.n_head=2", "data=text", *tiny_except()]
VARYING = {"run_dir", "checkpoint", "wall_seconds", "tokens_per_sec"}  # where and how fast, never what


def files(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, war_and_peace) -> dict:
    """One small GPT trained through the API and the same overrides through the command."""
    folder = tmp_path_factory.mktemp("api")
    corpus = folder / "corpus.txt"
    corpus.write_text(war_and_peace.read_text()[:60_000])
    overrides = [*SMALL, f"data.path={corpus}"]
    with environment({"GPT_DATA": None}, folder):
        api_run = gpt.run(*overrides, f"hydra.run.dir={folder / 'api'}")
    command = run_entry("gpt.train", *overrides, f"hydra.run.dir={folder / 'cli'}", cwd=folder)
    assert command.returncode == 0, command.stderr[-3000:]
    assert "site-packages" not in command.stderr, command.stderr  # no library's warnings: the run's own lines only
    return {"api": api_run, "cli": folder / "cli", "folder": folder}


def test_the_api_and_the_command_make_the_same_run_dir(trained):
    api, cli = trained["api"].dir, trained["cli"]
    assert files(api) == files(cli) and {".hydra/config.yaml", "summary.json", "checkpoints/last.ckpt"} <= files(api)
    assert (api / ".hydra" / "config.yaml").read_text() == (cli / ".hydra" / "config.yaml").read_text()
    overrides = [yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text()) for d in (api, cli)]
    assert [[o for o in each if not o.startswith("hydra.run.dir=")] for each in overrides] == [SMALL + [
        o for o in overrides[0] if o.startswith("data.path=")]] * 2  # fmt: skip
    summaries = [json.loads((d / "summary.json").read_text()) for d in (api, cli)]
    assert [{k: v for k, v in s.items() if k not in VARYING} for s in summaries] == [
        {k: v for k, v in summaries[1].items() if k not in VARYING}
    ] * 2  # the same losses, step for step
    run = trained["api"]
    assert run.summary == summaries[0] and run.phase == "gpt" and run.kernel == "eager"
    assert run.checkpoint == api / "checkpoints" / "last.ckpt"
    assert list(run.metrics["val/loss"].dropna()) == list(run.curve["val_loss"]) and len(run.curve) == 2


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=gtp"],
        ["model.n_embd=30"],
        ["trainer.max_step=3"],
        ["+trainer.max_step=3"],
        ["optim.algorithm=muon", "model=bigram"],
    ],
)
def test_a_refused_override_raises_the_commands_one_line(overrides, tmp_path):
    command = run_entry("gpt.train", *overrides, f"hydra.run.dir={tmp_path / 'cli'}")
    assert command.returncode == 2
    with pytest.raises(gpt.UserError) as refused:
        gpt.run(*overrides, f"hydra.run.dir={tmp_path / 'api'}")
    assert f"error: {refused.value}" == command.stderr.strip().splitlines()[0]
    assert not (tmp_path / "api" / "checkpoints").exists()
    with pytest.raises(gpt.UserError, match=str(refused.value)[:20]):
        gpt.compose(*overrides)
    assert GlobalHydra.instance().is_initialized() is False  # the next call starts afresh


def test_a_loaded_model_samples_evaluates_and_draws_what_the_commands_print(trained, tmp_path):
    ckpt = trained["api"].checkpoint
    model = gpt.load(ckpt, device="cpu")
    assert model.tokenizer.vocab == trained["api"].load().tokenizer.vocab
    sampled = run_entry("gpt.sample", f"ckpt={ckpt}", "prompt='He said'", "max_new_tokens=40", "seed=3", "top_k=5")
    assert model.sample("He said", max_new_tokens=40, seed=3, top_k=5) == sampled.stdout.rstrip("\n")
    assert model.sample("He said", max_new_tokens="40", seed="3", top_k="5") == sampled.stdout.rstrip("\n")  # typed
    numbers = {"max_new_tokens": np.int64(40), "seed": torch.tensor(3), "top_k": np.int32(5)}  # a notebook's loop
    assert model.sample("He said", **numbers) == sampled.stdout.rstrip("\n")
    run_dir = trained["api"].dir  # as resume= takes it: its checkpoints/last.ckpt
    assert gpt.load(run_dir, device="cpu").checkpoint == ckpt
    assert gpt.load(trained["api"], device="cpu").checkpoint == ckpt  # a Run is its run dir
    assert gpt.Run.at(trained["api"]).summary == trained["api"].summary
    from_run_dir = run_entry(
        "gpt.sample", f"ckpt={run_dir}", "prompt='He said'", "max_new_tokens=40", "seed=3", "top_k=5"
    )
    assert from_run_dir.stdout == sampled.stdout
    pieces = list(model.stream("He said", max_new_tokens=40, seed=3, top_k=5))
    assert pieces[0] == "He said" and len(pieces) == 41
    evaluated = run_entry("gpt.evaluate", f"ckpt={ckpt}", "stride=8", cwd=tmp_path)
    result = model.evaluate(stride=8)
    assert str(result) == evaluated.stdout.strip() and result.split == "val" and result.stride == 8
    assert model.evaluate("split=train", stride=8).characters == int(0.9 * 60_000) - 1
    assert str(model.evaluate(stride=8, batch_tokens=np.int64(64))) == str(result)  # keywords, as gpt.run's
    figure = model.attention("He said")
    assert len(figure.axes) == 2 + 1  # one layer x two heads, and the colour bar
    drawn = run_entry("gpt.attention", f"ckpt={ckpt}", "text='He said'", f"out={tmp_path / 'maps.png'}")
    assert drawn.returncode == 0 and (tmp_path / "maps.png").stat().st_size > 10_000
    for call, line in (
        (lambda: model.sample("Zebra\u00e6"), "not in the model's vocabulary"),
        (lambda: model.sample("${x}"), r"^prompt: 3 .* vocabulary: '\$', '\{', '\}'"),  # text, not an interpolation
        (lambda: model.sample("He", temperature=0), r"temperature=0.0: must be in \(0, 100\]; top_k=1 samples"),
        (lambda: model.evaluate(split="test"), "no test split"),
        (lambda: model.attention("x" * 40), "block_size=16"),
        (lambda: gpt.load(ckpt, kernel="flash"), "kernel=flash: no such attention backend; allowed: eager"),
        (lambda: gpt.load(tmp_path / "none.ckpt"), "no such file; give a .ckpt file, or a run dir"),
        (lambda: gpt.load(tmp_path), "no such file"),  # a folder without checkpoints/last.ckpt
        (lambda: gpt.load(trained["folder"]), r"no such file; .*; this is a folder of runs \(2 with a checkpoint\)"),
        (lambda: gpt.Run.at(tmp_path / "none"), "no such run dir"),
        (lambda: gpt.Run.at(ckpt), rf"a file, not a run dir; its run dir is {re.escape(str(run_dir))}$"),
        (lambda: gpt.runs(ckpt), rf"{re.escape(str(ckpt))}: a file, not a folder; its run dir is "),
        (lambda: gpt.compose(command="sampl"), "command='sampl': allowed are train, sample, evaluate, attention"),
        (lambda: model.sample("He", temperature="hot"), "temperature: Value 'hot' of type 'str' could not be conv"),
        (lambda: model.sample("He", top_k=2.5), "top_k: Value '2.5' of type 'float' could not be converted to Int"),
        (lambda: gpt.run(["model=gpt"]), r"\['model=gpt'\]: overrides are strings, .* gpt.run\(\*overrides\)"),
        (lambda: model.evaluate(["split=val"]), r"\['split=val'\]: overrides are strings, one an argument"),
        (lambda: gpt.multirun(3), "3: overrides are strings, one an argument"),
        (lambda: gpt.run("-m", "model=bigram", *TINY, f"hydra.sweep.dir={tmp_path / 'one'}"), r"^-m: gpt.run trains"),
        (lambda: model.attention(5), "text=5: give a string of 1 to 16 characters"),
        (lambda: gpt.curves("outputs"), "'outputs': give a Run or a list of them"),
        (lambda: gpt.curves([]), r"\[\]: give a Run or a list of them .*\(gpt.runs of a folder without runs gives"),
    ):
        with pytest.raises(gpt.UserError, match=line):
            call()


def test_runs_started_in_one_second_from_one_process_get_their_own_dirs(tmp_path, short_text, monkeypatch):
    """Two API runs and two API sweeps with no dir given, all in the same second (the clock stopped): four dirs.
    (tests/test_integrity.py starts them in four processes.)"""

    class Stopped(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr("hydra.core.utils.datetime", Stopped)  # the clock of Hydra's ${now:} resolver
    overrides = ["model=bigram", "data=text", f"data.path={short_text}", *tiny_except()]
    with environment({}, tmp_path):
        runs = [gpt.run(*overrides, f"seed={seed}") for seed in (1, 2)]
        runs += [run for seed in (3, 4) for run in gpt.multirun(*overrides, f"seed={seed}")]
    assert len({run.dir for run in runs}) == 4, [run.dir for run in runs]
    assert all("03-04-05" in str(run.dir.relative_to(tmp_path)) for run in runs)  # all named for that second
    for seed, run in enumerate(runs, start=1):
        assert f"seed={seed}" in run.overrides and run.summary["steps"] == 4  # each its own run, kept


def test_a_multirun_returns_its_runs_in_job_order_a_failed_one_with_its_error(tmp_path, short_text):
    runs = gpt.multirun(
        "model=bigram,block", "optim.algorithm=muon", "data=text", f"data.path={short_text}", *tiny_except(),
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert [run.phase for run in runs] == ["bigram", "block"]
    assert "optim.algorithm=muon with model=bigram" in runs[0].error and runs[0].checkpoint is None
    assert runs[1].error is None and runs[1].summary["steps"] == 4
    assert (tmp_path / "sweep" / "report.md").is_file()
    described = lambda runs: [(run.dir, run.error, run.summary) for run in runs]
    assert described(gpt.runs(tmp_path / "sweep")) == described(runs)  # read back from the folder, in job order
    with pytest.raises(gpt.UserError, match=r"sweep: a folder of 2 runs, not one run; gpt.runs\('.*sweep'\) gives"):
        gpt.Run.at(tmp_path / "sweep")
    with pytest.raises(gpt.UserError, match="not a run dir"):
        gpt.Run.at(runs[1].dir / "checkpoints")
    assert [len(ax.lines) for ax in gpt.curves(runs).axes] == [1, 1]  # the failed job has no curve
    assert repr(runs) == (  # a line each, as a notebook prints them
        f"[Run({str(runs[0].dir)!r}, bigram, eager, failed: {runs[0].error}), "
        f"Run({str(runs[1].dir)!r}, block, eager, ok, val_loss {runs[1].summary['val_loss']:.4f}, 4 steps)]"
    )
    assert [len(ax.lines) for ax in gpt.curves(runs[1]).axes] == [1, 1]  # one run, not in a list
    assert runs[1].metrics["train/loss"].notna().any()
    with pytest.raises(gpt.UserError, match=r"no metrics.csv here \(optim.algorithm=muon with model=bigram"):
        _ = runs[0].metrics
    shutil.copytree(runs[1].dir, tmp_path / "cut")
    (tmp_path / "cut" / "metrics.csv").write_text("")  # cut short by a full disk
    with pytest.raises(gpt.UserError, match=r"cut/metrics\.csv: unreadable"):
        _ = gpt.Run.at(tmp_path / "cut").metrics


def test_evaluating_through_the_triton_interpreter_says_it_may_take_hours(trained, tmp_path, capsys):
    """Training leaves the whole split out where Triton's kernels would run interpreted; asked for by name, the
    evaluation runs, and says first what it costs (the same loss as eager's)."""
    short = tmp_path / "short.txt"
    short.write_text((trained["folder"] / "corpus.txt").read_text()[:3000])
    on_short_text = {"data": "text", "data.path": short, "stride": 8}
    eager = gpt.load(trained["api"], device="cpu").evaluate(**on_short_text)
    assert capsys.readouterr().err == ""
    if not kernels.INTERPRETING:  # a GPU machine's test run: Triton's kernels do not run on its CPU
        with pytest.raises(gpt.UserError, match="kernel=triton: on the CPU"):
            gpt.load(trained["api"], kernel="triton", device="cpu")
        return
    interpreted = gpt.load(trained["api"], kernel="triton", device="cpu").evaluate(**on_short_text)
    assert capsys.readouterr().err == (f"[kernel=triton runs in Triton's CPU interpreter here: scoring "
                                       f"{eager.characters} characters may take hours; kernel=eager computes the "
                                       "same]\n")  # fmt: skip
    assert interpreted.loss == pytest.approx(eager.loss, rel=1e-5)


def test_the_package_names_the_api_without_loading_it_for_the_commands(trained):
    """`import gpt.train` (every command) must not pay for the API's imports; `gpt.run` finds it on first use. A
    checkpoint loads, samples, scores its corpus and draws its attention without Lightning (about 3 s of
    imports): the checkpoint commands start sooner."""
    probe = (
        "import sys, gpt; print('gpt.api' in sys.modules, 'lightning' in sys.modules)\n"
        f"model = gpt.load({str(trained['api'].checkpoint)!r}, device='cpu')\n"
        "model.sample('He', max_new_tokens=3); model.evaluate(stride=16); model.attention('He said')\n"
        "print('lightning' in sys.modules)"
    )
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == ["False", "False", "False"]
    assert gpt.run.__module__ == "gpt.api" and gpt.Model.__module__ == "gpt.api"


def test_every_public_name_of_the_api_has_a_docstring_with_an_example():
    import inspect

    from gpt import api

    public = [getattr(api, name) for name in api.__all__ if name != "UserError"]
    members = [
        m
        for cls in public
        if inspect.isclass(cls)
        for n, m in vars(cls).items()
        if not n.startswith("_") and (callable(m) or isinstance(m, (property, classmethod)))
    ]
    for thing in (*public, *members):
        doc = inspect.getdoc(thing.fget if isinstance(thing, property) else thing)
        assert doc and ">>> " in doc, thing


def test_a_multirun_takes_the_flag_it_implies(monkeypatch):
    """gpt.multirun("-m", ...), as the command line is typed: one -m reaches Hydra."""
    monkeypatch.setattr(gpt.api, "_train_command", lambda argv: argv)
    assert gpt.multirun("-m", "seed=1,2") == gpt.multirun("--multirun", "seed=1,2") == ["-m", "seed=1,2"]


def test_keywords_are_the_overrides_they_spell(monkeypatch, tmp_path):
    """gpt.run(model="gpt", seed=1) is gpt.run("model=gpt", "seed=1"): each value reaches the config as given, a
    string Hydra would read otherwise (a comma, a quote, a bracket, "true", "1") quoted; a list is a sweep's values."""
    prompt = "Well, Prince, it's [so] (\\ $x) true"
    options = {"model": "gpt", "seed": 7, "model.dropout": np.float64(0.25), "compile": False, "sample.prompt": prompt,
               "data.path": tmp_path / "a corpus.txt", "name": "true", "inspect.stride": None}  # fmt: skip
    cfg = gpt.compose(**options)
    assert cfg.model == gpt.compose("model=gpt", "model.dropout=0.25").model and (cfg.seed, cfg.compile) == (7, False)
    assert (cfg.sample.prompt, cfg.data.path, cfg.name, cfg.inspect.stride) == (
        prompt, str(tmp_path / "a corpus.txt"), "true", None)  # fmt: skip
    as_strings = gpt.compose("model=gpt", "seed=7")
    assert as_strings == gpt.compose(model="gpt", seed=7) == gpt.compose(model="gpt", seed=torch.tensor(7))
    monkeypatch.setattr(gpt.api, "_train_command", lambda argv: [argv])  # the command line, as a run
    assert gpt.multirun("data=text", model=["bigram", "gpt"], seed=(1, 2)) == [["-m", "data=text", "model=bigram,gpt",
                                                                                  "seed=1,2"]]  # fmt: skip
    assert gpt.run("data=text", model="gpt", seed=1) == ["data=text", "model=gpt", "seed=1"]
    for call, refusal in [
        (
            lambda: gpt.run(model=["bigram", "gpt"]),
            "model=['bigram', 'gpt']: one run takes one value; gpt.multirun(model=[...]) sweeps",
        ),
        (lambda: gpt.multirun(seed=[]), "seed=[]: a sweep needs at least one value"),
        (lambda: gpt.compose(seed=object()), "a keyword's value is a string, number, bool, None or path"),
        (lambda: gpt.compose(modle="gpt"), "modle: Key 'modle' not in 'TrainConfig'"),
    ]:
        with pytest.raises(gpt.UserError, match=re.escape(refusal)):
            call()


@pytest.mark.parametrize("command", ["gpt.sample", "gpt.evaluate", "gpt.attention"])
def test_a_checkpoint_command_without_ckpt_names_the_newest_run(command, tmp_path):
    assert_one_line_error(run_entry(command, cwd=tmp_path), "ckpt: no checkpoint given", "none in outputs/ yet")
    for run in ("old", "new"):
        (tmp_path / "outputs" / "day" / run / "checkpoints").mkdir(parents=True)
        (tmp_path / "outputs" / "day" / run / "checkpoints" / "last.ckpt").write_bytes(b"")
    os.utime(tmp_path / "outputs" / "day" / "old" / "checkpoints" / "last.ckpt", (0, 0))  # 1970: the older
    assert_one_line_error(run_entry(command, cwd=tmp_path), "e.g. ckpt=outputs/day/new (the newest run)")
