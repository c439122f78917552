"""Every config option composes and validates; mistakes stop the run with one line naming what is allowed."""

import shlex

import pytest
from conftest import REPO, assert_one_line_error, compose_preset, no_credentials, run_entry, run_process
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

import gpt.api
import gpt.config
from gpt.errors import quoted_override
from gpt.validation import check_config

CONF = REPO / "conf"
# experiment presets and the ablation's sweep options are added with +, not chosen like the groups below
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("ablation", "experiment", "hydra"))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_mirror_the_code():
    assert GROUPS == ["data", "kernel", "logger", "model", "optim", "trainer"]  # + experiment presets, hydra/
    assert options("model") == sorted(gpt.config.PHASES)


@pytest.mark.parametrize("group, option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_validates(group, option, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # trainer=gpu, fsdp: as on a GPU machine
    cfg = compose_preset(f"{group}={option}", with_hydra=False)
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # every interpolation resolves
    check_config(cfg)


def test_model_configs_reach_the_kernel_and_block_size():
    cfg = compose_preset("model=multihead", "kernel=sdpa", "data.block_size=64", with_hydra=False)
    assert cfg.model.backend == "sdpa" and cfg.model.block_size == 64


def test_everyday_overrides_are_spelled_as_documented():
    cfg = compose_preset(
        "model.n_layer=2",
        "model.n_head=2",
        "model.n_embd=32",
        "model.dropout=0.1",
        "data.block_size=32",
        "data.batch_size=8",
        "optim.lr=3e-4",
        "trainer.max_steps=7",
        "trainer.precision=32",
        "seed=5",
        with_hydra=False,
    )
    assert (cfg.model.n_layer, cfg.trainer.max_steps, cfg.optim.lr, cfg.seed) == (2, 7, 3e-4, 5)


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("model.n_layr=3", ["model.n_layr", "allowed keys here:", "n_layer"]),
        ("model.n_layer=abc", ["model.n_layer", "'abc'", "Integer"]),
        ("model=gpx", ["model=gpx", "allowed: attention, bigram, block, gpt, modern, multihead"]),
        ("model.n_head=5", ["model.n_embd=128", "model.n_head=5", "one of [1, 2, 4"]),
        ("kernel.backend=flash", ["kernel=flash", "eager, sdpa, triton_naive, triton"]),
        ("kernel=triton model.dropout=0.1", ["model.dropout=0.1", "kernel=triton", "no attention dropout"]),
        (
            "data.path=~/corpus.txt",
            ["cannot parse the override 'data.path=~/corpus.txt'", """'data.path="~/corpus.txt"'"""],
        ),
        (
            "hydra/launcher=slurm trainer.max_steps=1",
            ["hydra/launcher=slurm launches the jobs of a sweep (-m)", "add -m", "leave"],
        ),
        ("trainer.precision=16", ["trainer.precision=16", "old name for 16-mixed", "allowed are auto, 32,"]),
        ("trainer.precision=16-true", ["trainer.precision=16-true", "AdamW's eps", "allowed are auto, 32, 32-true"]),
        (
            "trainer.precision=16-mixed trainer.accelerator=cpu",  # Lightning would run bf16-mixed instead
            ["trainer.precision=16-mixed: fp16 autocast runs on a CUDA GPU", "on a CPU use auto (here ", "bf16-mixed"],
        ),
        ("trainer.precision=64 kernel=triton", ["trainer.precision=64 with kernel=triton", "not float64"]),
        ("compile=fast", ["compile=fast", "allowed are false, true, default, reduce-overhead"]),
        ("+optim.weight_decy=0.2", ["optim.weight_decy", "not in 'OptimConfig'", "allowed keys here:", "weight_decay"]),
        ("model=null", ["config group was given null", "--help lists"]),  # Hydra's own ValueError, made one line
        ("kernel.backend=null", ["kernel.backend=null", "eager, sdpa"]),
        ("--max_steps=10", ["--max_steps=10: not an option", "key=value without dashes", "--help lists both"]),
        ("--model gpt", ["--model: not an option", "key=value without dashes"]),
        ("--info bogus", ["argument --info/-i: invalid choice: 'bogus'", "--help lists the flags"]),
    ],
)
def test_config_mistakes_are_one_line_errors(override, fragments, tmp_path):
    """Each a line, where Hydra or argparse would print a traceback or their usage. (Were one taken, its run would be
    a short one: the overrides come after a step's worth of settings, and the last of a key's values wins.)"""
    one_step = ["trainer.max_steps=1", "data.val_windows=1", "sample.max_new_tokens=1", "inspect.full_val=false"]
    result = run_entry("gpt.train", *one_step, *override.split(), "logger=none", f"hydra.run.dir={tmp_path}")
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("command", ["train", "sample", "evaluate", "attention"])
def test_hydras_flags_are_taken_between_the_overrides_too(command):
    """Hydra's parser takes a flag only before or after all the overrides; each command takes it anywhere."""
    key, value = ("seed", 3) if command == "train" else ("ckpt", "any.ckpt")
    result = run_entry(f"gpt.{command}", f"{key}={value}", "--cfg", "job", "kernel=sdpa")
    assert result.returncode == 0, result.stderr
    config = OmegaConf.create(result.stdout)
    assert config[key] == value and config.kernel.backend == "sdpa"


@pytest.mark.parametrize("command", ["train", "sample", "evaluate", "attention"])
def test_a_key_added_past_the_schema_is_refused_wherever_it_is_added(command):
    """`+key=value` and `++key=value` add a key that Hydra refuses without the +: at the top of every command's
    config and in each of its groups, one line names it and the keys allowed there. Under trainer, a key Lightning's
    Trainer takes too: the harness does not account for it (one batch a step)."""
    required = [] if command == "train" else ["ckpt=any.ckpt"]
    cfg = gpt.api.compose(*required, command=command)
    groups = [key for key, value in cfg.items_ex(resolve=False) if OmegaConf.is_dict(value)]
    assert groups == (["model", "data", "kernel", "optim", "trainer", "logger", "sample", "inspect"] if command ==
                      "train" else ["kernel", "data"] if command == "evaluate" else ["kernel"])  # fmt: skip
    added = ["+not_an_option=1", *(f"++{group}.not_an_option=1" for group in groups)]
    if command == "train":
        added.append("+trainer.accumulate_grad_batches=2")
    for override in added:
        key = override.lstrip("+").split("=")[0]
        with pytest.raises(gpt.UserError) as refused:
            gpt.api.compose(*required, override, command=command)
        message = str(refused.value)
        assert message.startswith(f"{key}: ") and "allowed keys here:" in message and "\n" not in message, message


def test_triton_without_gpu_or_interpreter_is_a_one_line_error(tmp_path):
    # a process of its own: TRITON_INTERPRET is read when triton is first imported
    result = run_process(
        "gpt.train",
        "kernel=triton",
        "logger=none",
        f"hydra.run.dir={tmp_path}",
        env={"TRITON_INTERPRET": None, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert_one_line_error(result, "kernel=triton", "CUDA GPU", "TRITON_INTERPRET=1")


def test_a_phase_rejects_options_it_does_not_have(tmp_path):
    result = run_entry("gpt.train", "model=bigram", "model.n_layer=4", f"hydra.run.dir={tmp_path}")
    assert_one_line_error(result, "model.n_layer", "block_size")


@pytest.mark.parametrize(
    "overrides", [["trainer=gpu"], ["-m", "+experiment=long_context"], ["+experiment=long_context"]]
)
def test_a_gpu_asked_for_where_there_is_none_is_one_line_before_anything_starts(overrides, tmp_path, monkeypatch):
    """A run, or a sweep before its first job, on a machine without a CUDA GPU (as the tests' machines are, or
    made to look so): one line, exit 2, and no run or sweep dir."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    dirs = [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_entry("gpt.train", *overrides, "logger=none", *dirs)
    assert_one_line_error(result, "trainer.accelerator=gpu", "no CUDA GPU", "long_context")
    assert result.returncode == 2
    assert not (tmp_path / "sweep").exists()


def test_a_slurm_sweep_where_there_is_no_slurm_is_one_line_before_any_job(tmp_path, monkeypatch):
    """hydra/launcher=slurm on a machine without SLURM's commands (as the tests' machines are, or made to look so):
    one line, exit 2, no sweep dir; submitit itself would stop at the first job with a traceback."""
    monkeypatch.setattr("shutil.which", lambda command: None)
    result = run_entry(
        "gpt.train", "-m", "hydra/launcher=slurm", "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}"
    )
    assert_one_line_error(result, "hydra/launcher=slurm", "no SLURM", "leave hydra/launcher out")
    assert result.returncode == 2 and not (tmp_path / "sweep").exists()


# The variables by which Lightning's cluster environments find a job that launched this process (and the by-hand
# NODE_RANK): the tests clear them, so that a test machine inside a SLURM allocation tests what any other does.
LSF = {"LSB_JOBID": "7", "LSB_DJOB_RANKFILE": "ranks", "JSM_NAMESPACE_LOCAL_RANK": "0", "JSM_NAMESPACE_SIZE": "8"}
CLUSTER = ["NODE_RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_JOB_NAME", *LSF]


@pytest.mark.parametrize("sweep", [[], ["-m"]], ids=["run", "sweep"])
def test_several_nodes_outside_a_multi_node_job_is_one_line_not_a_wait_for_ever(sweep, tmp_path, monkeypatch):
    """trainer.num_nodes=2 in a process that no launcher started on other nodes: Lightning would wait at its first
    collective for nodes that never come. A run, or a sweep before its first job, says so and leaves no dir."""
    import gpt.training

    def trained(*args, **kwargs):
        raise AssertionError("it went on to train (and would have waited for the other node)")

    monkeypatch.setattr(gpt.training, "train_in", trained)
    dirs = [f"runs_dir={tmp_path / 'outputs'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    env = dict.fromkeys(CLUSTER)  # None: removed
    result = run_entry("gpt.train", *sweep, "trainer.num_nodes=2", "model=bigram", "logger=none", *dirs, env=env)
    assert_one_line_error(result, "trainer.num_nodes=2", "not started as one of a multi-node job", "num_nodes=1")
    assert result.returncode == 2 and not [path for path in tmp_path.rglob("*") if path.is_file()]


@pytest.mark.parametrize(
    "variables, multi_node",
    [
        ({}, False),
        ({"NODE_RANK": "1"}, True),  # started by hand on each node, as Lightning's own environment reads it
        ({"TORCHELASTIC_RUN_ID": "run"}, True),  # torchrun
        ({"SLURM_NTASKS": "8", "SLURM_JOB_NAME": "train"}, True),  # srun in a batch job
        ({"SLURM_NTASKS": "8", "SLURM_JOB_NAME": "interactive"}, False),  # an allocation Lightning leaves alone
        (LSF, True),  # jsrun
        ({"LSB_JOBID": "7"}, False),  # an LSF job, but not started by jsrun
    ],
)
def test_a_multi_node_job_is_found_as_lightning_finds_its_cluster(variables, multi_node, monkeypatch):
    from gpt.validation import in_a_multi_node_job

    for name in CLUSTER:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert in_a_multi_node_job() is multi_node


def test_a_sweep_sent_to_a_cluster_leaves_the_gpu_check_to_its_jobs(monkeypatch, capsys, tmp_path):
    """A login node need not have the GPUs its SLURM jobs ask for: the sweep starts, each job checks its own node.
    Jobs run here (the basic launcher) are checked before the first one."""
    from gpt.sweep import ReportAfterSweep

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr("shutil.which", lambda command: f"/usr/bin/{command}")  # SLURM's commands are here
    sweep = ["trainer=gpu", "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    ReportAfterSweep().on_multirun_start(compose_preset("hydra/launcher=slurm", *sweep))
    with pytest.raises(SystemExit) as refused:
        ReportAfterSweep().on_multirun_start(compose_preset(*sweep))
    assert refused.value.code == 2 and "trainer.accelerator=gpu: this machine has no CUDA GPU" in capsys.readouterr()[1]


def test_the_allowed_spellings_are_the_ones_the_code_implements():
    from gpt.models.block import ACTIVATIONS

    assert gpt.config.CHOICES["model.mlp"] == tuple(ACTIVATIONS)
    assert gpt.config.CHOICES["trainer.precision"] == gpt.config.PRECISIONS


@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["model=bigram", "optim.algorithm=muon"], ["optim.algorithm=muon with model=bigram", "optim.algorithm=adamw"]),
        (
            ["kernel=triton", "model.n_embd=256", "model.n_head=1"],
            ["kernel=triton", "head_dim up to 128", "got head_dim 256"],
        ),
        (["logger=default", "logger.wandb_mode=online"], ["logger.wandb_mode=online", "no W&B credentials"]),
        (["logger.wandb_mode=live"], ["logger.wandb_mode=live", "allowed are online, offline, disabled"]),
        (["model.n_head=5"], ["model.n_head=5"]),
    ],
)
def test_refusals_come_before_training_in_one_line_and_leave_no_run(overrides, fragments, tmp_path):
    """Options that used to fail only once a module, an optimiser, a logger or a kernel met the data: one line, exit 2,
    and nothing under runs_dir that resume=auto or a report would take for a run: not even runs_dir, which the
    refused run was the first to make."""
    result = run_entry("gpt.train", *overrides, f"runs_dir={tmp_path / 'outputs'}", env=no_credentials(tmp_path))
    assert_one_line_error(result, *fragments)
    assert result.returncode == 2
    assert not (tmp_path / "outputs").exists()


def test_a_refused_run_leaves_the_folders_that_were_there_before_it(tmp_path):
    """runs_dir and the day's folder, where they existed (empty, or holding another run), stay as they were."""
    earlier_run = tmp_path / "outputs" / "2026-01-01" / "10-00-00-gpt-eager"
    earlier_run.mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    for runs_dir in (tmp_path / "outputs", tmp_path / "empty"):
        assert_one_line_error(run_entry("gpt.train", "model.n_head=5", f"runs_dir={runs_dir}"), "model.n_head=5")
    assert sorted(tmp_path.rglob("*")) == sorted([tmp_path / "empty", earlier_run, *earlier_run.parents[:2]])


@pytest.mark.parametrize("value", ["~/corpus.txt", 'It\'s "so" ~', "a\\b", "ends in \\", '\\"', "", "x=y, z"])
def test_the_quoted_override_a_parse_error_suggests_gives_the_value_back(value):
    """The suggestion, split as a shell splits it and parsed as Hydra parses it, is the value as typed."""
    (word,) = shlex.split(quoted_override(f"sample.prompt={value}"))
    assert OverridesParser.create().parse_override(word).value() == value
