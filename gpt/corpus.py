"""The corpus: found or fetched, checked, split, and read by windows. No Lightning here: the commands that only
score a checkpoint on its corpus (gpt.evaluate, through gpt.inspection) start without loading a trainer.

A corpus is found by `data.path`, then the environment variable its preset names in `data.path_env` ($GPT_DATA for
War and Peace and data=text; none for the benchmarks, so that a $GPT_DATA set for War and Peace never stands in for
enwik8), then the cache, then downloaded where the preset has a URL, and checked against its sha256 wherever it
came from. It is split contiguously into train, validation and (where data.test_fraction > 0, as for enwik8 and
text8) a held-out test part that only gpt.evaluate split=test reads. A window of `block_size + 1` tokens gives the
inputs and, shifted by one, the targets.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch

from gpt.config import SPLITS
from gpt.errors import UserError
from gpt.token_cache import cache_dir, text_sha256


def resolve_corpus(
    name: str,
    path: str | None,
    url: str | None,
    sha256: str | None,
    archive_member: str | None = None,
    path_env: str | None = None,
) -> Path:
    """Find the corpus: `data.path`, then the environment variable `path_env` (where given), then the cache, then a
    download from `url` (a zip archive where `archive_member` names the file inside it)."""
    for source, given in (("data.path", path), (path_env, os.environ.get(path_env) if path_env else None)):
        if given:
            found = Path(given).expanduser()
            if not found.exists():
                raise UserError(f"{source}={given}: no such file")
            if not found.is_file():
                raise UserError(
                    f"{source}={given}: not a regular file (a directory or a device); give a UTF-8 text file"
                )
            return _checked(found, sha256, source)
    cached = cache_dir() / f"{name}.txt"
    if cached.is_file():
        return _checked(cached, sha256, "the cache")
    fetched = f"the file {archive_member} from {url}, unzipped," if archive_member else "it"
    how = f"set data.path=FILE{f' or {path_env}=FILE' if path_env else ''}, or put {fetched} at {cached}"
    if not url:
        raise UserError(f"no corpus for data={name}: {how}")
    try:
        return _download(url, cached, sha256, archive_member)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) else exc  # KeyError's str() quotes its message
        raise UserError(f"corpus {name!r} not found and its download from {url} failed ({reason}): {how}") from None


def _checked(path: Path, sha256: str | None, source: str) -> Path:
    if sha256 and (got := text_sha256(path)) != sha256:
        raise UserError(
            f"{path} (from {source}) has sha256 {got[:12]}..., expected {sha256[:12]}...: the file is corrupt or a "
            "different text; fetch it again, or train on your own text with data=text data.path=FILE"
        )
    return path


def _download(url: str, dest: Path, sha256: str | None, archive_member: str | None) -> Path:
    """url's file (or the member of its zip) at dest, checked against sha256 before it is put there."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as file:
            shutil.copyfileobj(response, file, 1 << 20)
        if archive_member:
            unzipped = dest.with_suffix(".unzipped")
            with (
                zipfile.ZipFile(partial) as archive,
                archive.open(archive_member) as member,
                unzipped.open("wb") as out,
            ):
                shutil.copyfileobj(member, out, 1 << 20)
            unzipped.replace(partial)
        _checked(partial, sha256, url)
        partial.replace(dest)
    finally:
        for leftover in (partial, dest.with_suffix(".unzipped")):
            leftover.unlink(missing_ok=True)
    return dest


def splits(data, train_fraction: float, test_fraction: float = 0.0) -> dict:
    """The contiguous splits of a corpus (a string or its token ids): the first train_fraction trains, the last
    test_fraction is held out for testing (gpt.evaluate split=test), and what lies between validates. enwik8 and
    text8's 90M / 5M / 5M are 0.9 and 0.05 of their 10^8 bytes."""
    n_train, n_test = int(train_fraction * len(data)), int(test_fraction * len(data))
    parts = (data[:n_train], data[n_train : len(data) - n_test], data[len(data) - n_test :])
    return dict(zip(SPLITS, parts, strict=True))


def gather(data: np.ndarray | torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """data[index] as int64 token ids, from a token memmap (only the entries indexed are read) or a tensor."""
    if isinstance(data, torch.Tensor):
        return data[index].long()
    return torch.from_numpy(data[index.numpy()].astype(np.int64))


def window_batch(data: np.ndarray | torch.Tensor, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, ...]:
    """Inputs data[s : s+T] and targets data[s+1 : s+T+1] for every start s."""
    windows = gather(data, starts[:, None] + torch.arange(block_size + 1))
    return windows[:, :-1], windows[:, 1:]
