"""Config checks that the schema's types cannot express: allowed strings, ranges, values that must fit together.

Every numeric option has a range (RANGES); the attention backend is checked against the kernels' registry
(exists, can run here, has the dropout asked for). All of it runs before any heavy import or training starts. So
does W&B's setup: credentials and the server in reach where a run logs online (wandb_mode resolves the default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import sys
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf

import kernels
from gpt.config import CHOICES, COMPILE_MODES, DEVICES, SPLITS, WANDB_MODES
from gpt.errors import UserError


@dataclasses.dataclass(frozen=True)
class Range:
    """An interval of allowed values; `None` ends are unbounded. Printed the way a user reads it: [0, 1)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    hint: str = ""  # what to use instead of a value outside, where the range alone would not say

    def __contains__(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low}"
        high = "inf" if self.high is None else f"{self.high}"
        opening = "(" if self.low_open or self.low is None else "["
        closing = ")" if self.high_open or self.high is None else "]"
        return f"{opening}{low}, {high}{closing}"

    def describe(self, value: object) -> str:
        return f"must be in {self}" + (f"; {self.hint}" if self.hint else "")


@dataclasses.dataclass(frozen=True)
class OneOf:
    """The allowed spellings of a string option."""

    values: tuple[str, ...]
    left_out: dict[str, str] = dataclasses.field(default_factory=dict)  # spellings refused, with why

    def __contains__(self, value: object) -> bool:
        return value in self.values

    def describe(self, value: object) -> str:
        why = self.left_out.get(str(value))
        return (f"{why}; " if why else "") + f"allowed are {', '.join(self.values)}"


POSITIVE, NON_NEGATIVE, FRACTION = Range(1), Range(0), Range(0, 1, high_open=True)
SEED = Range(0, 2**32 - 1)  # numpy's seeds
SAMPLE_RANGES = {
    "max_new_tokens": Range(0, 100_000),
    "temperature": Range(0, 100, low_open=True, hint="top_k=1 samples greedily, as temperature 0 would"),
    "top_k": POSITIVE,
    "seed": SEED,
}
# what gpt.sample, gpt.evaluate and gpt.attention share (gpt.config.CheckpointCommandConfig)
CHECKPOINT_COMMAND_RANGES = {"device": OneOf(DEVICES)}
EVALUATE_RANGES = {
    **CHECKPOINT_COMMAND_RANGES,
    "split": OneOf(SPLITS),
    "stride": POSITIVE,
    "batch_tokens": POSITIVE,
}
# Every numeric option and its allowed values.
RANGES = {
    "seed": SEED,
    "data.block_size": POSITIVE,
    "data.batch_size": POSITIVE,
    "data.val_windows": POSITIVE,
    "data.train_fraction": Range(0, 1, low_open=True, high_open=True),
    "data.test_fraction": FRACTION,
    "model.n_layer": POSITIVE,
    "model.n_head": POSITIVE,
    "model.n_embd": POSITIVE,
    "model.block_size": POSITIVE,
    "model.dropout": FRACTION,
    "model.logit_softcap": NON_NEGATIVE,
    "optim.decay_fraction": Range(0, 1),
    "optim.lr": Range(0, low_open=True),
    "optim.min_lr_ratio": Range(0, 1),
    "optim.warmup_steps": NON_NEGATIVE,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.beta1": FRACTION,
    "optim.beta2": FRACTION,
    "trainer.max_steps": POSITIVE,
    "trainer.val_check_interval": POSITIVE,
    "trainer.log_every_n_steps": POSITIVE,
    "trainer.limit_val_batches": POSITIVE,
    "trainer.num_nodes": POSITIVE,
    "trainer.gradient_clip_val": NON_NEGATIVE,
    **{f"sample.{key}": allowed for key, allowed in SAMPLE_RANGES.items() if key != "seed"},
    "inspect.stride": POSITIVE,
}
# Spellings of string options that are taken elsewhere (by Lightning) and refused here, with why
LEFT_OUT = {
    "trainer.precision": {
        "16-true": "fp16 weights and optimiser state: AdamW's eps (1e-8) rounds to 0 in fp16, and training diverges "
        "at once; 16-mixed keeps the weights in fp32",
        "16": "Lightning's old name for 16-mixed",
        "bf16": "Lightning's old name for bf16-mixed",
    }
}
# ... and every string option's spellings: what check_config holds each option to
ALLOWED = {**RANGES, **{key: OneOf(values, LEFT_OUT.get(key, {})) for key, values in CHOICES.items()}}


def check_known_keys(cfg: DictConfig, prefix: str = "") -> None:
    """Every key is one its schema has. A misspelt key is refused by Hydra as the config composes, but `+key=value`
    and `++key=value` add any key to any node (`+optim.weigth_decay=0.2`), and no code would read it; under `trainer`
    Lightning would take one of its own options the harness does not account for (`accumulate_grad_batches`: the
    data stream, exact resume and the step counts assume one batch a step). Either way the run would silently do
    other than asked. (`hydra` is Hydra's own node, present where a config is composed with it.)"""
    schema = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(schema):
        allowed = [f.name for f in dataclasses.fields(schema) if not f.name.startswith("_")]
        for key in cfg:
            if key not in allowed and not str(key).startswith("_") and (prefix or key != "hydra"):
                raise UserError(
                    f"{prefix}{key}: Key '{key}' not in '{schema.__name__}': no option of this harness (a + adds a key "
                    f"to the config, not an option to the code); allowed keys here: {', '.join(allowed)}"
                )
    for key, node in cfg.items_ex(resolve=False):
        if isinstance(node, DictConfig) and (prefix or key != "hydra"):
            check_known_keys(node, f"{prefix}{key}.")


def check_allowed(cfg: DictConfig, allowed_values: dict[str, Range | OneOf]) -> None:
    """Each option's value is allowed (a key a phase lacks, or a null, is skipped)."""
    for key, allowed in allowed_values.items():
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in allowed:
            raise UserError(f"{key}={value}: {allowed.describe(value)}")


def has_wandb_credentials() -> bool:
    """W&B's own lookup (WANDB_API_KEY, its settings, ~/.netrc or $NETRC), without a prompt, a server call or a
    word on the terminal: unless W&B is silent, wandb.login says where it found the key and then asks the server
    whose it is (seconds, and a line about it before a run's own output)."""
    import wandb  # only where a run logs to W&B

    settings = wandb.setup().settings
    silent, settings.silent = settings.silent, True
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return bool(wandb.login(verify=False, prompt=False))
    finally:
        settings.silent = silent


WANDB_CONNECT_SECONDS = 3  # how long a TCP connection to W&B's server (or its proxy) may take to count as reachable


def unreachable_wandb_server() -> str | None:
    """The W&B server this process would log to (W&B's own settings: WANDB_BASE_URL, `wandb login --host`, or its
    default) where no TCP connection to it, or to the proxy that W&B or the environment names for it, opens within
    WANDB_CONNECT_SECONDS; None where one does. W&B itself retries for 90 s and more before it gives up."""
    import socket
    import urllib.request
    from urllib.parse import urlsplit

    import wandb

    settings = wandb.setup().settings
    server = urlsplit(settings.base_url)
    proxy = settings.https_proxy if server.scheme == "https" else settings.http_proxy
    if not proxy and not urllib.request.proxy_bypass(server.hostname or ""):
        proxy = urllib.request.getproxies().get(server.scheme)
    target = urlsplit(proxy) if proxy else server
    try:
        address = (target.hostname, target.port or (443 if target.scheme == "https" else 80))
        socket.create_connection(address, timeout=WANDB_CONNECT_SECONDS).close()
    except (OSError, ValueError):  # no such host, refused, timed out; a port that is not a number
        return settings.base_url
    return None


def check_wandb_setup(cfg: DictConfig) -> None:
    """A WANDB_MODE that W&B takes; where the run is to log online, W&B credentials and W&B's server in reach. A
    sweep checks it once, before its first job (gpt.sweep): its jobs share this machine's home and network."""
    from_environment = os.environ.get("WANDB_MODE")
    if cfg.logger.wandb and from_environment not in (None, "", *WANDB_MODES):  # W&B reads it whatever it is given
        raise UserError(
            f"WANDB_MODE={from_environment} (in the environment): W&B takes {', '.join(WANDB_MODES)}; correct or "
            "unset it (logger.wandb_mode chooses the mode too), or train without W&B: logger=csv"
        )
    if not (cfg.logger.wandb and (cfg.logger.wandb_mode or from_environment) == "online"):
        return
    online = "logger.wandb_mode=online" if cfg.logger.wandb_mode else "WANDB_MODE=online (in the environment)"
    if why := why_wandb_is_offline():
        raise UserError(f"{online}: {why}; or logger.wandb_mode=offline, uploaded later with make sync")


def why_wandb_is_offline() -> str | None:
    """Why nothing can go to W&B's server from here (no credentials, or the server out of reach), in words a
    refusal goes on with; None where it can."""
    if not has_wandb_credentials():
        return "no W&B credentials here (`wandb login`, or WANDB_API_KEY)"
    server = unreachable_wandb_server()
    if server:
        proxy = f"{server.split(':', 1)[0].upper()}_PROXY"  # the variable a proxy for its scheme goes in
        return (f"W&B's server {server} is out of reach from here (no connection in {WANDB_CONNECT_SECONDS} s; a "
                f"proxy goes in {proxy})")  # fmt: skip
    return None


def check_wandb_reachable(doing: str, otherwise: str = "") -> None:
    """Before a command that talks to W&B's server (make sync's `wandb sync`, gpt.workspace's save), whose client
    would wait minutes on a server out of reach: `error: <doing>: <why><otherwise>` in one line, exit 2."""
    from gpt.errors import one_line_errors

    with one_line_errors():
        if why := why_wandb_is_offline():
            raise UserError(f"{doing}: {why}{otherwise}")


def wandb_mode(requested: str | None) -> str:
    """The mode asked for (logger.wandb_mode, else WANDB_MODE); else online where the user has W&B credentials and
    W&B's server is in reach, offline otherwise: never a login prompt, never a wait for a network that is not there."""
    chosen = requested or os.environ.get("WANDB_MODE")
    if chosen:
        return chosen
    if not has_wandb_credentials():
        return "offline"
    server = unreachable_wandb_server()
    if server:
        print(f"W&B's server {server} is out of reach from here: this run logs offline (make sync uploads it later)",
              file=sys.stderr)  # fmt: skip
        return "offline"
    return "online"


def check_hardware(cfg: DictConfig) -> None:
    """A GPU where the trainer asks for one, or for fp16 autocast; a multi-node job where it asks for several nodes.
    A sweep whose jobs run here checks it before its first job; one launched to a cluster leaves it to each job, on
    its node."""
    if cfg.trainer.num_nodes > 1 and not in_a_multi_node_job():
        raise UserError(
            f"trainer.num_nodes={cfg.trainer.num_nodes}: this process was not started as one of a multi-node job "
            "(srun in a SLURM job, torchrun, LSF, MPI, or NODE_RANK set on each node), and would wait for the "
            "other nodes forever; start it on every node through one of them, or trainer.num_nodes=1"
        )
    if cfg.trainer.accelerator in ("gpu", "cuda"):
        import torch  # only where a run wants a GPU: every other config error answers before torch loads

        if not torch.cuda.is_available():
            raise UserError(
                f"trainer.accelerator={cfg.trainer.accelerator}: this machine has no CUDA GPU (trainer=gpu, "
                "trainer=fsdp and +experiment=long_context ask for one); run on a GPU machine, or "
                "trainer.accelerator=auto"
            )
    if cfg.trainer.precision == "16-mixed" and cfg.trainer.accelerator in ("cpu", "auto"):
        import torch  # as above, only where it matters

        from gpt.machine import run_precision

        if cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available():
            # Lightning would warn and run bf16-mixed, emulated (20x slower than fp32) on a CPU without AMX or
            # AVX-512 BF16: another run than the one asked for
            raise UserError(
                "trainer.precision=16-mixed: fp16 autocast runs on a CUDA GPU, and this run is on the CPU; on a CPU "
                f"use auto (here {run_precision('auto', 'cpu')}), 32-true or bf16-mixed"
            )


def in_a_multi_node_job() -> bool:
    """Whether this process is one of a multi-node job, found as Lightning finds the cluster it runs in (its
    cluster environments, in its order); by hand, Lightning's own environment reads each node's NODE_RANK."""
    import warnings

    from lightning.fabric.plugins.environments import (  # only where a run asks for several nodes
        LSFEnvironment,
        MPIEnvironment,
        SLURMEnvironment,
        TorchElasticEnvironment,
    )

    if "NODE_RANK" in os.environ:
        return True
    with warnings.catch_warnings():  # SLURM's detection warns where srun is on PATH but unused: the refusal says it
        warnings.simplefilter("ignore")
        return any(env.detect() for env in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment))


def element_bytes(precision: str) -> int:
    """Bytes of one activation under trainer.precision (one of PRECISIONS): 32 and 64 by their width, else 16-bit."""
    return {"32": 4, "64": 8}.get(str(precision)[:2], 2)


def kept_scores_bytes(cfg: DictConfig) -> int:
    """A lower bound on the memory one training step's attention takes, where the backend keeps the scores (eager,
    triton_naive; 0 for the others): each of the n_layer layers keeps its batch x heads x T x T probabilities (or,
    compiled, the scores they are recomputed from) for the backward, and, run eagerly, the layer being computed
    holds its scores as well while the softmax turns them into probabilities (compiled, Inductor may write the one
    over the other). n_layer (+ 1) tensors of that size, at 2 bytes an element in 16-bit precision, 4 in 32-bit, 8 in
    64-bit."""
    model = cfg.model
    if "backend" not in model or not kernels.lookup(cfg.kernel.backend).keeps_scores:
        return 0
    scores = cfg.data.batch_size * model.get("n_head", 1) * cfg.data.block_size**2
    tensors = model.get("n_layer", 1) + (0 if cfg.compile else 1)
    return tensors * scores * element_bytes(cfg.trainer.precision)


def check_attention_fits(cfg: DictConfig, device: str, memory: int) -> None:
    """Refuse, before the first step, a run whose attention scores alone cannot fit the `memory` bytes of the device
    it trains on (`device`: cpu, cuda). kept_scores_bytes is a lower bound, so no run that could train is refused.
    Past it, a GPU would stop at the first step; on a CPU the system's out-of-memory killer would end the run without
    a word, after filling the machine's memory."""
    needed = kept_scores_bytes(cfg)
    if needed > memory:
        raise UserError(
            f"kernel={cfg.kernel.backend} keeps batch x heads x T x T attention scores, data.batch_size="
            f"{cfg.data.batch_size} x model.n_head={cfg.model.get('n_head', 1)} x data.block_size="
            f"{cfg.data.block_size} squared, for each layer: {needed / 2**30:,.1f} GiB at least, and "
            f"this {device} has {memory / 2**30:,.1f} GiB: use kernel=sdpa or kernel=triton (no T x T "
            "scores), or a smaller data.block_size or data.batch_size"
        )


def check_launcher(launcher: DictConfig) -> None:
    """A multirun's launcher can run here: hydra/launcher=slurm needs SLURM's commands (submitit's own refusal, on
    its first job, is a traceback)."""
    if "SlurmLauncher" in str(launcher.get("_target_", "")) and not (shutil.which("sbatch") and shutil.which("srun")):
        raise UserError(
            "hydra/launcher=slurm: this machine has no SLURM (no sbatch or srun on PATH); start the sweep on a "
            "SLURM cluster's login node, or leave hydra/launcher out to run its jobs here"
        )


def check_sweep_values(sweeper: DictConfig, overrides: list[str]) -> None:
    """Hydra's basic sweeper lists the values of a multirun's overrides (a,b,c, range(), choice()); interval() is a
    range to sample from, which it stops at with a traceback. Refused before the first job, naming the sweeper
    that samples."""
    if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep

    params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
    for override in OverridesParser.create().parse_overrides([*overrides, *params]):
        if isinstance(override.value(), IntervalSweep):
            raise UserError(
                f"{override.input_line}: interval() is a range to sample from, and Hydra's basic sweeper only lists "
                "values: give a,b,c, range(start,stop,step) or choice(...), or sample it with Optuna "
                "(hydra/sweeper=optuna hydra.sweeper.n_trials=N, as +experiment=search does)"
            )


def overridden(overrides: Iterable[str]) -> set[str]:
    """The keys and groups that command-line overrides set, as Hydra parses them (data.path=X: data.path; data=X and
    +data=X: data)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return {override.key_or_group for override in OverridesParser.create().parse_overrides(list(overrides))}


def check_single_run_of_a_sweep(preset: str | None, sweeper: DictConfig, overrides: list[str]) -> None:
    """A preset that sweeps (its hydra.sweeper.params) run without -m would train one run at the defaults of what it
    sweeps, silently; it runs so only where the command line gives each swept key a value (one run of the sweep)."""
    params = sweeper.get("params") or {}
    if not params:
        return
    given = overridden(overrides)
    missing = [key for key in params if key.lstrip("+") not in given]
    if missing:
        sweep = " ".join(f"{key}={value}" for key, value in params.items())
        raise UserError(
            f"{f'+experiment={preset}' if preset else 'hydra.sweeper.params'} is a sweep ({sweep}): run it with -m, "
            f"or give {missing[0]}=VALUE for one run of it"
        )


def check_single_run_launcher(launcher: str | None) -> None:
    """A launcher (hydra/launcher=slurm) runs a sweep's jobs; without -m Hydra ignores it and the run trains here,
    on this machine (on a cluster, its login node)."""
    if launcher not in (None, "basic"):
        raise UserError(
            f"hydra/launcher={launcher} launches the jobs of a sweep (-m), and without -m the run would train here: "
            "add -m to launch it as a sweep of one job, or leave hydra/launcher out"
        )


def check_config(cfg: DictConfig) -> None:
    """Constraints the schema's types cannot say: keys added past it, allowed strings, ranges, values that must fit
    together."""
    check_known_keys(cfg)
    if cfg.kernel.backend is None:  # null means "the checkpoint's own" to the checkpoint commands only
        raise UserError(
            f"kernel.backend=null: a run trains through one backend; allowed: {', '.join(kernels.BACKENDS)}"
        )
    check_allowed(cfg, ALLOWED)
    if not isinstance(cfg.compile, bool) and cfg.compile not in COMPILE_MODES:
        raise UserError(f"compile={cfg.compile}: allowed are false, true, {', '.join(COMPILE_MODES)}")
    check_wandb_setup(cfg)
    check_hardware(cfg)
    if cfg.data.train_fraction + cfg.data.test_fraction >= 1:
        raise UserError(
            f"data.train_fraction={cfg.data.train_fraction} and data.test_fraction={cfg.data.test_fraction} leave "
            "nothing to validate on: their sum must be less than 1"
        )
    model = cfg.model
    if "n_head" in model and model.n_embd % model.n_head:
        divisors = [h for h in range(1, model.n_embd + 1) if model.n_embd % h == 0]
        raise UserError(
            f"model.n_embd={model.n_embd} is not divisible by model.n_head={model.n_head}; "
            f"n_head may be one of {divisors}"
        )
    if "backend" in model:  # the bigram phase has no attention
        head_dim = model.n_embd // model.get("n_head", 1)
        backend = kernels.check_backend(cfg.kernel.backend, dropout_p=model.dropout, head_dim=head_dim)
        if backend.triton and element_bytes(cfg.trainer.precision) == 8:
            raise UserError(
                f"trainer.precision={cfg.trainer.precision} with kernel={backend.name}: its Triton kernels take "
                "float32, bfloat16 or float16 tensors, not float64; use kernel=eager or kernel=sdpa, or "
                "trainer.precision=32"
            )
    elif cfg.optim.algorithm == "muon":
        raise UserError(
            "optim.algorithm=muon with model=bigram: Muon trains the hidden weight matrices of attention layers, "
            "and the bigram has none (one table); use optim.algorithm=adamw"
        )
    if "block_size" in model and cfg.data.block_size > model.block_size:
        raise UserError(
            f"data.block_size={cfg.data.block_size} is beyond the model's {model.block_size} positions "
            f"(model.block_size); use data.block_size <= {model.block_size} or a larger model.block_size"
        )
    if cfg.inspect.stride is not None and cfg.inspect.stride > cfg.data.block_size:
        raise UserError(
            f"inspect.stride={cfg.inspect.stride} is more than data.block_size={cfg.data.block_size}, the windows it "
            f"slides; allowed: 1 .. {cfg.data.block_size}, or null for half the block"
        )
    if model.get("pos") == "rope" and (model.n_embd // model.n_head) % 2:
        raise UserError(
            f"model.pos=rope rotates channel pairs, so it needs an even head size; n_embd / n_head = "
            f"{model.n_embd // model.n_head}: choose model.n_embd and model.n_head accordingly, or model.pos=learned"
        )
