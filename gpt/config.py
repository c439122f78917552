"""Structured configs: the schema every YAML file under conf/ is checked against.

Hydra merges each YAML onto its dataclass here, so a misspelt key or a value of the wrong type stops the
run before anything trains, naming the key. Each model phase has its own schema: an option a phase does
not have (`model=bigram model.n_layer=4`) is an error, not silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, OmegaConf

from gpt.run_dirs import claim_fresh_dir, resumed_run_dir, run_subdir
from gpt.tokenizer import TOKENIZERS

# The conf/ folder as an absolute path, for hydra.main: the console scripts then work from any directory.
CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "conf")

# Lightning's spellings; checked in gpt.validation (an Enum can't hold them: OmegaConf matches member names). 32 and
# 64 are Lightning's short names for 32-true and 64-true (what it reports, in summary.json and the W&B tags). Those
# it has and the harness leaves out, with why: gpt.validation
PRECISIONS = ("auto", "32", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "64", "64-true")
# The string options of training and their allowed values, checked in gpt.validation: the one list of each
CHOICES = {
    "trainer.precision": PRECISIONS,
    "model.pos": ("learned", "rope"),  # learned position embeddings, or rotary embeddings of q and k
    "model.mlp": ("gelu", "relu2"),
    "optim.algorithm": ("adamw", "muon"),  # muon: Muon on the blocks' matrices, AdamW on the rest (gpt/optim.py)
    "optim.schedule": ("cosine", "wsd"),  # wsd: warmup, stable, then a linear decay over the last decay_fraction
    "logger.wandb_mode": ("online", "offline", "disabled"),  # null: online where W&B credentials exist and it answers
    "data.tokenizer": TOKENIZERS,  # one token per character of the corpus, or per byte (gpt/tokenizer.py)
}
# what W&B itself takes in $WANDB_MODE (logger.wandb_mode, which the harness prefers to it, takes the first three)
WANDB_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")
# ... of the checkpoint commands (gpt.sample, gpt.evaluate, gpt.attention)
DEVICES = ("auto", "cpu", "cuda")  # auto: the GPU where there is one
SPLITS = ("train", "val", "test")  # the order they come in the corpus (gpt.corpus.splits)
# torch.compile's modes, as `compile=MODE`; compile=true is the first
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


# -- model: one schema per phase --------------------------------------------------------------------------
@dataclass
class BigramConfig:
    _target_: str = "gpt.models.BigramLM"
    block_size: int = II("data.block_size")


@dataclass
class SingleHeadConfig:
    _target_: str = "gpt.models.SingleHeadAttentionLM"
    block_size: int = II("data.block_size")
    n_embd: int = 64
    dropout: float = 0.0
    backend: str = II("kernel.backend")


@dataclass
class MultiHeadConfig(SingleHeadConfig):
    _target_: str = "gpt.models.MultiHeadAttentionLM"
    n_head: int = 4


@dataclass
class BlockConfig(MultiHeadConfig):
    _target_: str = "gpt.models.BlockLM"


@dataclass
class GPTConfig(MultiHeadConfig):
    _target_: str = "gpt.models.GPT"
    n_layer: int = 4


@dataclass
class ModernConfig(GPTConfig):
    """Phase 7: GPT with the speedrun's techniques, each a switch whose off value is GPT-2's (gpt/models/modern.py);
    on by default are those that paid in the ablation (conf/model/modern.yaml)."""

    pos: str = "rope"
    qk_norm: bool = False
    mlp: str = "relu2"
    zero_init_proj: bool = False
    tie_embeddings: bool = True
    logit_softcap: float = 0.0  # 0: off
    value_embeddings: bool = False


# -- everything else -----------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    _target_: str = "gpt.data.CharDataModule"
    name: str = MISSING  # names the cache file, <cache_dir>/<name>.txt
    path: str | None = None  # the corpus file; else $path_env, the cache, then a download from `url`
    path_env: str | None = None  # an environment variable that may name the file (GPT_DATA: War and Peace, text)
    url: str | None = None
    archive_member: str | None = None  # where url is a zip archive: the corpus file inside it
    sha256: str | None = None  # of the corpus file, checked when given
    tokenizer: str = "chars"  # one of gpt.tokenizer.TOKENIZERS
    block_size: int = 128  # context length in characters
    batch_size: int = 64
    train_fraction: float = 0.9  # contiguous splits: the first 90% trains, ...
    test_fraction: float = 0.0  # ... the last test_fraction is the test split, and what lies between validates
    val_windows: int = 256  # fixed validation windows (drawn with a fixed seed)
    seed: int = II("seed")


@dataclass
class KernelConfig:
    # one of kernels.BACKENDS, set by conf/kernel/NAME.yaml; checked in gpt.validation. The checkpoint commands'
    # default is null: the backend the checkpoint was trained with
    backend: str | None = MISSING


@dataclass
class OptimConfig:
    algorithm: str = "adamw"
    schedule: str = "cosine"
    decay_fraction: float = 0.25  # wsd only
    lr: float = 3e-3  # peak learning rate, reached after warmup
    min_lr_ratio: float = 0.1  # the schedule ends at lr * min_lr_ratio at trainer.max_steps
    warmup_steps: int = 100
    weight_decay: float = 0.1  # applied to matrices (2-D weights) only, not biases, LayerNorms
    beta1: float = 0.9
    beta2: float = 0.99


@dataclass
class TrainerConfig:
    _target_: str = "lightning.pytorch.Trainer"
    max_steps: int = 1800
    max_time: str | None = None  # "DD:HH:MM:SS": stop (validating and checkpointing) when training has run this long
    precision: str = "auto"  # one of PRECISIONS; auto: bf16-mixed where bf16 is native, else fp32 (gpt/machine.py)
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    val_check_interval: int = 250  # validate (and checkpoint) every this many steps, and at the end
    limit_val_batches: int | None = None
    gradient_clip_val: float | None = 1.0
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    deterministic: bool = False
    fast_dev_run: bool = False


@dataclass
class LoggerConfig:
    csv: bool = True
    wandb: bool = True
    wandb_project: str = "gpt-war-and-peace"
    wandb_entity: str | None = None
    # online / offline / disabled; None: online where W&B credentials exist and its server answers, else offline
    wandb_mode: str | None = None


@dataclass
class SampleConfig:
    prompt: str | None = None  # None: start from the first vocabulary character (a newline in most texts)
    max_new_tokens: int = 500
    temperature: float = 0.8
    top_k: int | None = None
    kv_cache: bool = True  # keep the context's keys and values (false: recompute the context for every character)


@dataclass
class InspectConfig:
    """What looks inside the model once training ends (gpt/inspection.py)."""

    full_val: bool = True  # the loss over the whole validation split: val_loss_full, val_bpc in summary.json
    stride: int | None = None  # its windows' stride; None: half the block
    attention_maps: bool = True  # attention.png of a validation passage, in the run dir and on W&B


@dataclass
class TrainConfig:
    model: Any = MISSING
    data: DataConfig = MISSING
    kernel: KernelConfig = MISSING
    optim: OptimConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggerConfig = MISSING
    sample: SampleConfig = field(default_factory=SampleConfig)
    inspect: InspectConfig = field(default_factory=InspectConfig)
    seed: int = 1337
    name: str = "sweep"  # a multirun's dir suffix and W&B group
    resume: str | None = None  # a run dir, a .ckpt file, or auto
    runs_dir: str = "outputs"  # where single runs go (hydra.run.dir), and where resume=auto looks
    # torch.compile the training and validation steps: false, true (torch.compile's default mode), or one of
    # COMPILE_MODES, e.g. reduce-overhead (CUDA graphs). The first steps then include the compilation.
    compile: Any = False


@dataclass
class CheckpointCommandConfig:
    """What gpt.sample, gpt.evaluate and gpt.attention share: the checkpoint, and how to run it."""

    ckpt: str = MISSING  # a .ckpt file, or a run dir (its checkpoints/last.ckpt, as resume= reads it)
    kernel: KernelConfig = field(default_factory=lambda: KernelConfig(backend=None))  # kernel=NAME as in training
    device: str = "auto"  # one of DEVICES


@dataclass
class SampleRunConfig(SampleConfig, CheckpointCommandConfig):
    seed: int = 1337


@dataclass
class EvaluateRunConfig(CheckpointCommandConfig):
    split: str = "val"  # one of SPLITS, of the corpus the checkpoint was trained on, split as training split it
    stride: int | None = None  # windows' stride (gpt/inspection.py); None: half the model's block
    batch_tokens: int = 2048  # positions per forward pass
    data: DataConfig = MISSING


@dataclass
class AttentionRunConfig(CheckpointCommandConfig):
    text: str | None = None  # the passage, up to block_size characters; None: War and Peace's first line, cut to fit
    out: str = "attention.png"


@dataclass(frozen=True)
class Phase:
    number: int
    title: str
    schema: type


# The phases, in order, by their `model=` name: the one list the schemas, the sweep's report and the tests read.
PHASES = {
    "bigram": Phase(1, "bigram", BigramConfig),
    "attention": Phase(2, "single-head", SingleHeadConfig),
    "multihead": Phase(3, "multi-head", MultiHeadConfig),
    "block": Phase(4, "block", BlockConfig),
    "gpt": Phase(5, "GPT", GPTConfig),
    "modern": Phase(7, "modern GPT", ModernConfig),  # phase 6 is the attention kernels (kernel=)
}


def register_configs() -> None:
    """Make the schemas available to the YAML files under conf/ (as `defaults: [/<group>_schema@_here_]`;
    stored outside the config groups, so that `--help` lists only real choices), and the
    resolver that puts a resumed run back in its own dir."""
    OmegaConf.register_new_resolver("resumed_run_dir", resumed_run_dir, replace=True)
    OmegaConf.register_new_resolver("run_subdir", run_subdir, replace=True)
    # cached like ${now:}: Hydra copies the resolver cache into every job's config, so all jobs of a sweep
    # (in this process or, pickled, on a cluster) see the dir the sweep claimed once
    OmegaConf.register_new_resolver("fresh_dir", claim_fresh_dir, replace=True, use_cache=True)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="sample_schema", node=SampleRunConfig)
    cs.store(name="evaluate_schema", node=EvaluateRunConfig)
    cs.store(name="attention_schema", node=AttentionRunConfig)
    for name, phase in PHASES.items():
        cs.store(name=f"model_{name}_schema", node=phase.schema)
    for group, schema in (
        ("data", DataConfig),
        ("kernel", KernelConfig),
        ("optim", OptimConfig),
        ("trainer", TrainerConfig),
        ("logger", LoggerConfig),
    ):
        cs.store(name=f"{group}_schema", node=schema)
