"""The LightningModule that trains any phase: the loss, the optimiser and LR schedule (gpt/optim.py), the vocabulary.

Its hyperparameters (model config, optimiser config, vocabulary) are saved in every checkpoint, so
`LanguageModelModule.load_from_checkpoint(path)` rebuilds the model and its tokenizer from the file alone.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate

from gpt.models import LanguageModel
from gpt.optim import build_optimizer, build_schedule
from gpt.tokenizer import CharTokenizer


class LanguageModelModule(L.LightningModule):
    def __init__(self, model: dict[str, Any], optim: dict[str, Any], vocab: str, max_steps: int):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = CharTokenizer(vocab)
        self.model: LanguageModel = instantiate(model, vocab_size=self.tokenizer.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        return self.model(idx, targets)

    def training_step(self, batch, batch_idx):
        _, loss = self.model(*batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        _, loss = self.model(*batch)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model, self.hparams.optim)
        schedule = build_schedule(optimizer, self.hparams.optim, self.hparams.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
