"""Shared fixtures: the corpus, small text files, and runners for the real entry points."""

from __future__ import annotations

import contextlib
import importlib
import io
import itertools
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch

# The Triton kernels run compiled where there is a CUDA GPU and through Triton's CPU interpreter elsewhere
# (TRITON_INTERPRET=1 forces the interpreter anywhere). It must be set before triton is first imported (Lightning
# imports it, through torch._dynamo); subprocesses inherit it.
os.environ.setdefault("TRITON_INTERPRET", "0" if torch.cuda.is_available() else "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # several test processes share the cores: one thread each (and each
    torch.set_num_threads(1)  # process a test starts) instead of every process contending for all of them
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from gpt.config import CONFIG_DIR, register_configs
from gpt.corpus import resolve_corpus
from gpt.errors import UserError
from gpt.process import exit_status
from gpt.train import train

REPO = Path(__file__).resolve().parents[1]
# The fast settings every tiny end-to-end run shares; tests add the overrides they are about.
TINY = [
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "data.batch_size=4",
    "data.block_size=16",
    "data.val_windows=8",
    "trainer.enable_progress_bar=false",
    "sample.max_new_tokens=20",
    "logger=csv",
    "inspect.full_val=false",  # the whole 322,752-character validation split: tests/test_inspect.py covers it
    "inspect.attention_maps=false",
]


def tiny_except(*keys: str) -> list[str]:
    """TINY without the overrides of these keys, for a test that sets them itself (Hydra refuses a key twice)."""
    return [o for o in TINY if o.split("=")[0] not in keys]


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs' worth of time this process's cgroup may use (a container's `--cpus`), or None where unlimited: cgroup
    v2's `cpu.max` ("QUOTA PERIOD" or "max PERIOD"), else v1's `cpu/cpu.cfs_quota_us` (-1: unlimited) over
    `cpu/cpu.cfs_period_us`, as a container sees them at the root of its cgroup namespace."""
    for quota_file, period_file in (("cpu.max", None), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        try:
            fields = (cgroup / quota_file).read_text().split()
            if period_file:
                fields.append((cgroup / period_file).read_text().strip())
        except OSError:
            continue
        try:
            quota, period = fields[:2]
            return None if quota in ("max", "-1") else int(quota) / int(period)
        except (ValueError, ZeroDivisionError):  # not the kernel's documented format: no quota known
            return None
    return None


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (make test): a worker for each CPU this process may run on, and no more than its cgroup's CPU quota
    allows (a container may see 16 CPUs and be given the time of 2). xdist's own count is of physical cores where
    psutil is installed (W&B installs it): one worker on a machine whose two CPUs are the two hyperthreads of one
    core (Intel Xeon cloud machines), which left one CPU idle; the suite takes 1.7x as long in one worker as in two
    (experiments/test_suite/). PYTEST_XDIST_AUTO_NUM_WORKERS still decides where it is set (xdist's own hook reads
    it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cpu_quota()
    return cpus if quota is None else max(1, min(cpus, math.ceil(quota)))


@pytest.fixture(scope="session")
def war_and_peace() -> Path:
    """The real corpus, found the way a run finds it (data.path, $GPT_DATA, the cache; never downloaded here),
    and checked against its sha256. A clone where `make train` ran has it in the cache. Else the workspace's
    shared data folder beside the checkout, as .ci/run's default GPT_DATA (what the tests found before)."""
    data = OmegaConf.load(REPO / "conf" / "data" / "war_and_peace.yaml")
    beside = REPO.parent / "shared" / "data" / "war_and_peace.txt"
    try:  # absolute: tests hand it to processes started in other directories
        return resolve_corpus(data.name, None, url=None, sha256=data.sha256, path_env=data.path_env).resolve()
    except UserError:
        if not beside.is_file():
            raise
        return resolve_corpus(data.name, str(beside), url=None, sha256=data.sha256).resolve()


@pytest.fixture
def short_text(tmp_path) -> Path:
    """A small corpus with a 28-character vocabulary, long enough for block_size 16 in both splits."""
    path = tmp_path / "short.txt"
    path.write_text("the quick brown fox jumps over the lazy dog. " * 12, encoding="utf-8")
    return path


@contextlib.contextmanager
def environment(env: dict | None, cwd: Path):
    """os.environ with `env` applied (a value of None removes the variable) and cwd, restored afterwards, as is
    torch's deterministic mode (trainer.deterministic=true switches it on for the whole process)."""
    saved, old_cwd, deterministic = dict(os.environ), Path.cwd(), torch.are_deterministic_algorithms_enabled()
    for key, value in (env or {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    os.chdir(cwd)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        os.chdir(old_cwd)
        torch.use_deterministic_algorithms(deterministic)


def no_credentials(tmp_path: Path, **extra) -> dict:
    """The environment of a process on a machine without W&B credentials: an empty HOME, no API key or netrc,
    no mode set (what W&B reads once per process). Matplotlib keeps the font cache it has (it lives under HOME
    by default, and an empty one costs each process seconds to rebuild)."""
    import matplotlib

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "NETRC": str(home / ".netrc"), "WANDB_API_KEY": None, "WANDB_MODE": None,
            "MPLCONFIGDIR": matplotlib.get_cachedir(), **extra}  # fmt: skip


class Terminal(io.StringIO):
    """Captured output that says it is a terminal, as a user's screen would."""

    def isatty(self) -> bool:
        return True


def run_entry(
    module: str, *overrides: str, env: dict | None = None, cwd: Path = REPO, terminal: bool = False
) -> subprocess.CompletedProcess:
    """`python -m <module> <overrides>` run in this process: the entry point's own `main()`, with its argv,
    environment and working dir, its output captured (as from a terminal, with `terminal`) and its exit status
    returned as a process's would be. Much faster than a new interpreter; `run_process` is for tests where the
    process itself is the subject."""
    argv, stdout, stderr, status = sys.argv, Terminal() if terminal else io.StringIO(), io.StringIO(), 0
    sys.argv = [module, *overrides]
    try:
        with environment(env, cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
                warnings_as_a_process_prints_them():  # fmt: skip
            main = importlib.import_module(module).main
            getattr(main, "__wrapped__", main)()  # unmarked: it would end this process at exit (gpt/process.py)
    except SystemExit as exit:
        status = exit_status(exit.code)
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()  # what a new process would start with
    return subprocess.CompletedProcess([module, *overrides], status, stdout.getvalue(), stderr.getvalue())


@contextlib.contextmanager
def warnings_as_a_process_prints_them():
    """Python's own warning filters (a new process's, where pytest's would collect them for its summary) and its
    printing to sys.stderr: a warning a user would see is in the command's stderr, which tests read."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)  # as Python's defaults, outside __main__
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
            warnings.formatwarning(message, category, filename, lineno, line)
        )
        yield


def train_composed(*overrides: str, run_dir: Path, env: dict | None = None) -> dict:
    """The config `python -m gpt.train <overrides>` would run, from Hydra's compose API, trained by the same
    `train(cfg)` the CLI calls, with run_dir as Hydra's run dir (no .hydra/ is written: that is the CLI's part).
    Returns the run's summary."""
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", list(overrides), return_hydra_config=True)
    with open_dict(cfg):  # what @hydra.main sets up before it calls the task function
        cfg.hydra.runtime.output_dir = str(run_dir)
        cfg.hydra.mode = RunMode.RUN
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    run_dir.mkdir(parents=True, exist_ok=True)
    with environment(env, REPO):
        return train(cfg)


def run_process(
    module: str, *overrides: str, env: dict | None = None, timeout: float = 300, cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """Run `python -m <module> <overrides>` in a new process, as a user would, and capture its output.
    `env` adds variables; a value of None removes one."""
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    full_env = {key: value for key, value in full_env.items() if value is not None}
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


def compose_preset(*overrides: str, with_hydra: bool = True) -> DictConfig:
    """gpt.train's config for these overrides (no sweep among them), with Hydra's own node where `with_hydra`."""
    register_configs()
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("config", list(overrides), return_hydra_config=with_hydra)


def sweep_values(key: str, values: str) -> list[str]:
    """The values Hydra's sweeper gives `key` for `values` (a list, a range, or glob() over a group's options)."""
    override = OverridesParser.create().parse_override(f"{key}={values}")
    if isinstance(override.value(), Glob):
        return override.value().filter(sorted(p.stem for p in (REPO / "conf" / key.lstrip("+")).glob("*.yaml")))
    return list(override.sweep_string_iterator())


def sweep_jobs(*overrides: str) -> list[DictConfig]:
    """The config of every job of `python -m gpt.train -m OVERRIDES` under Hydra's basic sweeper: the product of the
    preset's sweeper params and the command line's sweeps (which replace a preset's param of the same key)."""
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    fixed = [override.input_line for override in parsed if not override.is_sweep_override()]
    params = {str(key): str(values) for key, values in compose_preset(*fixed).hydra.sweeper.params.items()}
    params |= {override.input_line.split("=")[0]: override.input_line.split("=", 1)[1]
               for override in parsed if override.is_sweep_override()}  # fmt: skip
    choices = [[f"{key}={value}" for value in sweep_values(key, values)] for key, values in params.items()]
    return [compose_preset(*fixed, *job, with_hydra=False) for job in itertools.product(*choices)]


def read_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """The run failed with a short message naming what was wrong, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) <= 3, message  # Hydra adds one hint line after its own errors
    for fragment in fragments:
        assert fragment in message, message
