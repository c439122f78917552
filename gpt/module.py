"""The LightningModule that trains any phase: the loss, AdamW, warmup + cosine LR, and the vocabulary.

Its hyperparameters (model config, optimiser config, vocabulary) are saved in every checkpoint, so
`LanguageModelModule.load_from_checkpoint(path)` rebuilds the model and its tokenizer from the file alone.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from gpt.models import LanguageModel
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
        opt = self.hparams.optim
        # Weight decay shrinks matrices (embeddings, linear weights) towards zero; biases and LayerNorm gains
        # are 1-D and left alone, as decaying them only hurts.
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": opt["weight_decay"]},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]))
        max_steps = self.hparams.max_steps
        warmup = min(opt["warmup_steps"], max_steps - 1)
        schedule = SequentialLR(
            optimizer,
            schedulers=[
                LinearLR(optimizer, start_factor=1.0 / (warmup + 1), total_iters=warmup),
                CosineAnnealingLR(optimizer, T_max=max(1, max_steps - warmup), eta_min=opt["lr"] * opt["min_lr_ratio"]),
            ],
            milestones=[warmup],
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
