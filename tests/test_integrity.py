"""Nothing lost, nothing silent: run dirs are never shared, refusals touch nothing, finished runs stay finished,
searches survive failed trials, every numeric option has a range, and every entry point works from anywhere."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, TINY, assert_one_line_error, read_summary, run_entry, tiny_except
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from gpt.config import register_configs
from gpt.errors import UserError
from gpt.validation import RANGES, check_config


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under a dir (hidden ones too) with a digest of its bytes."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, war_and_peace) -> Path:
    """A tiny GPT run, trained to its last step."""
    run = tmp_path_factory.mktemp("finished") / "run"
    result = run_entry("gpt.train", *TINY, f"hydra.run.dir={run}", env={"GPT_DATA": str(war_and_peace)})
    assert result.returncode == 0, result.stderr[-3000:]
    return run


def test_a_refused_resume_leaves_the_run_dir_byte_identical(finished_run, war_and_peace):
    before = snapshot(finished_run)
    result = run_entry(
        "gpt.train", *TINY, "model=block", f"resume={finished_run}", env={"GPT_DATA": str(war_and_peace)}
    )
    assert_one_line_error(result, "does not fit this run", "gpt.models.GPT")
    assert snapshot(finished_run) == before


def test_a_new_run_into_a_dir_that_holds_a_run_is_refused_and_changes_nothing(finished_run, war_and_peace):
    """hydra.run.dir naming a run that trained: its checkpoint, summary and metrics would be written over."""
    before = snapshot(finished_run)
    result = run_entry("gpt.train", *TINY, f"hydra.run.dir={finished_run}", env={"GPT_DATA": str(war_and_peace)})
    assert_one_line_error(result, f"hydra.run.dir={finished_run} already holds a run", "checkpoints/last.ckpt",
                          f"resume={finished_run}")  # fmt: skip
    assert snapshot(finished_run) == before


def test_a_new_sweep_into_a_sweep_dir_that_holds_runs_is_refused_before_its_first_job(tmp_path, short_text):
    sweep = ["-m", "model=bigram", "data=text", f"data.path={short_text}", *TINY, f"hydra.sweep.dir={tmp_path}"]
    assert run_entry("gpt.train", *sweep).returncode == 0
    before = snapshot(tmp_path)
    result = run_entry("gpt.train", *sweep)
    assert_one_line_error(result, f"hydra.sweep.dir={tmp_path} already holds the runs of a sweep (0-bigram-eager)")
    assert snapshot(tmp_path) == before


def test_resuming_a_finished_run_says_so_and_changes_nothing(finished_run, war_and_peace):
    before = snapshot(finished_run)
    result = run_entry("gpt.train", *TINY, f"resume={finished_run}", env={"GPT_DATA": str(war_and_peace)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "already finished (step 4 of trainer.max_steps=4)" in result.stdout
    assert snapshot(finished_run) == before


# Forks four gpt.train commands at once from one interpreter that has loaded what a run loads (Lightning: seconds
# of imports, paid once instead of four times), all with Hydra's clock stopped at one second, so their dir names
# collide every time; each child runs the command's own main() and ends with its status; the parent prints them.
SAME_SECOND = """
import datetime, json, os, sys
import hydra.core.utils
import gpt.train, gpt.training

class Stopped(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2026, 1, 2, 3, 4, 5)

hydra.core.utils.datetime = Stopped  # the clock of Hydra's ${now:} resolver, which names the dirs
children = []
for argv in json.loads(sys.argv[1]):
    child = os.fork()
    if child == 0:
        sys.argv = ["gpt.train", *argv]
        gpt.train.main()
        sys.exit()  # ends with the command's status (gpt.process), as `python -m gpt.train` would
    children.append(child)
print(json.dumps([os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]))
"""


@pytest.mark.slow
def test_runs_and_sweeps_started_in_the_same_second_get_their_own_dirs(tmp_path, war_and_peace):
    """Two runs and two one-job sweeps with no dir given, four processes started together in the same second:
    four dirs, each with its own config and results."""
    env = {**os.environ, "GPT_DATA": str(war_and_peace), "WANDB_SILENT": "true"}
    commands = [[*TINY, f"seed={seed}"] for seed in (1, 2)] + [["-m", *TINY, f"seed={seed}"] for seed in (3, 4)]
    launched = subprocess.run(
        [sys.executable, "-c", SAME_SECOND, json.dumps(commands)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert launched.returncode == 0 and launched.stdout.splitlines()[-1] == "[0, 0, 0, 0]", launched.stderr[-3000:]
    runs, sweeps = sorted(tmp_path.glob("outputs/*/*/")), sorted(tmp_path.glob("multirun/*/"))
    assert [run.name for run in runs] == ["03-04-05-gpt-eager", "03-04-05-gpt-eager-2"]  # the second, suffixed
    assert [sweep.name for sweep in sweeps] == ["2026-01-02_03-04-05-sweep", "2026-01-02_03-04-05-sweep-2"]
    jobs = [job for sweep in sweeps for job in sweep.glob("*-gpt-eager")]
    assert [job.name for job in jobs] == ["0-gpt-eager", "0-gpt-eager"]  # one job in each sweep, as launched
    recorded = sorted((d / ".hydra" / "overrides.yaml").read_text().split("seed=")[1][0] for d in runs + jobs)
    assert recorded == ["1", "2", "3", "4"]  # each dir records its own run's overrides
    for run in runs + jobs:
        assert read_summary(run)["steps"] == 4 and (run / "checkpoints" / "last.ckpt").exists()


def test_a_run_dir_in_use_by_another_process_is_refused_before_anything_is_written(tmp_path, war_and_peace):
    live = tmp_path / "live"
    for name, text in ((".hydra/config.yaml", "seed: 7\n"), ("train.log", "started\n"), ("metrics.csv", "step\n1\n")):
        (live / name).parent.mkdir(parents=True, exist_ok=True)
        (live / name).write_text(text)
    before = snapshot(live)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(live)!r}, os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_entry("gpt.train", *TINY, f"hydra.run.dir={live}", env={"GPT_DATA": str(war_and_peace)})
    finally:
        holder.kill()
    assert_one_line_error(result, str(live), "in use by another running process")
    assert snapshot(live) == before, "nothing may be written into a live run's dir"


def test_a_search_records_a_failed_trial_and_goes_on(tmp_path, war_and_peace):
    """An Optuna grid search over two head counts, one of which does not divide the width: that trial fails, is
    recorded, and the other completes; the search ends with its report and its best trial."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "two_kernels.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: optuna\n"
        "  - override /hydra/sweeper/sampler: grid\n"
        "name: two_kernels\nhydra:\n  sweeper:\n    direction: minimize\n    n_trials: 2\n    max_failure_rate: 1.0\n"
        "    params:\n      model.n_head: choice(3, 2)\n"
    )
    sweep = tmp_path / "search"
    result = run_entry(
        "gpt.train",
        "-m",
        f"hydra.searchpath=[file://{tmp_path}]",
        "+experiment=two_kernels",
        "model.n_layer=1",
        "model.n_embd=32",
        *TINY,
        f"hydra.sweep.dir={sweep}",
        env={"GPT_DATA": str(war_and_peace)},
    )
    assert result.returncode == 1, result.stderr[-3000:]  # one job failed: the sweep says so in its exit status
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    failed, finished = sorted(sweep.glob("[0-9]*-gpt-eager"), key=lambda job: (job / "error.txt").exists())[::-1]
    assert "not divisible by model.n_head=3" in (failed / "error.txt").read_text()
    assert read_summary(finished)["steps"] == 4
    report = (sweep / "report.md").read_text()
    assert "failed: model.n_embd=32 is not divisible" in report and "| ok |" in report, report
    assert "best_value" in (sweep / "optimization_results.yaml").read_text()


# One value outside its range per option group, and what the message must name.
OUT_OF_RANGE = {
    "optim.lr": -0.1,
    "optim.min_lr_ratio": -1,
    "optim.weight_decay": -0.5,
    "optim.beta1": 1.5,
    "optim.warmup_steps": -1,
    "trainer.val_check_interval": 0,
    "trainer.log_every_n_steps": 0,
    "trainer.max_steps": 0,
    "seed": -1,
    "data.batch_size": 0,
    "data.train_fraction": 1.0,
    "model.dropout": 1.0,
    "model.n_layer": 0,
    "sample.temperature": 0.0,
    "sample.top_k": 0,
    "sample.max_new_tokens": -5,
}


@pytest.mark.parametrize("key, value", OUT_OF_RANGE.items())
def test_every_numeric_option_is_refused_outside_its_range(key, value):
    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", [f"{key}={value}"])
    with pytest.raises(UserError) as refused:
        check_config(cfg)
    assert (
        str(refused.value) == f"{key}={OmegaConf.select(cfg, key)}: {RANGES[key].describe(OmegaConf.select(cfg, key))}"
    )
    assert str(refused.value).startswith(f"{key}={OmegaConf.select(cfg, key)}: must be in {RANGES[key]}")


def test_every_numeric_schema_option_has_a_range():
    register_configs()
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", [])
    numeric = {
        f"{group}.{key}"
        for group in ("data", "optim", "trainer", "sample", "model")
        for key, value in cfg[group].items()
        if isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not OmegaConf.is_interpolation(cfg[group], key)
    }  # data.seed is ${seed}
    unchecked = numeric - RANGES.keys() - {"trainer.devices"}  # devices: a count, a list or "auto", Lightning's
    assert not unchecked


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("trainer.strategy=foo", ["Trainer refused the config", "invalid strategy name"]),
        ('sample.prompt="€uro"', ["sample.prompt: 1 character not in the model's vocabulary", "'€'"]),
        ('sample.prompt=""', ["sample.prompt is empty", "sample.prompt=null for the default start"]),
    ],
)
def test_bad_values_are_one_line_before_training(override, fragments, tmp_path, war_and_peace):
    result = run_entry(
        "gpt.train",
        override,
        *tiny_except(override.split("=")[0]),
        f"hydra.run.dir={tmp_path}",
        env={"GPT_DATA": str(war_and_peace)},
    )
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.csv").exists()


def test_w_and_b_unusable_is_one_line_and_leaves_no_run(tmp_path, war_and_peace, monkeypatch):
    """A WANDB_MODE that W&B refuses (it reads the variable whatever mode it is given), and W&B's server out of
    reach when logging online (its retries time out after about 90 s: here its error, raised at once). Neither
    leaves a run dir behind."""
    env = {"GPT_DATA": str(war_and_peace), "WANDB_MODE": "bogus"}
    refused = run_entry("gpt.train", *tiny_except("logger"), "logger=default", "runs_dir=runs", env=env, cwd=tmp_path)
    assert_one_line_error(refused, "WANDB_MODE=bogus (in the environment)", "online, offline, disabled", "logger=csv")

    import wandb

    def out_of_reach(**settings):
        (Path(settings["dir"]) / "wandb" / "run-1-x").mkdir(parents=True)  # its files, before it gives up
        raise wandb.errors.CommError('Timed out while retrying: Post "https://api.wandb.ai/graphql": no such host')

    monkeypatch.setattr(wandb, "init", out_of_reach)
    monkeypatch.setattr("gpt.validation.has_wandb_credentials", lambda: True)  # as for a user logged in
    monkeypatch.setattr("gpt.validation.unreachable_wandb_server", lambda: None)  # a connection opens, then no answer
    env["WANDB_MODE"] = "online"
    unreachable = run_entry(
        "gpt.train", *tiny_except("logger"), "logger=default", "runs_dir=runs", env=env, cwd=tmp_path
    )
    assert_one_line_error(unreachable, "W&B could not reach its server", "no such host", "logger.wandb_mode=offline")
    assert not list((tmp_path / "runs").glob("*/*")), "a refused run left its dir"


@pytest.fixture
def wandb_server(monkeypatch):
    """W&B's settings pointed at a server on this machine, as `wandb login --host` would point them, and a W&B API
    key in the environment, as for a user logged in. Call it with whether the server listens: its address. After
    it, W&B forgets the key it found (it keeps it for the process) and its settings, as a new process would."""
    import wandb

    settings = wandb.setup().settings
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    servers = []

    def point_at(listening: bool) -> str:
        servers.append(socket.create_server(("127.0.0.1", 0)))
        url = f"http://127.0.0.1:{servers[-1].getsockname()[1]}"
        if not listening:
            servers.pop().close()  # nothing listens on that port now: a connection is refused at once
        monkeypatch.setattr(settings, "base_url", url)
        return url

    yield point_at
    for server in servers:
        server.close()
    wandb.teardown()


def test_the_wandb_server_probe_connects_to_the_server_or_its_proxy(wandb_server, monkeypatch):
    from gpt.validation import unreachable_wandb_server

    proxy = wandb_server(listening=True)
    assert unreachable_wandb_server() is None
    down = wandb_server(listening=False)
    assert unreachable_wandb_server() == down
    monkeypatch.setenv("HTTP_PROXY", proxy)
    assert unreachable_wandb_server() is None  # the proxy answers for it
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert unreachable_wandb_server() == down  # a host the proxy is not for


def test_wandb_online_with_its_server_out_of_reach_is_one_line_at_once_and_the_default_logs_offline(
    wandb_server, tmp_path, war_and_peace
):
    """W&B would retry for 90 s and more before giving up. Asked for online: one line, and no run dir. Left to
    choose (logged in, no mode given): the run logs offline, and says so."""
    wandb_server(listening=False)
    env, run = {"GPT_DATA": str(war_and_peace), "WANDB_MODE": None}, [*tiny_except("logger"), "logger=default"]
    refused = run_entry("gpt.train", *run, "logger.wandb_mode=online", "runs_dir=runs", env=env, cwd=tmp_path)
    assert_one_line_error(refused, "logger.wandb_mode=online: W&B's server http://127.0.0.1:", "out of reach",
                          "a proxy goes in HTTP_PROXY")  # fmt: skip
    assert not (tmp_path / "runs").exists()
    trained = run_entry("gpt.train", *run, f"hydra.run.dir={tmp_path / 'run'}", env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "is out of reach from here: this run logs offline (make sync uploads it later)" in trained.stderr
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 1


def test_wandb_credentials_are_found_without_a_word_or_a_call_to_the_server(tmp_path):
    """wandb.login, left to say what it does, prints where it found the key, then asks the server whose it is
    (seconds); a fresh process, as W&B reads its settings once per process."""
    server = socket.create_server(("127.0.0.1", 0))
    env = {**os.environ, "WANDB_API_KEY": "k" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{server.getsockname()[1]}"}
    env = {key: value for key, value in env.items() if key not in ("WANDB_SILENT", "WANDB_MODE")}
    probe = "from gpt.validation import has_wandb_credentials; print(has_wandb_credentials())"
    with server:
        found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # no connection came
            server.accept()
    assert (found.stdout, found.stderr) == ("True\n", "")


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["hydra.run.dir=a_file/run"], "hydra.run.dir"),
        (["runs_dir=a_file"], "runs_dir"),
        (["-m", "hydra.sweep.dir=a_file/sweep"], "hydra.sweep.dir"),
        (["-m", "hydra.sweep.dir=multirun"], "hydra.sweep.dir"),  # the default sweep dir goes under multirun/
    ],
)
def test_a_run_or_sweep_dir_that_cannot_be_made_is_one_line(overrides, key, tmp_path, war_and_peace):
    """A folder asked for under a file, which nobody can create (root included): whether Hydra makes it (a dir
    given) or the fresh-dir claim (runs_dir, the default sweep dir), one line names it and what to change."""
    for name in ("a_file", "multirun"):
        (tmp_path / name).write_text("not a folder\n")
    if overrides[-1].endswith("=multirun"):
        overrides = overrides[:1]
    result = run_entry("gpt.train", *overrides, *TINY, env={"GPT_DATA": str(war_and_peace)}, cwd=tmp_path)
    assert_one_line_error(result, "cannot create", str(tmp_path), key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "multirun"]  # nothing else was written


@pytest.mark.slow
def test_the_console_scripts_work_from_any_directory(tmp_path, finished_run):
    scripts = Path(sys.executable).parent
    train = subprocess.run(
        [scripts / "gpt-train", "model=block", "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert train.returncode == 0 and "gpt.models.BlockLM" in train.stdout, train.stderr[-3000:]
    sample = subprocess.run(
        [
            scripts / "gpt-sample",
            f"ckpt={finished_run / 'checkpoints' / 'last.ckpt'}",
            "kernel=sdpa",
            "prompt=The",
            "max_new_tokens=5",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sample.returncode == 0 and sample.stdout.startswith("The"), sample.stderr[-3000:]
    text = tmp_path / "text.txt"
    text.write_text("Well, Prince, so Genoa and Lucca are now just family estates of the Buonapartes.\n" * 4)
    ckpt = f"ckpt={finished_run / 'checkpoints' / 'last.ckpt'}"
    for tool, options, says in (
        ("gpt-evaluate", ["data=text", f"data.path={text}"], "bits/char"),
        ("gpt-attention", ["out=maps.png"], "maps.png"),
    ):
        result = subprocess.run([scripts / tool, ckpt, *options], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0 and says in result.stdout, result.stderr[-3000:]
    assert (tmp_path / "maps.png").is_file()
    for tool, module in (("gpt-report", "gpt.report"), ("gpt-workspace", "gpt.workspace")):  # no Hydra: any dir
        assert f"from {module} import main" in (scripts / tool).read_text(), tool


def start_sampling(run: Path) -> subprocess.Popen:
    """`python -m gpt.sample` from the run's checkpoint, far longer than a test waits, its output piped here. It
    starts with SIGINT at its default, as a terminal's foreground job has it: an ignored SIGINT is inherited
    across exec (Lightning ignores it after a KeyboardInterrupt reaches a Trainer)."""
    return subprocess.Popen(
        [sys.executable, "-m", "gpt.sample", f"ckpt={run / 'checkpoints' / 'last.ckpt'}", "prompt=The",
         "max_new_tokens=100000"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509 (takes no lock)
    )  # fmt: skip


def test_ctrl_c_while_sampling_keeps_the_text_so_far(finished_run):
    process = start_sampling(finished_run)
    head = process.stdout.read(40)  # characters arrive as they are drawn, long before the 100000th
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()[-3000:]
    assert "Traceback" not in stderr.decode() and "stopped by Ctrl-C" in stderr.decode()
    assert (head + rest).decode().startswith("The") and len(head + rest) >= 40


def test_sampling_into_a_reader_that_leaves_stops_quietly(finished_run):
    """`gpt-sample ... | head`: once stdout's reader has gone, sampling ends as SIGPIPE would end it, quietly."""
    process = start_sampling(finished_run)
    assert process.stdout.read(3) == b"The"
    process.stdout.close()
    assert process.wait(timeout=60) == 128 + signal.SIGPIPE
    assert process.stderr.read() == b""


def test_control_characters_reach_a_terminal_written_out_and_a_pipe_as_they_are(tmp_path, short_text):
    """A byte-level model may sample ESC, which starts a terminal's escape sequences (here: clear the screen).
    On a terminal (gpt.sample's, training's closing sample) it is written out as \\x1b; through a pipe the text
    is the text. Newlines stay newlines."""
    run = tmp_path / "bytes"
    tiny = tiny_except("sample.max_new_tokens")
    trained = run_entry("gpt.train", "data=text", f"data.path={short_text}", "data.tokenizer=bytes", *tiny,
                        "sample.prompt='\x1b[2Jthe'", "sample.max_new_tokens=0", f"hydra.run.dir={run}",
                        terminal=True)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Sample:\n\n\\x1b[2Jthe\n" in trained.stdout  # training's closing sample
    command = ["gpt.sample", f"ckpt={run}", "prompt='\x1b[2Jthe\n'", "max_new_tokens=0"]
    assert run_entry(*command, terminal=True).stdout == "\\x1b[2Jthe\n"
    assert run_entry(*command).stdout == "\x1b[2Jthe\n"


ENDING = """
import atexit, sys, threading, time
from gpt.process import ends_without_teardown

class Module:
    def __del__(self):  # runs in Python's teardown of the modules
        print("torn down", file=sys.stderr)

kept = Module()

@ends_without_teardown
def main():
    atexit.register(print, "exit handler ran", file=sys.stderr)
    threading.Thread(target=lambda: (time.sleep(0.2), print(" thread finished", end=""))).start()
    print("partial line", end="")  # no newline: still in the buffer when main ends
    {ending}

try:
    main()
finally:
    print(" after main", end="")  # what a wrapper does once the command has ended (python -m cProfile)
"""


@pytest.mark.parametrize(
    ("ending", "status", "stderr"),
    [("pass", 0, ""), ("sys.exit(3)", 3, ""), ("sys.exit('error: refused')", 1, "error: refused\n")],
)
def test_a_command_ends_as_python_would_without_its_teardown(ending, status, stderr):
    """The status sys.exit gives, the wrapper finished, the threads joined, the exit handlers run and the output
    flushed; the modules not torn down (gpt/process.py)."""
    ended = subprocess.run(
        [sys.executable, "-c", ENDING.format(ending=ending)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert ended.returncode == status, ended.stderr
    assert ended.stdout == "partial line after main thread finished"
    assert ended.stderr == stderr + "exit handler ran\n"


def test_make_sync_says_in_one_line_why_nothing_can_be_uploaded(wandb_server, tmp_path, capsys):
    """`wandb sync` would retry for minutes against a server out of reach; without credentials it ends in W&B's
    own error. make sync checks first (the Makefile runs check_wandb_reachable before wandb sync)."""
    from gpt.validation import check_wandb_reachable

    wandb_server(listening=True)
    check_wandb_reachable("make sync")  # in reach, with a key: on to wandb sync
    server = wandb_server(listening=False)
    with pytest.raises(SystemExit) as refused:
        check_wandb_reachable("make sync")
    assert refused.value.code == 2
    assert capsys.readouterr().err == f"error: make sync: W&B's server {server} is out of reach from here (no " \
        f"connection in 3 s; a proxy goes in HTTP_PROXY)\n"  # fmt: skip
    env = {**os.environ, "HOME": str(tmp_path), "WANDB_API_KEY": "", "NETRC": str(tmp_path / "none")}
    check = 'from gpt.validation import check_wandb_reachable; check_wandb_reachable("make sync")'
    nobody = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, cwd=REPO)
    assert (nobody.returncode, nobody.stderr) == (2, "error: make sync: no W&B credentials here (`wandb login`, or "
                                                     "WANDB_API_KEY)\n")  # fmt: skip
    makefile = (REPO / "Makefile").read_text().split("\nsync:", 1)[1].split("\n\n", 1)[0]
    assert makefile.index(check) < makefile.index("/bin/wandb sync")


def test_the_workspace_command_says_at_once_that_w_and_b_is_out_of_reach(wandb_server, capsys):
    """W&B's client waited 20 s on its server before the save failed, and the error said to log in."""
    from gpt.workspace import main

    server = wandb_server(listening=False)
    with pytest.raises(SystemExit) as refused:
        main(["--entity", "someone"])
    assert refused.value.code == 2 and capsys.readouterr().err == (
        f"error: could not save the workspace to W&B: W&B's server {server} is out of reach from here (no connection "
        "in 3 s; a proxy goes in HTTP_PROXY); or use --dry-run\n"
    )
