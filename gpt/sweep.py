"""How a multirun behaves: a failing job is recorded and the sweep goes on; a report is written at the end.

Hydra composes every job of a sweep before the first one starts, so an override that does not compose (a
misspelt key, a wrong type, an option a phase lacks) stops the sweep at once, with one line, before any time
is spent. What can only fail once a job runs (values that don't fit together, a kernel that cannot run here,
a diverged loss, a bug) would end a Hydra sweep without a summary. Here it becomes `error.txt` in that job's
dir, one `error:` line on the console and a "failed" row in the sweep's report; the other jobs run and keep
their results, and the sweep exits non-zero. A job stopped by Ctrl-C or SIGTERM (its checkpoint saved) ends the
sweep, and the report of the jobs run is written then.
"""

from __future__ import annotations

import math
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gpt.errors import USER_ERRORS, counted, describe_user_error, one_line_errors
from gpt.run_dirs import ERROR, refuse_a_sweep_in
from gpt.validation import check_hardware, check_launcher, check_sweep_values, check_wandb_setup


def run_sweep_job(train: Callable[[DictConfig], float | None], cfg: DictConfig) -> float:
    """One multirun job: its val loss, or NaN (what optimising sweepers read as a failed trial) when it failed."""
    hydra = HydraConfig.get()
    job_dir = Path(hydra.runtime.output_dir)
    try:
        val_loss = train(cfg)
    except SystemExit:  # Ctrl-C or SIGTERM: the job saved its checkpoint and said how to resume it; the sweep ends
        report_a_stopped_sweep(hydra)
        raise
    except USER_ERRORS as exc:
        message, detail = describe_user_error(exc), ""
    except Exception as exc:  # a bug: keep its traceback in the job's error.txt, not on the console
        message = f"{type(exc).__name__}: {exc} (traceback in {job_dir / ERROR})"
        detail = traceback.format_exc()
    else:
        return math.nan if val_loss is None else val_loss
    (job_dir / ERROR).write_text(message + "\n" + (f"\n{detail}" if detail else ""))  # first line: the message
    print(f"error: job {hydra.job.num} ({' '.join(hydra.overrides.task)}): {message}", file=sys.stderr)
    # Optuna's sweeper plugin crashes on a NaN (it reports the trial failed, then tells optuna the value anyway):
    # give it +inf, the worst loss, so that the search goes on; error.txt and the report still say "failed".
    return math.inf if optuna_samples(hydra.sweeper) else math.nan


def optuna_samples(sweeper: DictConfig) -> bool:
    """Whether the sweep's values come from Optuna (hydra/sweeper=optuna, as +experiment=search)."""
    return "optuna" in str(sweeper.get("_target_", ""))


def jobs_run_here(launcher: DictConfig) -> bool:
    """Whether a multirun's jobs run on this machine, one after another in this process (Hydra's basic launcher),
    rather than launched elsewhere (hydra/launcher=slurm: each on a cluster node)."""
    return str(launcher.get("_target_", "")).endswith(".BasicLauncher")


def report_a_stopped_sweep(hydra: DictConfig) -> None:
    """The report of the jobs run so far, where a job stopped by a signal ends the sweep: Hydra's basic launcher,
    which runs the jobs one after another in this process. (A cluster's jobs are processes of their own: one
    stopping ends no other.)"""
    if not jobs_run_here(hydra.launcher):
        return
    from gpt.reporting import write_report

    report = write_report(Path(hydra.sweep.dir))
    print(f"the sweep stopped at job {hydra.job.num}, the jobs after it not started; the report of the jobs run: "
          f"{report}", file=sys.stderr)  # fmt: skip


class ReportAfterSweep(Callback):
    """Before a multirun, what no job can do stops it in one line (a GPU asked for where its jobs run here and there
    is none, a SLURM launcher where there is no SLURM, interval() where no sweeper samples, a sweep dir holding an
    earlier sweep's runs); at its end, the comparison report in the sweep dir, and a non-zero exit if a job
    failed."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        with one_line_errors():
            check_wandb_setup(config)
            if jobs_run_here(config.hydra.launcher):  # a login node need not have the GPUs its jobs are sent to
                check_hardware(config)
            check_launcher(config.hydra.launcher)
            check_sweep_values(config.hydra.sweeper, list(config.hydra.overrides.task))
            refuse_a_sweep_in(Path(config.hydra.sweep.dir))
        if optuna_samples(config.hydra.sweeper):  # its own coloured "A new study created" repeats "Study name: ..."
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from gpt.reporting import write_report  # matplotlib is only needed here

        sweep_dir = Path(config.hydra.sweep.dir)
        report = write_report(sweep_dir)
        failed = sorted(sweep_dir.glob(f"*/{ERROR}"))
        print(f"\nsweep report: {report}")
        if failed:
            print(
                f"{counted(len(failed), 'job')} failed, the others' results are kept: "
                f"{', '.join(path.parent.name for path in failed)}",
                file=sys.stderr,
            )
            sys.exit(1)
