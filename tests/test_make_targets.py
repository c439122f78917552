"""The Makefile's result targets on a fresh clone: where nothing has run yet they say what to run first in one line,
and `make sample` passes the prompt as typed (or none). Dry runs (`make -n`): nothing is installed."""

import os
import shlex
import shutil
import subprocess

import pytest
from conftest import REPO
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf


def make(folder, *arguments: str) -> subprocess.CompletedProcess:
    """`make ARGUMENTS` in folder, with the Makefile, as typed at a shell: not as a sub-make of `make test`, which
    would add its own variables and its "Entering directory" lines."""
    for name in ("Makefile", "pyproject.toml"):  # the install rule's prerequisites
        shutil.copy(REPO / name, folder)
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", *arguments], cwd=folder, capture_output=True, text=True, timeout=60, env=env)


def dry_run(folder, *arguments: str) -> subprocess.CompletedProcess:
    return make(folder, "-n", *arguments)  # nothing is run, or installed


@pytest.mark.parametrize(
    "target, says",
    [
        ("report", "no sweep under multirun/ yet: run make sweep first, or give DIR="),
        ("dashboard", "no sweep under multirun/ yet"),
        ("sync", "no sweep under multirun/ yet"),
        ("sample", "no run under outputs/ yet: run make train first, or give CKPT="),
    ],
)
def test_a_result_target_says_what_to_run_first_where_nothing_ran(tmp_path, target, says):
    result = dry_run(tmp_path, target)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("target, runs", [("dashboard", "W&B runs"), ("sync", "offline W&B runs")])
def test_a_wandb_target_says_where_a_dir_holds_no_wandb_runs(tmp_path, target, runs):
    run = tmp_path / "run"
    (run / "wandb" / "run-20261201_100000-abc").mkdir(parents=True)  # an online run: for the dashboard, not sync
    for folder in (tmp_path / "csv_only", *([run] if target == "sync" else [])):
        result = dry_run(tmp_path, target, f"DIR={folder}")
        assert result.returncode == 2 and f"{folder}/wandb holds no {runs}: " in result.stderr, result.stderr
        assert "logger=default" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    if target == "dashboard":
        assert f"wandb leet {run}/wandb" in dry_run(tmp_path, target, f"DIR={run}").stdout


def test_the_newest_sweep_and_run_are_the_defaults_and_the_prompt_goes_quoted(tmp_path):
    for older, newer in (("multirun/a", "multirun/b"), ("outputs/d/r1/last.ckpt", "outputs/d/r2/last.ckpt")):
        for name in (older, newer):
            path = tmp_path / name.replace("last.ckpt", "checkpoints/last.ckpt")
            path.parent.mkdir(parents=True, exist_ok=True)
            if name.startswith("multirun"):
                path.mkdir()
            else:
                path.write_bytes(b"")
            if name == older:
                os.utime(path, (0, 0))  # 1970: the older one
    assert "gpt.report multirun/b/" in dry_run(tmp_path, "report").stdout
    sampled = shell_words(dry_run(tmp_path, "sample", "PROMPT=Well, Prince").stdout)
    assert sampled[0] == "GPT_PROMPT=Well, Prince" and "ckpt=outputs/d/r2/checkpoints/last.ckpt" in sampled, sampled
    assert not any("PROMPT" in word for word in shell_words(dry_run(tmp_path, "sample").stdout))  # the default start


def shell_words(recipe: str) -> list[str]:
    """The words of a dry run's last command, as the shell splits them (its lines continued)."""
    return shlex.split(recipe.replace("\\\n", " ").splitlines()[-1])


@pytest.mark.parametrize(
    "prompt",
    ["Prince Andrew's", 'He said "Well"', "'quoted' and \"quoted\"", "a, b = c", "$5 or $$HOME or $(x)", "${x} ~",
     "ends in \\", 'a \\"q\\" \\\\"', "C:\\new\\table"],
)  # fmt: skip
def test_the_prompt_reaches_gpt_sample_as_typed_through_the_shell_and_hydra(tmp_path, prompt, monkeypatch):
    """The recipe's command as the shell splits it (shlex): GPT_PROMPT=..., and an override Hydra parses and OmegaConf
    resolves from the environment to the same characters."""
    words = shell_words(dry_run(tmp_path, "sample", f"PROMPT={prompt}", "CKPT=run").stdout)
    variable, value = words[0].split("=", 1)
    monkeypatch.setenv(variable, value)
    override = OverridesParser.create().parse_override(next(word for word in words if word.startswith("prompt=")))
    assert OmegaConf.create({"prompt": override.value()}).prompt == prompt


def test_make_alone_lists_every_target_with_what_it_does(tmp_path):
    """`make` (and `make help`) prints each target the Makefile declares phony, with its ## description."""
    listed = make(tmp_path).stdout
    assert listed == make(tmp_path, "help").stdout
    described = {line.split()[0]: line for line in listed.splitlines() if line[:1].strip()}
    phony = (REPO / "Makefile").read_text().split(".PHONY:")[1].split("\n\n")[0].replace("\\", " ").split()
    assert sorted(described) == sorted(phony)
    assert all(len(line.split()) > 3 for line in described.values()), listed
