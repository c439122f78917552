"""Sweeps: multirun jobs become offline W&B runs and a report; a failing job is recorded, not fatal; presets compose."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from conftest import (
    REPO,
    TINY,
    assert_one_line_error,
    compose_preset,
    no_credentials,
    read_summary,
    run_entry,
    run_process,
    sweep_jobs,
    tiny_except,
)
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from omegaconf import OmegaConf

from gpt.errors import UserError
from gpt.reporting import Run, ablation_table
from gpt.run_dirs import find_checkpoint
from gpt.validation import check_config, check_single_run_of_a_sweep, check_sweep_values
from gpt.workspace import build_workspace

PRESETS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
SINGLE_RUN_PRESETS = {"speedrun"}  # a budget for one run, not a sweep
WANDB = str(Path(sys.executable).with_name("wandb"))
TINY_GPT = ["model.n_layer=1", "model.n_embd=32", "model.n_head=2"]


def wandb_records(run: Path) -> list[dict]:
    """The records of an offline run, read back from its .wandb file by W&B's own reader."""
    out = subprocess.run([WANDB, "leet", "inspect", "--json", str(run)], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_a_two_job_sweep_gives_two_wandb_runs_and_a_report(tmp_path, war_and_peace):
    """On a machine without W&B credentials, as any run there: offline W&B runs, no login prompt. (A single run
    keeps its W&B run in its run dir: tests/test_reliability.py's DDP test.)"""
    sweep = tmp_path / "sweep"
    result = run_process(  # a process of its own: W&B reads HOME and the credentials once per process
        "gpt.train",
        "-m",
        "kernel=eager,triton",
        *TINY_GPT,
        *tiny_except("inspect.full_val", "inspect.attention_maps"),  # both logged to W&B at the end
        "logger=default",
        "trainer.log_every_n_steps=1",
        f"hydra.sweep.dir={sweep}",
        # an empty matplotlib cache, as on a fresh machine: it notes, at INFO, that it builds one
        env=no_credentials(tmp_path, GPT_DATA=str(war_and_peace), MPLCONFIGDIR=str(tmp_path / "matplotlib")),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    said = (result.stdout + result.stderr).splitlines()
    assert not [line for line in said if "site-packages" in line], result.stderr  # no library's warnings
    assert not [line for line in said if re.match(r"\[[^]]*\]\[(?!HYDRA\])", line)]  # nor its logged notes

    runs = sorted((sweep / "wandb").glob("offline-run-*"))  # both jobs' W&B runs, kept in the sweep dir
    assert len(runs) == 2, list(sweep.rglob("*"))
    kernels = set()
    for run in runs:
        records = wandb_records(run)
        history = [r["history"]["item"] for r in records if r["type"] == "history"]
        train = [item["train/loss"] for item in history if "train/loss" in item]
        val = [item["val/loss"] for item in history if "val/loss" in item]
        assert len(train) == 4 and len(val) == 2, history
        assert all(np.isfinite(train + val))
        info = next(r["run"] for r in records if r["type"] == "run")
        interpreted = info["config"]["update"]["kernel"]["backend"] == "triton" and not torch.cuda.is_available()
        bpc = [item["val/bpc"] for item in history if "val/bpc" in item]  # not through the interpreter: hours
        maps = [item for item in history if "attention_maps._type" in item]  # one image, as W&B flattens it
        assert len(bpc) == (0 if interpreted else 1) and len(maps) == 1, history
        assert maps[0]["attention_maps._type"] == "images/separated" and maps[0]["attention_maps.count"] == 1
        assert (info["run_group"], info["job_type"]) == (sweep.name, "gpt"), info
        kernels.add(info["config"]["update"]["kernel"]["backend"])  # the resolved config is the run config
        assert set(info["tags"]) >= {"gpt", info["config"]["update"]["kernel"]["backend"]}
        assert next(r["exit"] for r in records if r["type"] == "exit")["exit_code"] == 0  # finished cleanly
    assert kernels == {"eager", "triton"}

    report = (sweep / "report.md").read_text()
    assert "| 0-gpt-eager |" in report and "| 1-gpt-triton |" in report, report
    image = matplotlib.image.imread(sweep / "val_loss.png")[..., :3]
    curve_colours = {tuple(c) for c in (image * 255).astype(int).reshape(-1, 3) if np.ptp(c) > 60}
    assert len(curve_colours) > 2, "the plot has no coloured curves"


def test_the_search_preset_runs_its_trials_and_names_the_best(tmp_path, short_text):
    """+experiment=search through Optuna: each trial a run with values drawn from the preset's ranges, the val loss
    it returns minimised; Optuna and its database layer leave the telling to Hydra's sweeper."""
    sweep = tmp_path / "sweep"
    tiny = [*tiny_except("trainer.max_steps"), "trainer.max_steps=2", "model.n_embd=16", "model.n_head=2"]
    result = run_entry("gpt.train", "-m", "+experiment=search", "hydra.sweeper.n_trials=3", "data=text",
                       f"data.path={short_text}", *tiny, f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    said = result.stdout + result.stderr
    assert "setup plugin" not in said and "\x1b[" not in said  # nor optuna's coloured repeat of the study's name
    parse = OverridesParser.create().parse_override
    params = OmegaConf.load(REPO / "conf" / "experiment" / "search.yaml").hydra.sweeper.params
    ranges = {key: parse(f"{key}={value}").value() for key, value in params.items()}  # interval(...), choice(...)
    losses = {}
    for job in sorted(sweep.glob("[0-9]-gpt-eager")):
        drawn = {o.key_or_group: o.value() for o in map(parse, OmegaConf.load(job / ".hydra" / "overrides.yaml"))}
        for key, allowed in ranges.items():
            if isinstance(allowed, IntervalSweep):
                assert allowed.start <= drawn[key] <= allowed.end, (key, drawn[key])
            else:
                assert drawn[key] in allowed.list, (key, drawn[key])
        losses[job.name] = read_summary(job)["val_loss"]
    assert len(losses) == 3
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(min(losses.values()), abs=1e-4)
    assert "| 2-gpt-eager |" in (sweep / "report.md").read_text()


def test_a_failing_job_is_reported_and_the_others_keep_their_results(tmp_path, war_and_peace):
    sweep = tmp_path / "sweep"
    result = run_entry(
        "gpt.train",
        "-m",
        "model.n_head=3,2",
        *TINY_GPT[:2],
        *TINY,
        f"hydra.sweep.dir={sweep}",
        env={"GPT_DATA": str(war_and_peace)},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "job 0" in errors[0] and "not divisible by model.n_head=3" in errors[0], errors
    assert read_summary(sweep / "1-gpt-eager")["steps"] == 4  # the job after the failure ran to the end
    assert (sweep / "0-gpt-eager" / "error.txt").read_text().startswith("model.n_embd=32 is not divisible")
    report = (sweep / "report.md").read_text()
    assert "| 0-gpt-eager |" in report and "failed: model.n_embd=32 is not divisible" in report, report
    assert "| 1-gpt-eager |" in report and "| ok |" in report, report


@pytest.mark.parametrize("where", [0, 1, 2])
def test_a_sweep_with_an_override_that_cannot_compose_stops_before_training(tmp_path, where):
    """-m before, between or after the overrides: a sweep each time (Hydra's parser alone takes only the first and
    last)."""
    overrides = ["model=bigram,gpt", "model.n_layer=2"]
    result = run_entry("gpt.train", *overrides[:where], "-m", *overrides[where:], f"hydra.sweep.dir={tmp_path}/s")
    assert_one_line_error(result, "model.n_layer", "BigramConfig", "allowed keys here: block_size")
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_sweep_hydra_cannot_list_or_a_sweep_preset_run_once_is_refused_in_one_line(tmp_path):
    """interval() under the basic sweeper (a traceback from Hydra); a sweep preset without -m (one run at the
    defaults of what it sweeps, silently)."""
    result = run_entry("gpt.train", "-m", "optim.lr=interval(1e-3,1e-2)", f"hydra.sweep.dir={tmp_path / 's'}")
    assert_one_line_error(result, "optim.lr=interval(1e-3,1e-2): interval() is a range", "hydra/sweeper=optuna")
    result = run_entry("gpt.train", "+experiment=depth", cwd=tmp_path)
    assert_one_line_error(result, "+experiment=depth is a sweep (model.n_layer=1,2,4,6): run it with -m, or give ")
    assert not list(tmp_path.rglob(".hydra"))  # neither left a run behind


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_composes_and_each_of_its_jobs_validates(preset, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # long_context's trainer=gpu: as on a GPU machine
    cfg = compose_preset(f"+experiment={preset}")
    params = cfg.hydra.sweeper.params
    assert cfg.name == preset  # its sweep dir and W&B group are named after it
    if preset in SINGLE_RUN_PRESETS:
        assert not params
        check_config(compose_preset(f"+experiment={preset}", with_hydra=False))
        return
    assert params, f"{preset} sweeps nothing"
    check_sweep_values(cfg.hydra.sweeper, [])  # the basic sweeper can list every value (search's sweeper samples)
    with pytest.raises(UserError, match=rf"^\+experiment={preset} is a sweep \(.+\): run it with -m, or give "):
        check_single_run_of_a_sweep(preset, cfg.hydra.sweeper, [f"+experiment={preset}"])
    check_single_run_of_a_sweep(preset, cfg.hydra.sweeper, [f"{key}=VALUE" for key in params])  # one run of it
    if preset == "search":
        assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper") and cfg.hydra.sweeper.direction == "minimize"
        return
    for job in sweep_jobs(f"+experiment={preset}"):
        check_config(job)
        OmegaConf.to_container(job, resolve=True)


def test_the_slurm_launcher_preset_composes():
    cfg = compose_preset("hydra/launcher=slurm", "+experiment=depth")
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.timeout_min > 0


def test_the_report_works_on_a_single_run_and_refuses_an_empty_folder(tmp_path, short_text):
    run = tmp_path / "run"
    result = run_entry("gpt.train", "data=text", f"data.path={short_text}", *TINY, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = run_entry("gpt.report", str(run))
    assert report.returncode == 0, report.stderr
    assert "| run |" in (run / "report.md").read_text() and (run / "val_loss.png").stat().st_size > 10_000
    assert_one_line_error(run_entry("gpt.report", str(tmp_path / "home")), "no such folder")
    last = str(run / "checkpoints" / "last.ckpt")  # a checkpoint given for its run
    assert_one_line_error(run_entry("gpt.report", last), f"{last}: a file, not a folder; its run dir is {run}")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_entry("gpt.report", str(tmp_path / "empty")), "no runs here")


@pytest.mark.parametrize(
    "command, argv, says",
    [
        ("gpt.report", ["--foo", "runs"], "unrecognized arguments: --foo; usage: python -m gpt.report [-h] dir"),
        ("gpt.report", [], "the following arguments are required: dir; usage: python -m gpt.report"),
        ("gpt.workspace", ["--dry-run"], "required: --entity; usage: python -m gpt.workspace [-h] --entity ENTITY"),
    ],
)
def test_a_mistake_on_the_command_line_of_report_or_workspace_is_one_line(command, argv, says):
    """As the Hydra commands say theirs: argparse's error, and its usage, in one line (argparse prints two)."""
    result = run_entry(command, *argv)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and says in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_the_workspace_command_loads_wandb_workspaces_only_to_build_one():
    """Its --help and its mistakes answer at once: the W&B library (a second and more of imports) loads after."""
    probe = (
        "import sys, contextlib, gpt.workspace\n"
        "with contextlib.suppress(SystemExit): gpt.workspace.main(['--help'])\n"
        "print('wandb_workspaces' in sys.modules)\n"
        "gpt.workspace.main(['--entity', 'someone', '--dry-run'])\n"
        "print('wandb_workspaces' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    after_help = result.stdout.split("\nFalse\n")[1].splitlines()  # the help, then whether it loaded the library
    assert after_help[0].startswith("Validation loss by phase:") and after_help[-1] == "True", result.stdout


def test_runs_whose_files_cannot_be_read_are_reported_as_damaged_and_the_others_as_ever(tmp_path, short_text):
    """Files cut short by a crash or edited by hand: the report still covers every run, marking the damaged ones,
    and resume=auto still finds the runs it can read (a run whose phase cannot be read is not one to resume)."""
    runs = tmp_path / "outputs" / "2026-12-01"
    good = runs / "10-00-00"
    result = run_entry("gpt.train", "data=text", f"data.path={short_text}", *TINY, f"hydra.run.dir={good}")
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("cut", "listed", "mistyped", "partial", "unread_config"):
        shutil.copytree(good, runs / name)
    (runs / "cut" / "summary.json").write_text('{"val_loss": 1.')
    (runs / "cut" / "metrics.csv").write_text("")
    (runs / "listed" / "summary.json").write_text("[1, 2]")
    summary = read_summary(good)
    (runs / "mistyped" / "summary.json").write_text(json.dumps({**summary, "val_loss": "1.2", "steps": 2.5}))
    (runs / "partial" / "summary.json").write_text(json.dumps({**summary, "tokens_per_sec": None, "kernel": None}))
    (runs / "listed" / "error.txt").write_text("")
    for name in ("hydra.yaml", "config.yaml", "overrides.yaml"):
        (runs / "unread_config" / ".hydra" / name).write_text("- [")
    (runs / "unread_config" / "checkpoints" / "last.ckpt").touch()  # the newest: resume=auto must pass it by
    report = run_entry("gpt.report", str(runs))
    assert report.returncode == 0, report.stderr
    rows = {row.split(" | ")[0].strip("| "): row for row in (runs / "report.md").read_text().splitlines()}
    val_loss = f"{summary['val_loss']:.3f}"
    assert val_loss in rows["10-00-00"] and rows["10-00-00"].endswith("| ok |")
    assert rows["cut"].endswith("| damaged: summary.json, metrics.csv unreadable; did not finish |")
    assert rows["listed"].endswith("| damaged: summary.json unreadable; failed: (no message) |")
    assert rows["mistyped"].endswith("| damaged: summary.json unreadable; did not finish |")
    assert rows["partial"].endswith(f"| {val_loss} | – / – | – | {summary['wall_seconds']:.0f} | – | ok |")
    assert val_loss in rows["unread_config"] and "| ? | ? |" not in rows["unread_config"]  # from its summary
    resumed = find_checkpoint("auto", "gpt", str(tmp_path / "outputs"))
    assert resumed.parent.parent.name in ("10-00-00", "cut", "listed", "mistyped", "partial")


def test_the_wandb_workspace_has_the_comparison_panels():
    workspace = build_workspace("someone", "gpt-war-and-peace", group="2026-11-25_10-00-00-phases")
    panels = {panel.title: panel for section in workspace.sections for panel in section.panels}
    assert panels["val loss by step, per phase"].groupby.name == "JobType"
    assert panels["val loss, per attention kernel"].groupby.name == "kernel.backend"
    assert "train/tokens_per_sec" in panels["tokens/s per kernel"].metrics
    view = workspace._to_model()  # what save() would upload: must serialise without a network
    assert "2026-11-25_10-00-00-phases" in view.model_dump_json()


def test_make_targets_point_at_the_sweep_dir(tmp_path):
    (tmp_path / "x" / "wandb" / "offline-run-1").mkdir(parents=True)
    out = subprocess.run(
        ["make", "-n", "sweep", "dashboard", "sync", "report", f"DIR={tmp_path}/x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "gpt.train -m +experiment=phases" in out
    assert f"wandb leet {tmp_path}/x/wandb" in out and f"wandb sync {tmp_path}/x/wandb/offline-run-*" in out
    assert f"gpt.report {tmp_path}/x" in out


def test_each_ablation_turns_off_its_technique_alone_from_all_on():
    """+ablation=no_X is all_on with X off, whatever model=modern's defaults are: one switch apart."""

    def switches(*ablation: str) -> dict:
        cfg = compose_preset("+experiment=modern_ablation", *ablation, with_hydra=False)
        return {**{f"model.{k}": v for k, v in cfg.model.items()}, **{f"optim.{k}": v for k, v in cfg.optim.items()}}

    all_on = switches("+ablation=all_on")
    for path in sorted((REPO / "conf" / "ablation").glob("no_*.yaml")):
        changed = {key for key, value in switches(f"+ablation={path.stem}").items() if all_on[key] != value}
        assert len(changed) == 1, (path.stem, changed)
    assert switches("+ablation=modern_default") == switches()  # model=modern untouched


def test_the_ablation_table_ranks_what_turning_each_technique_off_costs():
    def run(name: str, val_loss: float, tokens_per_sec: float) -> Run:
        summary = {"val_loss": val_loss, "tokens_seen": 1000, "steps": 10, "tokens_per_sec": tokens_per_sec}
        return Run(Path(name), [f"+ablation={name}", "kernel=eager"], summary=summary)

    runs = [run("all_off", 1.40, 1000), run("all_on", 1.20, 800), run("no_a", 1.30, 900), run("no_b", 1.25, 500)]
    rows = ablation_table([*runs, run("modern_default", 1.24, 880)]).splitlines()
    # all on: 1000 tokens in 10 steps at 800 tokens/s = 125 ms a step; each row's cost is against it
    assert rows[2] == "| nothing (all on) | 1.200 | – | 125.0 | – |"
    assert rows[3] == "| everything (= phase 5) | 1.400 | +0.200 | 100.0 | -20% |"
    assert rows[4] == "| a | 1.300 | +0.100 | 111.1 | -11% |"
    assert rows[5] == "| b | 1.250 | +0.050 | 200.0 | +60% |"
    assert rows[6] == "| what model=modern leaves off | 1.240 | +0.040 | 113.6 | -9% |"
    assert rows[-1].endswith("val loss 1.240 against 1.400, step time 113.6 ms against 100.0 ms (+13.6%).")
    assert "Phase 7's default" not in ablation_table(runs)
    assert ablation_table([*runs, run("no_c", 1.3, 0)]) == ablation_table(runs)  # resumed at its end: no speed
    assert ablation_table([runs[0], *runs[2:]]) == ""  # no all_on, nothing to measure against


def test_a_job_stopped_by_a_signal_ends_the_sweep_with_a_report_of_the_jobs_run(tmp_path, war_and_peace, monkeypatch):
    """Ctrl-C (or SIGTERM) in a job: the job checkpoints and exits 130 (tests/test_reliability.py), which ends the
    sweep; the report is still written, of the jobs run, and the line says the jobs after it were not started."""
    import gpt.training

    train_in = gpt.training.train_in

    def stopped_at_seed_2(run_dir, cfg, phase):
        if cfg.seed == 2:
            raise SystemExit(130)  # as train_in ends after a signal, its checkpoint saved
        return train_in(run_dir, cfg, phase)

    monkeypatch.setattr(gpt.training, "train_in", stopped_at_seed_2)
    sweep = tmp_path / "sweep"
    result = run_entry("gpt.train", "-m", "seed=1,2,3", "model=bigram", *TINY, f"hydra.sweep.dir={sweep}",
                       env={"GPT_DATA": str(war_and_peace)})  # fmt: skip
    assert result.returncode == 130, result.stderr[-3000:]
    report = sweep / "report.md"
    assert f"the sweep stopped at job 1, the jobs after it not started; the report of the jobs run: {report}" in (
        result.stderr
    )
    rows = [line for line in report.read_text().splitlines() if line.startswith("| 0-") or line.startswith("| 1-")]
    assert len(rows) == 2 and rows[0].endswith("| ok |") and rows[1].endswith("| did not finish |"), rows
    assert not list(sweep.glob("2-*"))
