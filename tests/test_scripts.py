"""The measurement scripts under experiments/scripts/ answer bad input as the commands do (one line, exit 2); what
`make gpu-check` will train on a lent GPU is proven to compose here first."""

import runpy
import subprocess
import sys

import pytest
from conftest import REPO, assert_one_line_error, sweep_jobs

from gpt.validation import check_config

SCRIPTS = REPO / "experiments" / "scripts"


def run_script(name: str, *arguments: str) -> subprocess.CompletedProcess:
    """`python experiments/scripts/<name> <arguments>` run in this process (its `__main__` block included)."""
    argv = sys.argv
    sys.argv = [name, *arguments]
    try:
        runpy.run_path(str(SCRIPTS / name), run_name="__main__")
        status = 0
    except SystemExit as exit:
        status = exit.code
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess([name, *arguments], status)


@pytest.mark.parametrize(
    "script, arguments, fragments",
    [
        ("bench_sampling.py", ["--ckpt", "no/such.ckpt"], ["ckpt=no/such.ckpt: no such file"]),
        ("profile_step.py", ["model=gtp"], ["model=gtp: no such option", "allowed: attention, bigram"]),
        ("profile_step.py", ["+optim.weight_decy=0"], ["optim.weight_decy", "allowed keys here:"]),
        ("bench_launch_overhead.py", [], ["kernel=triton needs a CUDA GPU", "TRITON_INTERPRET=1"]),
    ],
)
def test_a_script_refuses_bad_input_in_one_line(script, arguments, fragments, capsys, monkeypatch, war_and_peace):
    monkeypatch.setenv("GPT_DATA", str(war_and_peace))
    monkeypatch.setattr("kernels.triton_runtime.INTERPRETING", False)  # as on a CPU without TRITON_INTERPRET=1
    result = run_script(script, *arguments)
    captured = capsys.readouterr()
    result.stdout, result.stderr = captured.out, captured.err
    assert result.returncode == 2
    assert_one_line_error(result, *fragments)


@pytest.mark.parametrize("quick", [False, True])
def test_every_training_job_of_the_gpu_check_composes_and_validates(quick, monkeypatch):
    """A job refused on the lent GPU would cost minutes of its 15: every job of every training step of
    `make gpu-check` (quick mode too) composes and passes the checks a run makes, as on a GPU machine."""
    gpu_check = runpy.run_path(str(SCRIPTS / "gpu_check.py"), run_name="gpu_check")  # its functions, not its main
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    trainings = {step: training for step, training in gpu_check["trainings"](quick).items() if training}
    assert len(trainings) == (3 if quick else 5)
    for training in trainings.values():
        arguments = gpu_check["training_arguments"](training, REPO / "outputs" / training.folder)
        assert arguments[0] == "-m"
        jobs = sweep_jobs(*arguments[1:])
        assert sorted(job.kernel.backend for job in jobs) == sorted(
            ["sdpa", "triton"]
            if quick and "compile=reduce-overhead" in training.overrides
            else ["eager", "sdpa", "triton"]
        )
        for job in jobs:
            check_config(job)
            assert job.trainer.accelerator == "gpu" and job.trainer.max_steps == training.steps
