"""The corpus tokenized once and memory-mapped after (gpt/token_cache.py): the same ids as CharTokenizer, the same
batches as the in-memory corpus, one encoding per text, a new one for a changed text, never a damaged one trusted."""

import re

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from gpt import token_cache
from gpt.corpus import window_batch
from gpt.data import RandomWindows
from gpt.errors import UserError
from gpt.inspection import evaluate_ids, split_ids
from gpt.models import GPT
from gpt.tokenizer import ByteTokenizer, CharTokenizer


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tokens"


# multi-byte characters (2, 3 and 4 bytes in UTF-8) at every offset of a chunk boundary
TEXT = "War and Peace — «Eh bien, mon prince». Пьер 🎻 naïve\n" * 40


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 24])
def test_the_ids_are_chartokenizers_whatever_the_chunks(chunk_bytes, tmp_path, monkeypatch):
    monkeypatch.setattr(token_cache, "CHUNK_BYTES", chunk_bytes)
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    tokens, tokenizer = token_cache.encoded_corpus(path)
    reference = CharTokenizer.from_text(TEXT)
    assert tokenizer.chars == reference.chars
    assert tokens.dtype == np.uint8 and np.array_equal(tokens, reference.encode(TEXT))


def test_vocabularies_past_256_characters_take_16_bits(tmp_path):
    text = "".join(chr(0x400 + i) for i in range(300)) * 3
    path = tmp_path / "wide.txt"
    path.write_text(text, encoding="utf-8")
    tokens, tokenizer = token_cache.encoded_corpus(path)
    assert tokens.dtype == np.uint16 and tokenizer.vocab_size == 300
    assert np.array_equal(tokens, CharTokenizer.from_text(text).encode(text))


def test_a_text_is_encoded_once_and_again_only_when_it_changes(tmp_path, monkeypatch, cache):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    token_cache.encoded_corpus(path)
    encode = token_cache._encode
    monkeypatch.setattr(token_cache, "_encode", lambda *a: pytest.fail("encoded again"))
    token_cache.encoded_corpus(path)  # from the cache
    path.write_text(TEXT + "a new line\n", encoding="utf-8")  # another size: another sha256, another key
    monkeypatch.setattr(token_cache, "_encode", encode)
    tokens, tokenizer = token_cache.encoded_corpus(path)
    assert tokenizer.decode(tokens[-11:].tolist()) == "a new line\n"
    assert len(list(cache.glob("*.bin"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta", "meta_not_an_object", "texts_index_not_an_object"])
def test_a_damaged_cache_is_rebuilt_not_trusted(damage, tmp_path, cache):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    want, _ = token_cache.encoded_corpus(path)
    want = np.array(want)
    (bin_path,) = cache.glob("*.bin")
    raw = bytearray(bin_path.read_bytes())
    if damage == "truncate":
        bin_path.write_bytes(raw[:-5])
    elif damage == "flip":
        raw[3] ^= 0xFF
        bin_path.write_bytes(raw)
    elif damage == "meta":
        bin_path.with_suffix(".json").write_text("{not json")
    elif damage == "meta_not_an_object":
        bin_path.with_suffix(".json").write_text("[1, 2]")
    else:
        (cache / "texts.json").write_text("[1, 2]")
    got, _ = token_cache.encoded_corpus(path)
    assert np.array_equal(got, want)


def test_a_cache_that_cannot_be_written_is_a_one_line_refusal(tmp_path, monkeypatch):
    """GPT_CACHE_DIR under a file (or anywhere it cannot be made): the refusal names the place and the variable; an
    error reading the text itself is not taken for the cache's."""
    (tmp_path / "a_file").write_text("not a folder\n")
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "a_file"))
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    with pytest.raises(UserError, match=r"cannot write the token cache at .*a_file.*: set GPT_CACHE_DIR"):
        token_cache.encoded_corpus(path)
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(token_cache, "_encode", lambda *a: (tmp_path / "gone.txt").read_bytes())
    with pytest.raises(FileNotFoundError):
        token_cache.encoded_corpus(path)


def test_the_memmap_serves_the_batches_the_tensor_served(war_and_peace):
    """War and Peace through the cache gives the very batches, validation windows and whole-split loss that its
    ids as one in-memory tensor gave before: training is unchanged step for step."""
    tokens, tokenizer = token_cache.encoded_corpus(war_and_peace)
    tensor = torch.tensor(CharTokenizer.from_text(war_and_peace.read_text()).encode(war_and_peace.read_text()))
    streams = [iter(RandomWindows(data, block_size=64, batch_size=8, seed=3)) for data in (tokens, tensor)]
    for _ in range(3):
        (x, y), (x_ref, y_ref) = (next(stream) for stream in streams)
        assert x.dtype == torch.long and torch.equal(x, x_ref) and torch.equal(y, y_ref)
    starts = torch.tensor([0, 5, len(tokens) - 65])
    pairs = zip(window_batch(tokens, starts, 64), window_batch(tensor, starts, 64), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    model = GPT(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_embd=16, n_head=2, dropout=0.0,
                backend="eager")  # fmt: skip
    assert evaluate_ids(model, tokens[:3000], stride=16) == evaluate_ids(model, tensor[:3000], stride=16)


def test_a_split_in_another_vocabulary_is_mapped_to_it(tmp_path):
    """gpt.evaluate on a corpus whose characters are a subset of the checkpoint's: the ids are the checkpoint's."""
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    checkpoint = CharTokenizer.from_text(TEXT + "xyz#")
    data = OmegaConf.create({"name": "text", "path": str(path), "url": None, "sha256": None, "train_fraction": 0.5})
    _, ids = split_ids(data, "val", checkpoint)
    assert np.array_equal(ids, checkpoint.encode(TEXT[len(TEXT) // 2 :]))


@pytest.mark.parametrize("tokenizer, units", [(CharTokenizer("ab"), "characters"), (ByteTokenizer(), "bytes")])
def test_a_split_too_short_to_score_is_named(tmp_path, tokenizer, units):
    """One token in the validation split predicts nothing: the refusal names that split and its file, and counts
    in the tokenizer's unit."""
    path = tmp_path / "text.txt"
    path.write_text("ab", encoding="utf-8")
    data = OmegaConf.create({"name": "text", "path": str(path), "url": None, "sha256": None, "train_fraction": 0.5})
    with pytest.raises(UserError, match=rf"the val split of {re.escape(str(path))} has fewer than 2 {units}:"):
        split_ids(data, "val", tokenizer)
