"""The harness from Python, for notebooks: the same configs, checks, run dirs and W&B runs as the commands, which
are thin callers of it.

    import gpt
    run = gpt.run("model=bigram", "trainer.max_steps=300")     # as `python -m gpt.train model=bigram ...`
    run.summary["val_loss"], run.metrics, run.checkpoint        # summary.json, metrics.csv, checkpoints/last.ckpt
    model = run.load()                                          # or gpt.load("outputs/.../last.ckpt")
    model.sample("Prince", max_new_tokens=200)                  # or model.stream(...), text as it is drawn
    model.evaluate()                                            # bits per character over the whole val split
    model.attention("Well, Prince")                             # every layer x head's attention, a figure
    runs = gpt.multirun("model=bigram,gpt", "trainer.max_steps=100")   # as `python -m gpt.train -m ...`
    gpt.curves(runs)                                            # their val loss against steps and wall time
    gpt.runs("multirun/2026-12-01/10-00-00-phases")             # a past sweep's runs (any folder of runs)

Every function takes the command line's overrides as strings, or as keywords: gpt.run(model="bigram", seed=1), a
dotted key by **{"trainer.max_steps": 300}, a sweep's values as a list (gpt.multirun(model=["bigram", "gpt"])). A
refused one raises gpt.UserError, whose message is the line the command would print (what was wrong, what is
allowed); nothing else is raised for a user's mistake.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from gpt.errors import UserError, counted, refusals_raised
from gpt.inspection import Evaluation
from gpt.reporting import Run as ReportedRun
from gpt.reporting import has, load_run
from gpt.run_dirs import LAST_CHECKPOINT, METRICS, RUN_MARKERS, check_folder, is_run_dir, newest_checkpoint, runs_near

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from gpt.checkpoints import TrainedModel

__all__ = ["Model", "Run", "SplitEvaluation", "UserError", "compose", "curves", "load", "multirun", "run", "runs"]


def compose(*overrides: str, command: str = "train", **options) -> DictConfig:
    """The config a command would run with these overrides, checked as the command checks it.

    >>> cfg = gpt.compose("model=gpt", "model.n_layer=2")   # or gpt.compose(model="gpt", **{"model.n_layer": 2})
    >>> cfg.model.n_layer, cfg.data.block_size
    (2, 128)

    `command` is train, sample, evaluate or attention (their conf/*.yaml). A bad override raises UserError.
    """
    commands = {"train": "config", "sample": "sample", "evaluate": "evaluate", "attention": "attention"}
    if command not in commands:
        raise UserError(f"command={command!r}: allowed are {', '.join(commands)}")
    overrides = command_line(overrides, options)
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from gpt.config import CONFIG_DIR, register_configs
    from gpt.validation import check_config, check_known_keys

    register_configs()
    with refusals_raised(), initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = hydra_compose(commands[command], list(overrides))
        if command == "train":
            check_config(cfg)
        else:
            check_known_keys(cfg)
    return cfg


def command_line(overrides: tuple, options: dict, sweep: bool = False) -> tuple[str, ...]:
    """The overrides as words of the command line: the strings as given, then each keyword as key=value, its value
    written as Hydra reads it back (true, null, a string quoted where it holds a comma, a quote, a space ...); in a
    sweep a list is the values to sweep. Anything else is refused in a line that says what is taken, rather than by
    Hydra's parser deep inside."""
    for override in overrides:
        if not isinstance(override, str):
            unpack = "; unpack a list with *: gpt.run(*overrides)" if isinstance(override, (list, tuple)) else ""
            raise UserError(
                f"{override!r}: overrides are strings, one an argument, as on the command line: "
                f'gpt.run("model=gpt", "seed=1"), or keywords: gpt.run(model="gpt", seed=1){unpack}'
            )
    words = []
    for key, value in options.items():
        if not isinstance(value, (list, tuple)):
            words.append(f"{key}={override_value(key, value)}")
        elif not sweep:
            raise UserError(f"{key}={value!r}: one run takes one value; gpt.multirun({key}=[...]) sweeps a list")
        elif not value:
            raise UserError(f"{key}=[]: a sweep needs at least one value")
        else:
            words.append(f"{key}={','.join(override_value(key, each) for each in value)}")
    return (*overrides, *words)


def override_value(key: str, value) -> str:
    """One value as an override writes it: Hydra parses the word back into `value` itself."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Quote, QuotedString
    from hydra.errors import HydraException

    value = python_scalar(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise UserError(
            f"{key}={value!r}: a keyword's value is a string, number, bool, None or path (or, for gpt.multirun, a "
            "list of them)"
        )
    try:  # a plain word stays as it is typed (model=gpt, not model='gpt'): run dirs and reports name it so
        if OverridesParser.create().parse_override(f"{key}={value}").value() == value:
            return value
    except HydraException:  # a word Hydra's grammar refuses ("Well, (Prince"): quoted instead
        pass
    return QuotedString(text=value, quote=Quote.single).with_quotes()


def python_scalar(value):
    """A numpy or torch scalar (from a loop over np.linspace) as the Python number it holds, which OmegaConf and
    Hydra take; anything else as it is."""
    return value.item() if getattr(value, "ndim", None) == 0 else value


MULTIRUN_FLAGS = {"-m", "--multirun"}  # Hydra's


def run(*overrides: str, **options) -> Run:
    """Train one run as `python -m gpt.train <overrides>` does, in the same run dir layout, and return it.

    >>> run = gpt.run("model=bigram", "trainer.max_steps=200", logger="csv")
    >>> run.summary["val_loss"]
    2.49...
    """
    overrides = command_line(overrides, options)
    if flags := sorted(MULTIRUN_FLAGS.intersection(overrides)):
        raise UserError(f"{flags[0]}: gpt.run trains one run; gpt.multirun(...) runs a sweep (its overrides, no flag)")
    return _train_command(list(overrides))[-1]


def multirun(*overrides: str, **options) -> list[Run]:
    """Run a sweep as `python -m gpt.train -m <overrides>` does (its report included) and return its runs in job
    order; a failed job's run carries its error (run.error) and the others their results.

    >>> runs = gpt.multirun("model=bigram,block", "trainer.max_steps=100", logger="csv")   # or model=["bigram", ...]
    >>> [run.summary["val_loss"] for run in runs]
    [2.6..., 2.5...]
    """
    overrides = command_line(overrides, options, sweep=True)
    return _train_command(["-m", *(override for override in overrides if override not in MULTIRUN_FLAGS)])


def _train_command(argv: list[str]) -> list[Run]:
    """gpt.train's command in this process, argv its command line; the runs it trained."""
    from hydra.core.global_hydra import GlobalHydra

    import gpt.train as command

    first, saved_argv = len(command.TRAINED), sys.argv
    sys.argv = ["gpt.train", *argv]
    try:
        with refusals_raised():
            command.main.__wrapped__()  # the command without its process ending (gpt.process)
    except SystemExit as exit:  # a sweep with a failed job ends with status 1: its runs are returned all the same
        if exit.code in (128 + signal.SIGINT, 128 + signal.SIGTERM):  # stopped, checkpoint kept (it said how to
            raise KeyboardInterrupt from None  # resume): in a notebook, as an interrupted cell
        if "-m" not in argv or exit.code != 1:
            raise
    finally:
        sys.argv = saved_argv
        GlobalHydra.instance().clear()
    runs = [Run.at(run_dir) for run_dir in command.TRAINED[first:]]
    if not runs:
        raise UserError("no run was trained (a sweep whose jobs were all refused?)")
    return runs


@dataclass
class Run(ReportedRun):
    """A run dir, read as gpt.report reads it: overrides, phase, kernel, summary (summary.json), error (the first
    line of error.txt, for a failed sweep job), curve (val loss by step and wall time).

    >>> run = gpt.run("model=bigram")
    >>> run.dir, run.phase, run.summary["val_bpc"], run.curve.tail(1)
    """

    def __fspath__(self) -> str:
        """The run dir: a run goes wherever a path does (gpt.load(run), gpt.Run.at(run), Path(run))."""
        return str(self.dir)

    def __repr__(self) -> str:
        """One line: where, which phase and kernel, and how it ended (a notebook prints a list of runs)."""
        figures = [f"val_loss {self.summary['val_loss']:.4f}"] if has(self.summary, "val_loss") else []
        figures += [f"{self.summary['steps']} steps"] if has(self.summary, "steps") else []
        return f"Run({str(self.dir)!r}, {', '.join([self.phase, self.kernel, self.status, *figures])})"

    @classmethod
    def at(cls, run_dir: str | Path) -> Run:
        """The run in run_dir (any run dir, from the command line or from Python).

        >>> gpt.Run.at("outputs/2026-12-01/10-00-00-gpt").summary["val_bpc"]
        """
        path = Path(run_dir)
        check_folder(path, "run dir")
        if not is_run_dir(path):
            below = runs_near(path)
            raise UserError(
                f"{run_dir}: a folder of {len(below)} runs, not one run; gpt.runs({str(run_dir)!r}) gives them all"
                if below
                else f"{run_dir}: not a run dir (it holds neither {' nor '.join(RUN_MARKERS)})"
            )
        return cls(**vars(load_run(path)))

    @property
    def metrics(self) -> pd.DataFrame:
        """metrics.csv: one row per logged step (train/loss, val/loss, train/tokens_per_sec, lr, ...).

        >>> run.metrics[["step", "train/loss"]].dropna().plot(x="step")
        """
        import pandas as pd

        path = self.dir / METRICS
        if not path.is_file():
            why = self.error or "trained with logger.csv=false (logger=none), or stopped before its first log"
            raise UserError(f"{self.dir}: no {METRICS} here ({why})")
        try:
            return pd.read_csv(path)
        except (OSError, ValueError) as exc:  # cut short by a crash or a full disk, as the report lists it
            raise UserError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None

    @property
    def checkpoint(self) -> Path | None:
        """checkpoints/last.ckpt, where the run wrote one.

        >>> gpt.load(run.checkpoint, kernel="sdpa")
        """
        path = self.dir / LAST_CHECKPOINT
        return path if path.is_file() else None

    def load(self, kernel: str | None = None, device: str = "auto") -> Model:
        """The run's last checkpoint as a Model (`gpt.load(run.checkpoint, ...)`).

        >>> run.load().sample("Prince", max_new_tokens=50)
        """
        if self.checkpoint is None:
            raise UserError(f"{self.dir}: no checkpoint here ({self.error or 'the run wrote none'})")
        return load(self.checkpoint, kernel, device)


def runs(folder: str | Path) -> list[Run]:
    """The runs under a folder (a sweep dir, outputs/, any folder of runs), as gpt.report finds them: a sweep's in
    job order, others by path.

    >>> gpt.curves(gpt.runs("multirun/2026-12-01/10-00-00-phases"))
    """
    from gpt.reporting import find_runs

    check_folder(Path(folder))
    return [Run(**vars(run)) for run in find_runs(Path(folder))[0]]


def curves(runs: list[Run] | Run) -> Figure:
    """The val loss of runs (or of one run) against steps and against wall time, as in a sweep's report.

    >>> gpt.curves([bigram_run, gpt_run])
    """
    from gpt.reporting import curves_figure

    given = runs
    runs = [runs] if isinstance(runs, ReportedRun) else list(runs) if isinstance(runs, Iterable) else [given]
    if not runs or not all(isinstance(run, ReportedRun) for run in runs):
        empty = " (gpt.runs of a folder without runs gives an empty list)" if not runs else ""
        raise UserError(f"{given!r}: give a Run or a list of them (gpt.run, gpt.multirun, gpt.Run.at(DIR)){empty}")
    return curves_figure(runs)


def load(ckpt: str | Path | Run, kernel: str | None = None, device: str = "auto") -> Model:
    """A checkpoint as a Model (its model and tokenizer), as gpt.sample, gpt.evaluate and gpt.attention load it:
    on the GPU where there is one (device=auto|cpu|cuda), through its own attention backend or `kernel`.

    >>> model = gpt.load("outputs/2026-12-01/10-00-00-gpt/checkpoints/last.ckpt", kernel="sdpa")
    >>> model = gpt.load("outputs/2026-12-01/10-00-00-gpt")   # a run dir (or a Run): its checkpoints/last.ckpt
    """
    from gpt.checkpoints import load_checkpoint
    from gpt.validation import CHECKPOINT_COMMAND_RANGES, check_allowed

    with refusals_raised():
        check_allowed(OmegaConf.create({"device": device}), CHECKPOINT_COMMAND_RANGES)
        return Model(load_checkpoint(os.fspath(ckpt) if isinstance(ckpt, os.PathLike) else str(ckpt), kernel, device))


def load_for_command(cfg: DictConfig) -> Model:
    """The checkpoint a checkpoint command's config names (ckpt=, kernel=, device=), as load() gives it, once the
    config holds only the command's own keys."""
    from gpt.config import TrainConfig
    from gpt.validation import check_known_keys

    check_known_keys(cfg)
    if OmegaConf.is_missing(cfg, "ckpt"):
        newest = newest_checkpoint(TrainConfig.runs_dir)  # where runs go by default
        example = (
            f"e.g. ckpt={newest.parents[1]} (the newest run)" if newest else f"none in {TrainConfig.runs_dir}/ yet"
        )
        raise UserError(f"ckpt: no checkpoint given; give ckpt=PATH, a .ckpt file or a run dir: {example}")
    return load(cfg.ckpt, cfg.kernel.backend, cfg.device)


@dataclass(frozen=True)
class SplitEvaluation(Evaluation):
    """The loss over a whole split (gpt.inspection.evaluate_ids), with what was scored; str() is gpt.evaluate's
    line.

    >>> print(model.evaluate())
    val split of war_and_peace.txt, 322,751 characters scored (windows of 128, stride 64): loss 1.31 nats/char = ...
    """

    split: str = "val"
    corpus: Path = Path()
    block_size: int = 0
    unit: str = "char"
    noun: str = "character"

    def __str__(self) -> str:
        return (
            f"{self.split} split of {self.corpus}, {counted(self.characters, self.noun)} scored (windows of "
            f"{self.block_size}, stride {self.stride}): loss {self.loss:.4f} nats/{self.unit} = "
            f"{self.bits_per_character:.4f} bits/{self.unit}"
        )


class Model:
    """A trained model and its tokenizer (gpt.load, Run.load): sample, evaluate, draw its attention.

    >>> model = gpt.load("outputs/2026-12-01/10-00-00-gpt/checkpoints/last.ckpt")
    >>> model.model, model.tokenizer.vocab_size
    """

    def __init__(self, trained: TrainedModel):
        self.model, self.tokenizer, self.hparams = trained.model, trained.tokenizer, trained.hparams
        self.checkpoint, self.backend = trained.path, trained.backend

    def __repr__(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return f"Model({type(self.model).__name__}, {params:,} parameters, {self.checkpoint})"

    def stream(
        self,
        prompt: str | None = None,
        max_new_tokens: int = 500,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
        kv_cache: bool = True,
    ) -> Iterator[str]:
        """The prompt, then each sampled character as soon as it is drawn (gpt.sample's options and checks).

        >>> for text in model.stream("Prince", max_new_tokens=100):
        ...     print(text, end="", flush=True)
        """
        from gpt.config import SampleRunConfig
        from gpt.sampling import encode_prompt, stream_text
        from gpt.validation import SAMPLE_RANGES, check_allowed

        options = {"prompt": prompt, "max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k,
                   "seed": seed, "kv_cache": kv_cache}  # fmt: skip
        options = {key: python_scalar(value) for key, value in options.items()}
        # a string prompt is kept as given (OmegaConf would read "${x}" in it as an interpolation); the other options
        # are typed as gpt.sample's are ("5" is 5, "hot" is refused), then ranged
        text = options.pop("prompt") if isinstance(prompt, str) else None
        with refusals_raised():
            o = OmegaConf.merge(OmegaConf.structured(SampleRunConfig), options)
            check_allowed(o, SAMPLE_RANGES)
            prompt = o.prompt if text is None else text
            encode_prompt(prompt, self.tokenizer)  # refused here, before the first character is asked for
        return stream_text(self.model, self.tokenizer, prompt, o.max_new_tokens, o.temperature, o.top_k, o.seed,
                           o.kv_cache)  # fmt: skip

    def sample(self, prompt: str | None = None, max_new_tokens: int = 500, **options) -> str:
        """The prompt followed by max_new_tokens sampled characters (options: those of stream).

        >>> model.sample("Prince Andrew", max_new_tokens=200, top_k=10)
        """
        return "".join(self.stream(prompt, max_new_tokens, **options))

    def evaluate(self, *overrides: str, split: str = "val", stride: int | None = None, **options) -> SplitEvaluation:
        """The loss over a whole split, every character predicted once (gpt.evaluate): by default on the corpus and
        split the model was trained on; overrides as gpt.evaluate's (data=NAME, data.path=FILE, batch_tokens=N), as
        strings or keywords.

        >>> model.evaluate().bits_per_character
        1.89...
        >>> print(model.evaluate(split="test"))     # enwik8, text8: the held-out last 5%
        >>> model.evaluate(data="text", **{"data.path": "my_corpus.txt"}, batch_tokens=4096)
        """
        from gpt.validation import overridden

        overrides = command_line(overrides, options)
        with refusals_raised():
            stride_override = f"stride={'null' if stride is None else stride}"
            cfg = compose(f"ckpt={self.checkpoint}", f"split={split}", stride_override, *overrides, command="evaluate")
            return self.evaluate_config(cfg, overridden(overrides))

    def evaluate_config(self, cfg: DictConfig, given: set[str]) -> SplitEvaluation:
        """evaluate() on gpt.evaluate's composed config, `given` the keys and groups its command line set (what
        gpt.evaluate calls).

        >>> model.evaluate_config(gpt.compose(f"ckpt={model.checkpoint}", command="evaluate"), given=set())
        """
        import kernels
        from gpt.inspection import check_split, evaluate_ids, split_ids
        from gpt.validation import EVALUATE_RANGES, check_allowed

        check_allowed(cfg, EVALUATE_RANGES)
        block = self.model.block_size
        if cfg.stride is not None and cfg.stride > block:
            raise UserError(f"stride={cfg.stride} is more than the model's block_size={block}; allowed: 1 .. {block}")
        data = corpus_config(cfg.data, self.hparams.get("corpus"), given)
        check_split(data, cfg.split)
        try:
            corpus, ids = split_ids(data, cfg.split, self.tokenizer)
        except UserError as exc:
            if data is cfg.data:  # the command line's corpus: the message says what to change
                raise
            raise UserError(f"the checkpoint's corpus: {exc} (data.path=FILE or data=NAME gives another)") from None
        if self.backend and kernels.interpreted(self.backend, next(self.model.parameters()).device.type):
            print(f"[kernel={self.backend} runs in Triton's CPU interpreter here: scoring "
                  f"{counted(len(ids) - 1, self.tokenizer.noun)} may take hours; kernel=eager computes the same]",
                  file=sys.stderr)  # fmt: skip
        result = evaluate_ids(self.model, ids, cfg.stride, cfg.batch_tokens)
        return SplitEvaluation(**vars(result), split=cfg.split, corpus=corpus, block_size=block,
                               unit=self.tokenizer.unit, noun=self.tokenizer.noun)  # fmt: skip

    def attention(self, text: str | None = None, title: str | None = None) -> Figure:
        """Every layer x head's attention over `text` (at most block_size characters; by default War and Peace's
        first line), as a figure: shown inline in a notebook, `.savefig(path)` elsewhere (gpt.attention).

        >>> model.attention("Well, Prince, so Genoa")
        """
        from gpt.inspection import attention_figure, default_passage, passage_ids

        if not isinstance(text, (str, type(None))):
            raise UserError(f"text={text!r}: give a string of 1 to {self.model.block_size} characters, or None")
        with refusals_raised():
            text = text if text is not None else default_passage(self.tokenizer, self.model.block_size)
            ids = passage_ids(text, self.tokenizer, self.model.block_size)
            return attention_figure(self.model, self.tokenizer, ids, title or f"{self.checkpoint.name}: {text!r}")


def corpus_config(data: DictConfig, recorded: dict | None, given: set[str]) -> DictConfig:
    """The corpus to evaluate on: the one the checkpoint was trained on (`recorded`, CharDataModule.corpus_record),
    with the `data.KEY=...` overrides in `given` on top; `data=NAME` picks another corpus. A checkpoint without the
    record (from before it was kept) gets `data` as composed: War and Peace by default."""
    if recorded is None or "data" in given:
        return data
    return OmegaConf.create({key: data[key] if f"data.{key}" in given else value for key, value in recorded.items()})
