"""Run dirs: what one holds, a fresh one per run, the resumed run's own on resume, each held by one process at a time.

The layout, the one place training, resume, sweeps and reports read it from:

    .hydra/                 the composed config (config.yaml, hydra.yaml: the phase chosen, overrides.yaml)
    metrics.csv             every logged metric by step (Lightning's CSV logger)
    summary.json            the finished run's figures (gpt/training.py)
    error.txt               a failed sweep job's one-line message, then its traceback if it was a bug
    checkpoints/last.ckpt   rewritten at every validation; best.ckpt beside it

A resumed run goes on in the run dir its checkpoint came from (conf/config.yaml asks `resumed_run_dir` for
Hydra's run dir), so metrics.csv, the W&B run and checkpoints/ continue rather than start again. These are
Hydra resolvers and run before anything heavy is imported: no torch here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from gpt.errors import USER_ERRORS, UserError

HYDRA_DIR = ".hydra"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
ERROR = "error.txt"
CHECKPOINTS = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINTS}/last.ckpt"


RUN_MARKERS = (f"{HYDRA_DIR}/overrides.yaml", SUMMARY)  # a folder holding either is a run dir (gpt.report's runs)


def is_run_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in RUN_MARKERS)


def check_folder(path: Path, what: str = "folder") -> None:
    """Refuse, in one line, a path that is not a folder: missing, or a file (a checkpoint given for its run dir)."""
    if path.is_dir():
        return
    if not path.exists():
        raise UserError(f"{path}: no such {what}")
    run_dir = next((parent for parent in path.parents[:2] if is_run_dir(parent)), None)
    raise UserError(f"{path}: a file, not a {what}" + (f"; its run dir is {run_dir}" if run_dir else ""))


def holding(root: Path, names: tuple[str, ...], levels: tuple[str, ...]) -> set[Path]:
    """The folders under root that hold one of names (paths relative to such a folder), at the glob `levels` ("**":
    any depth, root included; "*", "*/*": one or two levels down)."""
    return {
        Path(*path.parts[: -len(Path(name).parts)])
        for name in names
        for level in levels
        for path in root.glob(f"{level}/{name}")
    }


def runs_under(root: Path) -> set[Path]:
    """The run dirs under root, root itself included (W&B's own folders left out)."""
    return {
        run_dir for run_dir in holding(root, RUN_MARKERS, ("**",)) if "wandb" not in run_dir.relative_to(root).parts
    }


def runs_near(folder: Path, *names: str) -> set[Path]:
    """The folders one or two levels under `folder` (a sweep's jobs, runs_dir's DAY/TIME runs) holding one of names
    (by default what makes a run dir): a shallow look, for a refusal of a folder given where one run was meant,
    which may be any folder at all (a home, /)."""
    return holding(folder, names or RUN_MARKERS, ("*", "*/*"))


def hydra_record(run_dir: Path, name: str) -> DictConfig | ListConfig | None:
    """A file Hydra wrote in run_dir/.hydra/, or None where it is absent or unreadable (cut short, edited by hand):
    such a run's phase, kernel or overrides are unknown, which stops no command that looks through the runs."""
    try:
        return OmegaConf.load(run_dir / HYDRA_DIR / name)
    except (OSError, yaml.YAMLError):
        return None


def run_phase(run_dir: Path) -> str | None:
    """The `model=` phase the run was started with (None where Hydra wrote no readable config there)."""
    hydra_yaml = hydra_record(run_dir, "hydra.yaml")
    return OmegaConf.select(hydra_yaml, "hydra.runtime.choices.model") if isinstance(hydra_yaml, DictConfig) else None


def run_kernel(run_dir: Path) -> str | None:
    """The attention backend the run trained through."""
    config = hydra_record(run_dir, "config.yaml")
    return OmegaConf.select(config, "kernel.backend") if isinstance(config, DictConfig) else None


def run_overrides(run_dir: Path) -> list[str] | None:
    """The command line's overrides of the run (None: not a run dir, or unreadable)."""
    overrides = hydra_record(run_dir, "overrides.yaml")
    return [str(override) for override in overrides] if isinstance(overrides, ListConfig) else None


def newest_checkpoint(runs_dir: str, phase: str | None = None) -> Path | None:
    """The newest last.ckpt of the runs under runs_dir (its DAY/TIME run dirs), of one phase where given."""
    found = Path(runs_dir).glob(f"*/*/{LAST_CHECKPOINT}")
    return max((p for p in found if phase in (None, run_phase(p.parents[1]))), key=lambda p: p.stat().st_mtime,
               default=None)  # fmt: skip


def find_checkpoint(resume: str, phase: str, runs_dir: str) -> Path:
    """resume=auto: the newest last.ckpt of a run of this phase under runs_dir; else a run dir or a .ckpt file."""
    if resume == "auto":
        newest = newest_checkpoint(runs_dir, phase)
        if newest is None:
            raise UserError(
                f"resume=auto: no model={phase} run with checkpoints/last.ckpt under runs_dir={runs_dir}; "
                "give resume=PATH (a run dir or a .ckpt file)"
            )
        return newest
    return checkpoint_at(
        resume,
        "resume",
        f"no checkpoint there; give a run dir (holding {LAST_CHECKPOINT}), a .ckpt file, or resume=auto",
    )


def checkpoint_at(given: str, option: str, refusal: str) -> Path:
    """The checkpoint that `option=given` names (ckpt=, resume=): a .ckpt file, or a run dir's checkpoints/last.ckpt.
    Otherwise `option=given: refusal`, in one line, which for a folder of runs (a sweep dir, runs_dir) also names
    one of them."""
    path = Path(given).expanduser()
    if path.is_file():
        return path
    if (path / LAST_CHECKPOINT).is_file():
        return path / LAST_CHECKPOINT
    runs = runs_near(path, LAST_CHECKPOINT) if path.is_dir() else set()
    if runs:
        newest = max(runs, key=lambda run: (run / LAST_CHECKPOINT).stat().st_mtime)
        refusal += f"; this is a folder of runs ({len(runs)} with a checkpoint): e.g. {option}={newest} (the newest)"
    raise UserError(f"{option}={given}: {refusal}")


# the command's fresh run dirs (Hydra may resolve the run dir more than once): name -> (the dir claimed, the outermost
# folder its claim created: the dir itself, its day's folder, or runs_dir)
_CLAIMED: dict[str, tuple[str, Path]] = {}


@contextlib.contextmanager
def claims_of_one_command():
    """Scope the fresh dirs claimed to one command: a second command in the same process (gpt.run twice in a
    notebook, within one second) claims a dir of its own instead of being handed the first one's."""
    _CLAIMED.clear()
    try:
        yield
    finally:
        _CLAIMED.clear()


def claim_fresh_dir(name: str) -> str:
    """Create a run dir no other run has: `name`, or `name-2`, `name-3`, ... when runs start in the same second.
    mkdir is atomic, so of two processes claiming one name, exactly one gets it; within one command (in
    claims_of_one_command), every resolution of `name` gets the dir claimed first."""
    if name not in _CLAIMED:
        base, number = Path(name), 1
        while True:
            candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
            new = [folder for folder in (candidate, *candidate.parents) if not folder.exists()]
            try:
                candidate.mkdir(parents=True)
                break
            except FileExistsError:
                number += 1
            except OSError as exc:
                raise UserError(
                    f"cannot create {candidate.absolute()}: {exc.strerror}; give runs_dir (a sweep: hydra.sweep.dir) "
                    "a folder that can be written"
                ) from None
        _CLAIMED[name] = (str(candidate), new[-1])  # mkdir made at least the candidate: it was among them
    return _CLAIMED[name][0]


def resumed_run_dir(resume: str | None, phase: str, runs_dir: str, name: str) -> str:
    """Hydra's run dir: the resumed checkpoint's run dir, or a fresh one of this run's own, runs_dir/name."""
    if resume is not None:
        checkpoint = find_checkpoint(resume, phase, runs_dir)
        if checkpoint.parent.name == CHECKPOINTS:
            return str(checkpoint.parent.parent)
    return claim_fresh_dir(str(Path(runs_dir) / name))


_HELD: dict[str, int] = {}  # run dir -> the open descriptor whose lock this process holds


def hold(run_dir: Path) -> bool:
    """Lock the run dir for this process: a second process training into it (or resuming it while it runs) is
    refused. The lock is on the directory itself (nothing is written) and dies with the process. DDP's other
    ranks share rank 0's run dir and take no lock. True where this call took it."""
    key = str(Path(run_dir).resolve())
    if key in _HELD or int(os.environ.get("LOCAL_RANK", "0")) or int(os.environ.get("NODE_RANK", "0")):
        return False
    if not Path(key).is_dir():  # resolved without a run (e.g. --cfg hydra --resolve): nothing to hold
        return False
    descriptor = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise UserError(
            f"{run_dir} is in use by another running process: wait for it to finish, or give this run "
            "its own dir (leave hydra.run.dir unset)"
        ) from None
    _HELD[key] = descriptor
    return True


def release(run_dir: Path) -> None:
    descriptor = _HELD.pop(str(Path(run_dir).resolve()), None)
    if descriptor is not None:
        os.close(descriptor)


def run_subdir(resume: str | None, run_dir: str) -> str | None:
    """hydra.output_subdir, resolved just before Hydra writes into the run dir: take the run dir's lock first
    (a live run's dir is refused before anything is written), then say where the composed config goes:
    `.hydra` for a new run, nowhere for a resumed one, whose `.hydra/` keeps describing how it was started."""
    if hold(Path(run_dir)) and not resume:
        refuse_a_run_in(Path(run_dir))
    return None if resume else HYDRA_DIR


RESULTS = (LAST_CHECKPOINT, SUMMARY, METRICS, ERROR)  # what a run that started training leaves in its dir


def results_in(run_dir: Path) -> list[str]:
    return [name for name in RESULTS if (run_dir / name).exists()]


def refuse_a_run_in(run_dir: Path) -> None:
    """A new run into a dir where a run already trained (hydra.run.dir naming it) would write over its checkpoint,
    summary and metrics: refused, naming what is there, before anything is written (a dir that a refused run left
    holding only Hydra's config is taken)."""
    if found := results_in(run_dir):
        raise UserError(
            f"hydra.run.dir={run_dir} already holds a run ({', '.join(found)}): a new run would write over it; "
            f"resume it with resume={run_dir}, or give hydra.run.dir a new folder"
        )


def refuse_a_sweep_in(sweep_dir: Path) -> None:
    """The same for a sweep, before its first job: its jobs' dirs (0-..., 1-...) would be those of the runs there."""
    runs = sorted(job.name for job in sweep_dir.glob("*/") if results_in(job)) if sweep_dir.is_dir() else []
    if runs:
        raise UserError(
            f"hydra.sweep.dir={sweep_dir} already holds the runs of a sweep ({', '.join(runs)}): a new sweep would "
            "write over them; give hydra.sweep.dir a new folder (a job resumes with resume=ITS_DIR)"
        )


@contextlib.contextmanager
def removed_if_refused(run_dir: Path):
    """A fresh run dir (claimed by this process) that a refusal or a Ctrl-C leaves holding nothing but Hydra's config
    and log (and the W&B files of a run refused as it started) is removed, so that resume=auto and reports never
    take it for a run; anything a run wrote keeps it. So are the folders its claim created (the day's, runs_dir on a
    first run), where nothing else has come into them since."""
    try:
        yield
    except (*USER_ERRORS, KeyboardInterrupt):
        claim = next(((Path(dir_), created) for dir_, created in _CLAIMED.values()
                      if Path(dir_).resolve() == run_dir.resolve()), None)  # fmt: skip
        if claim and run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {HYDRA_DIR, "train.log", "wandb"}:
            shutil.rmtree(run_dir)
            claimed, created = claim  # created: the run dir itself, or a folder above it
            for folder in claimed.parents[: len(claimed.parts) - len(created.parts)]:
                try:
                    folder.rmdir()  # only an empty one: another run's dir keeps it
                except OSError:
                    break
        raise


@contextlib.contextmanager
def exclusive(run_dir: Path):
    """Hold the run dir while a run trains in it (run_subdir already took the lock where Hydra made the dir)."""
    hold(run_dir)
    try:
        yield
    finally:
        release(run_dir)


def write_atomically(path: Path, text: str) -> None:
    """Write a results file so that a reader (or a crash) sees the old version or the new one, never half."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    partial.replace(path)
