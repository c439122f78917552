"""gpt-harness: a character-level GPT built up in phases, trained with Lightning, composed with Hydra.

From Python (a notebook): `import gpt; run = gpt.run("model=bigram"); run.load().sample("Prince")`, the same runs
as the commands (gpt.api, whose names are importable from here).

The layers, each importing only the ones below it:

    commands      gpt.train, gpt.sample, gpt.evaluate, gpt.attention    one Hydra task each (gpt.entry.hydra_command),
                  gpt.report, gpt.workspace                              thin: options in, library calls, lines out
    python API    gpt.api: compose, run, multirun, runs, load, curves; Run, Model: what notebooks call, and gpt.sample,
                  gpt.evaluate and gpt.attention too. A run is gpt.train's own Hydra app run in this process (the
                  one import upwards, so that a run from Python is the command's run); gpt.train never imports it
    running       gpt.training (one run: data, module, Trainer, loggers, summary), gpt.sweep (a multirun's jobs
                  and report), gpt.reporting (the report of any folder of runs), gpt.callbacks, gpt.module (the
                  LightningModule), gpt.data (the LightningDataModule, over gpt.token_cache)
    library       gpt.checkpoints (read, load on a device, resume checks), gpt.inspection (whole-split loss,
                  attention maps), gpt.corpus (find, check, split, window), gpt.sampling, gpt.optim,
                  gpt.tokenizer (characters or bytes), gpt.run_dirs (the run-dir layout), gpt.machine (which
                  machine, where its figures go), gpt.synthetic (stand-ins of the benchmark corpora' shape, for
                  tests and benchmarks); none of it loads Lightning
    configuration gpt.config (the schemas, the allowed values, PHASES; run-dir resolvers from gpt.run_dirs),
                  gpt.validation (the checks that run before anything heavy is imported), gpt.errors (one-line
                  errors); conf/ mirrors it
    models        gpt.models: one file per idea (bigram, attention, block, transformer, modern, kv_cache)
    kernels       kernels: the attention backends behind kernels.attention, which the models call; the layers
                  above read only its registry (BACKENDS: validation, checkpoints, reports)

Where a new piece goes, and the files it touches:

- a phase: its module in gpt/models/ (or a class in transformer.py), exported from gpt/models/__init__.py, its
  schema and its PHASES entry in gpt/config.py, and conf/model/<name>.yaml: four files. Sweeps (`model=glob(*)`),
  reports, checkpoints and the config tests pick it up from PHASES and conf/.
- an attention backend: its function in kernels/<name>.py and one Backend line in kernels/__init__.py's
  BACKENDS, plus conf/kernel/<name>.yaml; a Triton one goes through kernels.custom_op.attention_op (eager calls
  and torch.compile alike), and tests/test_kernels.py and tests/test_compile.py parametrise over BACKENDS.
- a preset: conf/experiment/<name>.yaml (`# @package _global_`, a `name:` and the sweep's params); a corpus:
  conf/data/<name>.yaml (its url, sha256, tokenizer and split fractions).
- a way to look inside a model: a function in gpt.inspection, called at the end of training (gpt.training,
  cfg.inspect) and, when it needs a command of its own, a thin module beside gpt/attention.py with its
  conf/<name>.yaml.
"""

_API = ("Model", "Run", "SplitEvaluation", "UserError", "compose", "curves", "load", "multirun", "run", "runs")


def __getattr__(name: str):
    """gpt.run(...), gpt.load(...), ...: the Python API (gpt.api), imported on first use, so that the commands
    (`python -m gpt.train --help`) start without it. Its names differ from the commands' modules (gpt.train,
    gpt.sample, ...), which an import would set on this package over them."""
    if name in _API:
        from gpt import api

        return getattr(api, name)
    raise AttributeError(f"module 'gpt' has no attribute {name!r}")
