"""The Lightning data module that serves windows of the corpus (gpt/corpus.py finds, checks and splits it).

The text is tokenized once and memory-mapped after (gpt/token_cache.py; by character, or by byte where the file
is its own tokens): a run reads only the windows it draws, whatever the corpus's size. Training batches are random
windows of `block_size + 1` characters (inputs and the same window shifted by one as targets), as in the original
notebook. Batch number `i` is a pure function of (seed, rank, i), so a resumed run sees exactly the batches the
uninterrupted run would have. Validation uses a fixed set of windows drawn with a fixed seed, so val loss is
comparable across runs and seeds.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from gpt.config import DataConfig
from gpt.corpus import resolve_corpus, splits, window_batch
from gpt.errors import UserError, counted
from gpt.token_cache import NotTextError, encoded_corpus
from gpt.tokenizer import ByteTokenizer, CharTokenizer

VAL_SEED = 0  # the validation windows never change with the run's seed


class RandomWindows(IterableDataset):
    """An endless stream of batches of random windows. Step `step`'s global batch (batch_size windows for each of
    world_size processes) depends only on (seed, step); each rank takes its own slice of it. So a run resumed at
    any step sees the batches it would have seen, and N processes together see what one process with an N times
    larger batch sees."""

    def __init__(
        self,
        data: np.ndarray | torch.Tensor,  # a token memmap, or ids in memory
        block_size: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ):
        self.data, self.block_size, self.batch_size = data, block_size, batch_size
        self.seed, self.rank, self.world_size, self.start_step = seed, rank, world_size, start_step

    def __iter__(self):
        high = len(self.data) - self.block_size
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        for step in itertools.count(self.start_step):
            generator = torch.Generator().manual_seed(hash((self.seed, step)) & (2**63 - 1))
            starts = torch.randint(high, (self.batch_size * self.world_size,), generator=generator)[mine]
            yield window_batch(self.data, starts, self.block_size)


class CharDataModule(L.LightningDataModule):
    """A corpus tokenized by character (or by byte), split contiguously into train, validation and test text."""

    def __init__(
        self,
        name: str,
        path: str | None,
        url: str | None,
        sha256: str | None,
        block_size: int,
        batch_size: int,
        train_fraction: float,
        val_windows: int,
        seed: int,
        test_fraction: float = DataConfig.test_fraction,
        tokenizer: str = DataConfig.tokenizer,
        archive_member: str | None = DataConfig.archive_member,
        path_env: str | None = DataConfig.path_env,
    ):
        super().__init__()
        self.name, self.path, self.url, self.sha256 = name, path, url, sha256
        self.archive_member, self.path_env, self.tokenizer_name = archive_member, path_env, tokenizer
        self.block_size, self.batch_size = block_size, batch_size
        self.train_fraction, self.test_fraction = train_fraction, test_fraction
        self.val_windows, self.seed = val_windows, seed
        self.tokenizer: CharTokenizer | ByteTokenizer | None = None

    def corpus_record(self) -> dict:
        """Which text, tokenized and split how: what checkpoints record so that gpt.evaluate finds the text a model
        was trained on (a given path made absolute, for commands run from another folder)."""
        path = str(Path(self.path).expanduser().absolute()) if self.path else None
        return {"name": self.name, "path": path, "url": self.url, "sha256": self.sha256,
                "archive_member": self.archive_member, "path_env": self.path_env, "tokenizer": self.tokenizer_name,
                "train_fraction": self.train_fraction, "test_fraction": self.test_fraction}  # fmt: skip

    def corpus(self) -> Path:
        return resolve_corpus(self.name, self.path, self.url, self.sha256, self.archive_member, self.path_env)

    def prepare_data(self) -> None:
        self.corpus()

    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is not None:  # already set up (train.py does it early to learn the vocabulary)
            return
        corpus = self.corpus()
        try:
            tokens, self.tokenizer = encoded_corpus(corpus, self.tokenizer_name)
        except NotTextError as exc:
            raise UserError(f"{exc}, or data.tokenizer=bytes to train on its bytes") from None
        parts = splits(tokens, self.train_fraction, self.test_fraction)
        self.train_data, self.val_data = parts["train"], parts["val"]
        uses = (
            ("train", self.train_data, "batch_size", self.batch_size),
            ("validation", self.val_data, "val_windows", self.val_windows),
        )
        # a window is block_size + 1 tokens (inputs and targets shifted by one); a split must hold two of them
        largest_block = min(len(part) for _, part, _, _ in uses) - 2
        for split_name, part, key, windows in uses:
            if len(part) <= self.block_size + 1:
                fits = (
                    f"use data.block_size <= {largest_block} (it must fit every split) or a longer text"
                    if largest_block > 0
                    else "the text is too short to train on: give a longer one"
                )
                raise UserError(
                    f"data.block_size={self.block_size} does not fit the {split_name} split of {corpus} "
                    f"({counted(len(part), self.tokenizer.noun)}); {fits}"
                )
            if windows > len(part) - self.block_size:
                raise UserError(
                    f"data.{key}={windows} is more than the {len(part) - self.block_size} distinct windows of "
                    f"{counted(self.block_size, self.tokenizer.noun)} in the {split_name} split of {corpus}; use "
                    f"data.{key} <= {len(part) - self.block_size}, a smaller data.block_size, or a longer text"
                )
        starts = torch.randint(
            len(self.val_data) - self.block_size, (self.val_windows,), generator=torch.Generator().manual_seed(VAL_SEED)
        )
        self.val_set = TensorDataset(*window_batch(self.val_data, starts, self.block_size))

    def train_dataloader(self) -> DataLoader:
        """Each loader has a generator of its own: without one, every iterator a loader starts (each validation, the
        training stream) draws a seed from torch's global random state, the one that draws the dropout masks, and
        a resumed run (which restores that state: callbacks.RandomState) would then mask differently."""
        trainer = self.trainer
        stream = RandomWindows(
            self.train_data,
            self.block_size,
            self.batch_size,
            self.seed,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            start_step=trainer.global_step if trainer else 0,
        )
        return DataLoader(stream, batch_size=None, generator=torch.Generator())

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, generator=torch.Generator())
