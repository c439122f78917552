"""The W&B workspace that compares runs: val loss by phase, eager against Triton, tokens/s.

    python -m gpt.workspace --entity ME                         # all runs of the project
    python -m gpt.workspace --entity ME --group 2026-11-25_10-00-00-phases    # one sweep (its W&B group)
    python -m gpt.workspace --entity ME --dry-run               # print the panels; saves nothing

Saving needs a W&B account (`wandb login`) and the runs uploaded (`make sync`, or trained online). The same
comparison is always available offline as the sweep's report.md (gpt/reporting.py).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from gpt.config import LoggerConfig
from gpt.errors import OneLineArgumentParser

if TYPE_CHECKING:
    import wandb_workspaces.workspaces as ws


def build_workspace(entity: str, project: str, group: str | None = None) -> ws.Workspace:
    import wandb_workspaces.reports.v2 as wr  # a second and more: loaded once the command line is good
    import wandb_workspaces.workspaces as ws

    phase = wr.Metric("JobType")  # each run's job_type is its phase (gpt/train.py)
    kernel = wr.Config("kernel.backend")
    sections = [
        ws.Section(
            name="Validation loss by phase",
            is_open=True,
            panels=[
                wr.LinePlot(title="val loss by step, per phase", x="Step", y=["val/loss"], groupby=phase),
                wr.LinePlot(
                    title="val loss by wall time, per phase", x="RelativeTime(Wall)", y=["val/loss"], groupby=phase
                ),
            ],
        ),
        ws.Section(
            name="Eager vs Triton",
            is_open=True,
            panels=[
                wr.LinePlot(title="train loss, per attention kernel", x="Step", y=["train/loss"], groupby=kernel),
                wr.LinePlot(title="val loss, per attention kernel", x="Step", y=["val/loss"], groupby=kernel),
            ],
        ),
        ws.Section(
            name="Throughput",
            is_open=True,
            panels=[
                wr.LinePlot(title="tokens/s during training", x="Step", y=["train/tokens_per_sec"]),
                wr.BarPlot(title="tokens/s per kernel", metrics=["train/tokens_per_sec"], groupby=kernel),
            ],
        ),
    ]
    runs = ws.RunsetSettings(filters=[ws.Metric("Group") == group] if group else "")
    return ws.Workspace(
        entity=entity,
        project=project,
        name=f"gpt comparison{f' ({group})' if group else ''}",
        sections=sections,
        runset_settings=runs,
    )


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="python -m gpt.workspace", description=__doc__.splitlines()[0])
    parser.add_argument("--entity", required=True, help="W&B user or team")
    parser.add_argument("--project", default=LoggerConfig.wandb_project)
    parser.add_argument("--group", help="only the runs of this sweep (its W&B group: the sweep dir's name)")
    parser.add_argument("--dry-run", action="store_true", help="print the panels instead of saving")
    args = parser.parse_args(argv)
    if not args.dry_run:
        from gpt.validation import check_wandb_reachable

        check_wandb_reachable("could not save the workspace to W&B", otherwise="; or use --dry-run")
    workspace = build_workspace(args.entity, args.project, args.group)
    if args.dry_run:
        for section in workspace.sections:
            print(f"{section.name}: " + "; ".join(panel.title for panel in section.panels))
        return
    try:
        print(workspace.save().url)
    except Exception as exc:
        sys.exit(
            f"error: could not save the workspace to W&B entity {args.entity!r} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}); check the entity and the key `wandb login` took, or use --dry-run"
        )


if __name__ == "__main__":
    main()
