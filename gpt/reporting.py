"""The comparison report of a sweep, or of any folder of runs, built from the runs' own logs (the command:
gpt.report; written automatically at the end of every multirun, gpt/sweep.py).

Writes into that folder: `val_loss.png` (val loss against steps and against wall time, one curve per run,
coloured by phase and dashed by kernel), `final.png` (final val loss and tokens/s per run) and `report.md`
(the command, the machine, the plots and a table of every run, failed ones included). A run is any folder
holding Hydra's `.hydra/overrides.yaml` or a `summary.json` (gpt.run_dirs has the layout); its curves come from
`metrics.csv`, its totals from `summary.json`, its failure from `error.txt`, its phase and kernel from `.hydra/`
or else from `summary.json`.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from omegaconf import OmegaConf

import kernels
from gpt.config import PHASES
from gpt.machine import describe_machine
from gpt.run_dirs import ERROR, METRICS, RUN_MARKERS, SUMMARY, run_kernel, run_overrides, run_phase, runs_under

PHASE_TITLES = {name: f"{phase.number} {phase.title}" for name, phase in PHASES.items()}
LINE_STYLES = ("-", ":", "-.", "--")  # one per attention backend, in kernels.BACKENDS' order
KERNEL_STYLES = {name: LINE_STYLES[i % len(LINE_STYLES)] for i, name in enumerate(kernels.BACKENDS)}


def phase_rank(phase: str) -> int:
    """Where a phase sorts (tables and colours follow the phase order); unknown ones go last."""
    return list(PHASES).index(phase) if phase in PHASES else len(PHASES)


@dataclass
class Run:
    dir: Path
    overrides: list[str]
    phase: str = "?"
    kernel: str = "?"
    summary: dict | None = None
    error: str | None = None  # the first line of error.txt
    damaged: list[str] = field(default_factory=list)  # its files that could not be read (read_result)
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)  # step, wall_seconds, val_loss
    label: str = ""

    @property
    def status(self) -> str:
        """ok, failed: its error, or did not finish; its unreadable files said first."""
        status = f"failed: {self.error}" if self.error else ("ok" if self.summary else "did not finish")
        return f"damaged: {', '.join(self.damaged)} unreadable; {status}" if self.damaged else status

    @property
    def sort_key(self):
        num = re.match(r"\d+", self.dir.name)
        return (int(num.group()) if num else sys.maxsize, str(self.dir))


def load_run(run_dir: Path) -> Run:
    run = Run(run_dir, run_overrides(run_dir) or [], run_phase(run_dir) or "?", run_kernel(run_dir) or "?")
    run.summary = read_result(run, SUMMARY, read_summary)
    if run.summary:
        run.phase = run.phase if run.phase != "?" else run.summary.get("phase", "?")
        run.kernel = run.kernel if run.kernel != "?" else run.summary.get("kernel", "?")
    run.error = read_result(run, ERROR, lambda path: next(iter(path.read_text().splitlines()), "(no message)"))
    curve = read_result(run, METRICS, lambda path: validation_curve(pd.read_csv(path)))
    if curve is not None:
        run.curve = curve
    return run


def read_result(run: Run, name: str, read: Callable[[Path], Any]) -> Any:
    """What the run's file `name` holds, read; None where it is absent. A file that cannot be read (cut short by a
    crash or a full disk, edited by hand) is noted in run.damaged, so that the report lists the run as damaged and
    reports every other run as ever."""
    path = run.dir / name
    if not path.exists():
        return None
    try:
        return read(path)
    except (OSError, ValueError):  # also JSON's, pandas' and UTF-8's decoding errors
        run.damaged.append(name)
        return None


# what the report reads of a summary.json (gpt/training.py writes it), each of these types where present and not null
SUMMARY_TYPES = {
    **dict.fromkeys(("phase", "kernel"), str),
    **dict.fromkeys(("params", "steps", "tokens_seen", "peak_gpu_memory_mib"), int),
    **dict.fromkeys(("train_loss", "val_loss", "val_loss_full", "val_bpc", "tokens_per_sec", "wall_seconds"), float),
}


def read_summary(path: Path) -> dict:
    summary = json.loads(path.read_text())
    if not isinstance(summary, dict):
        raise ValueError(f"{path}: not a JSON object")
    for key, kind in SUMMARY_TYPES.items():
        value = summary.get(key)
        allowed = (int, float) if kind is float else kind  # JSON may write a whole float as an int (1.0 as 1)
        if value is not None and (isinstance(value, bool) or not isinstance(value, allowed)):  # a bool is no count
            raise ValueError(f"{path}: {key} is {value!r}, not a {kind.__name__}")
    return summary


def has(summary: dict | None, *keys: str) -> bool:
    """Whether the summary holds a value for every one of keys (a run that did not finish has nulls)."""
    return summary is not None and all(summary.get(key) is not None for key in keys)


def validation_curve(metrics: pd.DataFrame) -> pd.DataFrame:
    """Val loss by step and by the wall clock at that validation (gpt/callbacks.py logs both together)."""
    columns = {"step": "step", "time/wall_seconds": "wall_seconds", "val/loss": "val_loss"}
    if not set(columns) <= set(metrics.columns):
        return pd.DataFrame(columns=list(columns.values()))
    return metrics.dropna(subset=["val/loss"])[list(columns)].rename(columns=columns).reset_index(drop=True)


def find_runs(root: Path) -> tuple[list[Run], list[str]]:
    """The runs under root, and the overrides they all share; each run is labelled by the rest of its own."""
    runs = sorted((load_run(run_dir) for run_dir in runs_under(root)), key=lambda run: run.sort_key)
    shared = [o for o in runs[0].overrides if all(o in run.overrides for run in runs)] if len(runs) > 1 else []
    for run in runs:
        run.label = " ".join(o for o in run.overrides if o not in shared) or run.dir.name
    return runs, shared


def colours(runs: list[Run]) -> dict[Path, str]:
    """Colour by phase (and dash by kernel) when that tells every run apart; otherwise a colour per run."""
    palette = matplotlib.colormaps["tab10"].colors
    if len({(run.phase, run.kernel) for run in runs}) == len(runs) and len({run.phase for run in runs}) > 1:
        return {run.dir: palette[phase_rank(run.phase) % len(palette)] for run in runs}
    return {run.dir: palette[i % len(palette)] for i, run in enumerate(runs)}


def curves_figure(runs: list[Run], colour: dict[Path, str] | None = None) -> Figure:
    """Val loss against steps and against wall time, one curve per run (coloured by `colours` by default). A
    figure of its own, outside pyplot's state: a report saves it, a notebook shows it (gpt.api.curves)."""
    colour = colour or colours(runs)
    fig = Figure(figsize=(13, 5.5), layout="constrained")
    by_step, by_time = fig.subplots(1, 2, sharey=True)
    for run in runs:
        if run.curve.empty:
            continue
        style = dict(
            color=colour[run.dir],
            linestyle=KERNEL_STYLES.get(run.kernel, "-"),
            marker="o",
            markersize=3,
            label=run.label,
        )
        by_step.plot(run.curve["step"], run.curve["val_loss"], **style)
        by_time.plot(run.curve["wall_seconds"], run.curve["val_loss"], **style)
    by_step.set(xlabel="training step", ylabel="validation loss (nats / character)", title="val loss by step")
    by_time.set(xlabel="wall time since training started (s)", title="val loss by wall time")
    for ax in (by_step, by_time):
        ax.grid(alpha=0.3)
    by_time.set_xscale("log")  # fast and slow phases differ by 100x in time
    handles, labels = by_step.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=9)
    return fig


def plot_totals(runs: list[Run], colour: dict[Path, str], path: Path) -> None:
    finished = [run for run in runs if has(run.summary, "val_loss", "tokens_per_sec")]
    fig = Figure(figsize=(13, 0.5 * len(finished) + 1.8))
    loss, speed = fig.subplots(1, 2)
    names = [run.label for run in finished]
    y = np.arange(len(finished))
    bar_colours = [colour[run.dir] for run in finished]
    loss.barh(y, [run.summary["val_loss"] for run in finished], color=bar_colours)
    speed.barh(y, [run.summary["tokens_per_sec"] for run in finished], color=bar_colours)
    loss.set(yticks=y, yticklabels=names, xlabel="final validation loss (nats / character)", title="final val loss")
    speed.set(yticks=y, yticklabels=[], xlabel="training tokens / s (log scale)", title="throughput", xscale="log")
    for ax in (loss, speed):
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    for i, run in enumerate(finished):
        for ax, value, text in (
            (loss, run.summary["val_loss"], f"{run.summary['val_loss']:.3f}"),
            (speed, run.summary["tokens_per_sec"], f"{run.summary['tokens_per_sec']:,.0f}"),
        ):
            ax.annotate(text, (value, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")


def table(runs: list[Run]) -> str:
    rows = [
        "| run | phase | kernel | its overrides | params | steps | val loss | whole val split: loss / bpc | tokens/s "
        "| wall (s) | peak GPU MiB | status |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    order = sorted(runs, key=lambda r: (phase_rank(r.phase), r.kernel, r.sort_key))
    for run in order:
        s = run.summary or {}
        number = lambda key, fmt, s=s: format(s[key], fmt) if s.get(key) is not None else "–"
        rows.append(
            f"| {run.dir.name} | {PHASE_TITLES.get(run.phase, run.phase)} | {run.kernel} | "
            f"{run.label if run.label != run.dir.name else '–'} | {number('params', ',')} | {number('steps', 'd')} | "
            f"{number('val_loss', '.3f')} | {number('val_loss_full', '.3f')} / {number('val_bpc', '.3f')} | "
            f"{number('tokens_per_sec', ',.0f')} | "
            f"{number('wall_seconds', '.0f')} | {number('peak_gpu_memory_mib', ',')} | {run.status.replace('|', '/')} |"
        )
    return "\n".join(rows)


ABLATION = "+ablation="  # the override of conf/experiment/modern_ablation.yaml's sweep
# rows of the ablation table that are not one technique turned off (conf/ablation/NAME.yaml)
ABLATION_LABELS = {"all_off": "everything (= phase 5)", "modern_default": "what model=modern leaves off"}


def step_ms(summary: dict) -> float | None:
    """Milliseconds per training step (validation excluded), from the run's tokens/s; None where the run took no
    step or measured no speed (a run resumed at its last step)."""
    if not (has(summary, "tokens_seen", "steps", "tokens_per_sec") and summary["steps"] and summary["tokens_per_sec"]):
        return None
    return 1000 * summary["tokens_seen"] / summary["steps"] / summary["tokens_per_sec"]


def ablation_table(runs: list[Run]) -> str:
    """For a sweep with one run per +ablation=NAME: what turning each technique off costs against all_on, in
    val loss and in step time, most costly first. Empty for any other sweep."""
    finished = {
        override.removeprefix(ABLATION): run.summary
        for run in runs
        for override in run.overrides
        if override.startswith(ABLATION) and has(run.summary, "val_loss") and step_ms(run.summary) is not None
    }
    if "all_on" not in finished:
        return ""
    base = finished.pop("all_on")
    rows = [
        "| turned off | val loss | cost in val loss | step (ms) | cost in step time |",
        "|---|---:|---:|---:|---:|",
        f"| nothing (all on) | {base['val_loss']:.3f} | – | {step_ms(base):.1f} | – |",
    ]
    for name, summary in sorted(finished.items(), key=lambda item: base["val_loss"] - item[1]["val_loss"]):
        label = ABLATION_LABELS.get(name, name.removeprefix("no_"))
        rows.append(
            f"| {label} | {summary['val_loss']:.3f} | {summary['val_loss'] - base['val_loss']:+.3f} | "
            f"{step_ms(summary):.1f} | {step_ms(summary) / step_ms(base) - 1:+.0%} |"
        )
    if {"modern_default", "all_off"} <= finished.keys():
        modern, gpt2 = finished["modern_default"], finished["all_off"]
        rows += [
            "",
            f"Phase 7's default (`model=modern`) against phase 5 (all off) in this sweep: val loss "
            f"{modern['val_loss']:.3f} against {gpt2['val_loss']:.3f}, step time {step_ms(modern):.1f} ms against "
            f"{step_ms(gpt2):.1f} ms ({step_ms(modern) / step_ms(gpt2) - 1:+.1%}).",
        ]
    return "\n".join(rows)


def sweep_command(root: Path) -> str:
    multirun = root / "multirun.yaml"
    if not multirun.exists():
        return ""
    overrides = OmegaConf.load(multirun).hydra.overrides.task
    return "python -m gpt.train -m " + " ".join(overrides)


def write_report(root: Path) -> Path:
    root = Path(root)
    runs, shared = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"{root}: no runs here (a run dir holds {' or '.join(RUN_MARKERS)})")
    colour = colours(runs)
    curves_figure(runs, colour).savefig(root / "val_loss.png", dpi=120, bbox_inches="tight")
    plot_totals(runs, colour, root / "final.png")
    command = sweep_command(root)
    failed = sum(run.error is not None for run in runs)
    text = "\n".join(
        [
            f"# {root.name}",
            "",
            f"{len(runs)} runs ({failed} failed), report written {datetime.now():%Y-%m-%d %H:%M} "
            f"on {describe_machine()}.",
            *([f"Command: `{command}`"] if command else []),
            *([f"Overrides shared by every run: `{' '.join(shared)}`"] if shared else []),
            "",
            "![validation loss by step and by wall time](val_loss.png)",
            "",
            "![final validation loss and throughput](final.png)",
            "",
            table(runs),
            "",
            *(["## Ablation", "", ablation, ""] if (ablation := ablation_table(runs)) else []),
        ]
    )
    path = root / "report.md"
    path.write_text(text)
    return path
