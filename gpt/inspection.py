"""Looking inside a trained model: its loss over a whole split, and its attention maps. Training calls both once
it ends (cfg.inspect), and so do the commands gpt.evaluate and gpt.attention on a checkpoint.

**The loss over a whole split** (evaluate_ids), every character predicted once, in nats and in bits per character.
Training's val loss is an estimate over 256 fixed windows, where a character's context is wherever it falls in
its window. Here windows of block_size characters slide over the whole split by `stride`: the first window
scores all its positions, each next one only its last `stride` (those no earlier window scored), so every
character of the split but the first is predicted exactly once, from at least block_size - stride characters of
left context (or all the split before it, where that is shorter). The stride trades work for context:
stride = block_size scores disjoint windows (the cheapest; a character then sees on average half a block),
stride = 1 gives every character a whole block (block_size times the work). The default, half a block, gives every
character at least half a block. Bits per character = nats / ln 2.

**Attention maps** (save_attention_maps): for a passage, every head of every attention layer, which earlier
characters each character attends to, as the matrix softmax(q k^T / sqrt(d) + causal mask) with the queries as
rows and the keys as columns, the passage's characters on both axes; one PNG, a row of heads per layer. The
weights are recomputed from the q and k each layer computes for the passage
(CausalSelfAttention.queries_keys_values, after rotary embeddings and QK-norm when on) by the textbook math
(kernels.eager.attention_weights): every backend gives the same maps, the flash kernels included, which never
hold the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import DictConfig

from gpt.errors import UnknownCharacterError, UserError, counted

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from gpt.models import LanguageModel
    from gpt.tokenizer import Tokenizer


@dataclass(frozen=True)
class Evaluation:
    loss: float  # mean cross-entropy, nats per character
    characters: int  # characters scored: the split's length - 1
    stride: int

    @property
    def bits_per_character(self) -> float:
        return self.loss / math.log(2)


def window_ends(n_targets: int, block_size: int, stride: int) -> list[int]:
    """Where each window ends: window [end - block_size, end) predicts characters end - block_size + 1 .. end,
    of which it scores those after the previous window's end. The last window ends at the last character."""
    return [*range(block_size, n_targets, stride), n_targets]


def evaluate_ids(
    model: LanguageModel, ids: np.ndarray | torch.Tensor, stride: int | None = None, batch_tokens: int = 2048
) -> Evaluation:
    """The mean loss of predicting ids[1:] from strided windows of ids (1-D token ids: a token memmap, of which only
    the windows are read, or a tensor), in the model's dtype, with the sum kept in float64; about batch_tokens
    positions per forward pass (larger is slower on a CPU)."""
    import torch
    import torch.nn.functional as F

    from gpt.corpus import gather

    if len(ids) < 2:
        raise UserError(f"the split has {counted(len(ids), 'token')}: nothing to predict; give a longer text")
    block = min(model.block_size, len(ids) - 1)
    stride = min(stride or max(1, model.block_size // 2), block)
    batch_size = max(1, batch_tokens // block)  # windows per forward pass
    ends = torch.tensor(window_ends(len(ids) - 1, block, stride))
    scored = ends - torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1]])  # new characters per window
    device = next(model.parameters()).device
    positions = torch.arange(block + 1)
    total = torch.zeros((), dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for first in range(0, len(ends), batch_size):
                end, new = ends[first : first + batch_size], scored[first : first + batch_size]
                windows = gather(ids, (end - block)[:, None] + positions).to(device)  # (windows, block + 1)
                logits = model.logits(windows[:, :-1])
                losses = F.cross_entropy(logits.flatten(0, 1).float(), windows[:, 1:].flatten(), reduction="none")
                keep = (positions[None, :block] >= block - new[:, None]).to(device)  # each window's last `new`
                total += losses.view(len(end), block)[keep].sum(dtype=torch.float64)
    finally:
        model.train(was_training)
    return Evaluation(loss=total.item() / (len(ids) - 1), characters=len(ids) - 1, stride=stride)


def check_split(data: DictConfig, split_name: str) -> None:
    """split=test only where the corpus holds out a test split."""
    if split_name == "test" and not data.get("test_fraction"):
        raise UserError(
            f"split=test: data={data.name} holds out no test split (data.test_fraction=0); allowed: train, val, or "
            "a corpus with a test split (data=enwik8, data=text8, or data.test_fraction > 0 when training)"
        )


def split_ids(data: DictConfig, split_name: str, tokenizer: Tokenizer) -> tuple[Path, np.ndarray]:
    """The corpus file, and the token ids of its split `split_name` in the checkpoint's tokenizer: the corpus's
    cached tokens (gpt/token_cache.py) as they are where the vocabularies agree, else mapped to the checkpoint's.
    `data` is a data config, or the corpus record of a checkpoint (older ones lack the later keys)."""
    from gpt.corpus import resolve_corpus, splits
    from gpt.token_cache import encoded_corpus

    check_split(data, split_name)
    # records from before data.path_env read $GPT_DATA for every corpus, as every run did then
    corpus = resolve_corpus(data.name, data.path, data.url, data.sha256, data.get("archive_member"),
                            data.get("path_env", "GPT_DATA"))  # fmt: skip
    tokens, own = encoded_corpus(corpus, tokenizer.name)
    part = splits(tokens, data.train_fraction, data.get("test_fraction") or 0.0)[split_name]
    if len(part) < 2:
        raise UserError(
            f"the {split_name} split of {corpus} has fewer than {counted(2, tokenizer.noun)}: nothing to predict; "
            "give a longer text, or another split"
        )
    if own.vocab == tokenizer.vocab:
        return corpus, part
    present = np.bincount(part, minlength=own.vocab_size) > 0
    try:
        tokenizer.encode("".join(c for c, used in zip(own.chars, present, strict=True) if used))
    except UserError as exc:
        raise UserError(f"the {split_name} split of {corpus}: {exc}") from None
    index = {c: i for i, c in enumerate(tokenizer.chars)}
    return corpus, np.array([index.get(c, 0) for c in own.chars], dtype=np.int64)[part]


FIRST_LINE = "Well, Prince, so Genoa and Lucca are now just family estates of the Buonapartes."  # War and Peace


def attention_layers(model: LanguageModel) -> list:
    """The model's attention layers, in the order they run (none in phase 1)."""
    from gpt.models.attention import CausalSelfAttention

    return [module for module in model.modules() if isinstance(module, CausalSelfAttention)]


def attention_maps(model: LanguageModel, idx: torch.Tensor) -> torch.Tensor:
    """The attention weights of every layer and head for the sequence idx (1, T): (layers, heads, T, T)."""
    import torch

    from kernels.eager import attention_weights

    layers = attention_layers(model)
    if not layers:
        raise UserError(f"a {type(model).__name__} has no attention to draw (phase 1 looks at one character only)")
    maps = []

    def record(layer, args):  # runs before each layer's forward, on the input that layer receives
        q, k, _ = layer.queries_keys_values(args[0])
        maps.append(attention_weights(q, k)[0])

    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model.logits(idx)
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return torch.stack(maps).float().cpu()


def draw_attention_maps(maps: torch.Tensor, labels: list[str], title: str) -> Figure:
    """One panel per (layer, head), queries down and keys across, weights on a square-root colour scale (so
    that weak attention still shows), the masked future blank; `labels` name the tokens on both axes. A figure of
    its own, outside pyplot's state: a notebook shows it, a command saves it."""
    import matplotlib
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    n_layers, n_heads, T, _ = maps.shape
    future = np.triu(np.ones((T, T), dtype=bool), k=1)  # keys a query cannot see: left blank
    colours = matplotlib.colormaps["viridis"].with_extremes(bad="white")
    every = max(1, T // 48)  # at most ~48 labelled characters per axis
    ticks = list(range(0, T, every))
    panel = 1.2 + T / 16
    fig = Figure(figsize=(panel * n_heads, panel * n_layers + 0.6), layout="constrained")
    axes = fig.subplots(n_layers, n_heads, squeeze=False)
    for layer in range(n_layers):
        for head in range(n_heads):
            ax = axes[layer][head]
            weights = np.ma.masked_array(maps[layer, head].numpy(), mask=future)
            image = ax.imshow(weights, cmap=colours, norm=PowerNorm(0.5, vmin=0, vmax=1))
            ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=9)
            ax.set_xticks(ticks, [labels[i] for i in ticks], fontsize=6, fontfamily="monospace")
            ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=6, fontfamily="monospace")
            ax.tick_params(length=0, pad=1)
    axes[0][0].set_ylabel("query (attending)", fontsize=8)
    axes[0][0].set_xlabel("key (attended to)", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(title, fontsize=10)
    return fig


def passage_ids(text: str, tokenizer: Tokenizer, block_size: int) -> list[int]:
    if not text:
        raise UserError("text is empty: give a passage of 1 to block_size characters")
    ids = tokenizer.encode(text)
    if len(ids) > block_size:
        raise UserError(
            f"text has {counted(len(ids), tokenizer.noun)}; the model attends over block_size={block_size} at most: "
            f"give 1 to {counted(block_size, tokenizer.noun)}"
        )
    return ids


def default_passage(tokenizer: Tokenizer, block_size: int) -> str:
    """War and Peace's first line, as much of it as the block holds, where the model knows its characters."""
    passage = FIRST_LINE[:block_size]
    try:
        tokenizer.encode(passage)
    except UnknownCharacterError as exc:
        default = "the default passage (War and Peace's first line)"
        raise UserError(f'no text= given, and {default} has {exc}; give text="..."') from None
    return passage


def attention_figure(model: LanguageModel, tokenizer: Tokenizer, ids: list[int], title: str) -> Figure:
    """The attention maps of `model` for the tokens `ids` (at most block_size of them), as a figure."""
    import torch

    idx = torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)
    return draw_attention_maps(attention_maps(model, idx), tokenizer.labels(ids), title)


def save_attention_maps(model: LanguageModel, tokenizer: Tokenizer, ids: list[int], path: Path, title: str) -> Path:
    """Draw the attention maps of `model` for the tokens `ids` into the PNG at path."""
    return save_figure(attention_figure(model, tokenizer, ids, title), path)


def figure_path(out: str, name: str) -> Path:
    """`out=` as the file a figure goes to, checked before anything is loaded or drawn: its suffix names a format
    matplotlib writes (png, pdf, svg, ...). A folder (one that exists, or a path ending in /) gets the figure as
    `name` in it."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(out).expanduser()
    if path.is_dir() or out.endswith("/"):
        path = path / name
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    if path.suffix[1:].lower() not in formats:
        raise UserError(
            f"out={out}: not a figure format matplotlib writes; end the name in one of .{', .'.join(formats)}"
        )
    return path


def save_figure(figure: Figure, path: Path) -> Path:
    """The figure written to path (its folder made first); a path that cannot be written is the user's to change."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    except OSError as exc:
        raise UserError(f"cannot write {path.absolute()}: {exc.strerror}; give a path that can be written") from None
    return path
