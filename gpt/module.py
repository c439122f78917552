"""The LightningModule that trains any phase: the loss, the optimiser and LR schedule (gpt/optim.py), the vocabulary.

Its hyperparameters (model config, optimiser config, vocabulary) are saved in every checkpoint, so
`LanguageModelModule.load_from_checkpoint(path)` rebuilds the model and its tokenizer from the file alone.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from lightning.pytorch.utilities import GradClipAlgorithmType

from gpt.checkpoints import FORMER_TOKENIZER, build_model
from gpt.optim import build_optimizer, build_schedule


class LanguageModelModule(L.LightningModule):
    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        vocab: str,
        max_steps: int,
        corpus: dict | None = None,
        tokenizer: str = FORMER_TOKENIZER,  # Lightning passes none for checkpoints that record none
    ):
        """The model and tokenizer are built from `model`, `tokenizer` and `vocab` (gpt.checkpoints.build_model).
        `corpus` (CharDataModule.corpus_record) is only recorded, with the vocabulary it gave: the text gpt.evaluate
        scores by default."""
        super().__init__()
        self.save_hyperparameters()
        self.model, self.tokenizer = build_model(model, tokenizer, vocab)
        self.compiled_forward = None  # compile_steps
        # one sequence of the longest context: Lightning's model summary runs it to count the FLOPs of a forward
        self.example_input_array = torch.zeros(1, self.model.block_size, dtype=torch.long)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Next-token logits for token ids (batch, T). Training and validation go through `loss`."""
        return self.model(idx)[0]

    def compile_steps(self, mode: str | None = None) -> None:
        """torch.compile what the training and validation steps run (`mode` as torch.compile's: None or
        "default", "reduce-overhead" for CUDA graphs, "max-autotune", ...). The model itself stays as it is:
        checkpoints keep their parameter names, and sampling, with its growing context, runs eagerly."""
        self.compiled_forward = torch.compile(self.model.forward, mode=mode)  # a function, not a submodule

    def loss(self, batch) -> torch.Tensor:
        """The batch's mean cross-entropy, through the compiled forward where there is one."""
        if self.compiled_forward is None:
            return self.model(*batch)[1]
        # under CUDA graphs the last step's outputs may be overwritten from here on (a no-op otherwise; it imports
        # torch._inductor, ~1 s, hence only here)
        torch.compiler.cudagraph_mark_step_begin()
        return self.compiled_forward(*batch)[1]

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        # AdamW fused wherever no fp16 GradScaler is in play: a fused step unscales the gradients itself, after
        # clipping would have seen them scaled (Lightning then refuses to clip; bf16 and fp32 scale nothing)
        fused = getattr(self.trainer.precision_plugin, "scaler", None) is None
        optimizer = build_optimizer(self.model, self.hparams.optim, fused=fused)
        schedule = build_schedule(optimizer, self.hparams.optim, self.hparams.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        """The trainer's clipping, as its precision plugin does it. Lightning's mixed-precision plugin refuses any
        fused optimiser, for fear of a GradScaler; without one (bf16-mixed) its parent's clipping is exact."""
        plugin = self.trainer.precision_plugin
        if isinstance(plugin, MixedPrecision) and plugin.scaler is None:
            algorithm = GradClipAlgorithmType((gradient_clip_algorithm or "norm").lower())  # Lightning's default
            super(MixedPrecision, plugin).clip_gradients(optimizer, gradient_clip_val or 0.0, algorithm)
        else:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
