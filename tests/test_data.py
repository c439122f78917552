"""Corpus resolution and validation, and the window sampling the training and validation sets use."""

import hashlib
import re

import pytest
import torch

from gpt.corpus import resolve_corpus, window_batch
from gpt.data import CharDataModule, RandomWindows
from gpt.errors import UserError
from gpt.token_cache import encoded_corpus

WAP_SHA256 = "7443fdc978a9f769928898ea75db4096f755fd6972f4b133ca1fcba072eb0c80"


@pytest.fixture
def no_corpus_env(monkeypatch, tmp_path):
    """No $GPT_DATA, and an empty cache dir: only what a test passes explicitly can be found."""
    monkeypatch.delenv("GPT_DATA", raising=False)
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_explicit_path_wins_over_env(no_corpus_env, monkeypatch, short_text, war_and_peace):
    monkeypatch.setenv("GPT_DATA", str(war_and_peace))
    assert resolve_corpus("text", str(short_text), None, None, path_env="GPT_DATA") == short_text
    assert resolve_corpus("text", None, None, None, path_env="GPT_DATA") == war_and_peace


def test_download_is_checked_and_cached(no_corpus_env, short_text):
    url = short_text.as_uri()  # a file:// URL exercises the real download code with no network
    digest = hashlib.sha256(short_text.read_bytes()).hexdigest()
    found = resolve_corpus("mine", None, url, digest)
    assert found == no_corpus_env / "mine.txt" and found.read_bytes() == short_text.read_bytes()
    short_text.unlink()  # now served from the cache
    assert resolve_corpus("mine", None, url, digest) == found


def test_download_with_wrong_checksum_is_refused_and_not_cached(no_corpus_env, short_text):
    with pytest.raises(UserError, match="sha256"):
        resolve_corpus("mine", None, short_text.as_uri(), "0" * 64)
    assert not (no_corpus_env / "mine.txt").exists()


def test_missing_corpus_says_how_to_provide_it(no_corpus_env, tmp_path):
    offline = (tmp_path / "offline.txt").as_uri()
    with pytest.raises(UserError) as info:
        resolve_corpus("war_and_peace", None, offline, WAP_SHA256, path_env="GPT_DATA")
    message = str(info.value)
    assert "data.path=" in message and "GPT_DATA=" in message and str(no_corpus_env) in message
    with pytest.raises(UserError) as info:  # a preset that names no environment variable
        resolve_corpus("mine", None, offline, None)
    assert "data.path=FILE, or put it at" in str(info.value) and "GPT_DATA" not in str(info.value)
    with pytest.raises(UserError, match=r"data\.path=/nope\.txt: no such file"):
        resolve_corpus("war_and_peace", "/nope.txt", None, None)


def test_corrupt_corpus_is_refused(no_corpus_env, tmp_path, war_and_peace):
    truncated = tmp_path / "wap.txt"
    truncated.write_bytes(war_and_peace.read_bytes()[:-100])
    with pytest.raises(UserError, match="corrupt"):
        resolve_corpus("war_and_peace", str(truncated), None, WAP_SHA256)
    assert resolve_corpus("war_and_peace", str(war_and_peace), None, WAP_SHA256) == war_and_peace


@pytest.mark.parametrize(
    "content, complaint",
    [
        (b"", "empty"),
        (b" \n\n", "empty"),
        (b"abc\x00def", "binary"),
        (b"caf\xe9 au lait", "not valid UTF-8"),
        ("café\n".encode("utf-16"), "UTF-16 text .* convert it: iconv -f UTF-16 -t UTF-8 .*bad.txt > bad.utf8.txt$"),
        ("café\n".encode("utf-32"), "UTF-32 text"),
        ("café\n".encode("utf-16-be"), "binary"),  # no byte-order mark: nothing says it is text
        (b"abc" + "café".encode("utf-16"), "binary"),  # a mark only counts where a file begins
    ],
)
def test_unusable_text_is_refused(tmp_path, content, complaint, monkeypatch):
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=complaint):
        encoded_corpus(path)


def test_windows_are_shifted_by_one():
    data = torch.arange(100)
    x, y = window_batch(data, torch.tensor([0, 10, 90]), block_size=8)
    assert x.shape == y.shape == (3, 8)
    assert torch.equal(x[1], torch.arange(10, 18)) and torch.equal(y[1], torch.arange(11, 19))


def test_batch_depends_only_on_seed_and_step_and_ranks_share_the_global_batch():
    data = torch.arange(1000)
    stream = iter(RandomWindows(data, block_size=8, batch_size=4, seed=7))
    batches = [next(stream) for _ in range(5)]
    resumed = next(iter(RandomWindows(data, block_size=8, batch_size=4, seed=7, start_step=3)))
    assert torch.equal(resumed[0], batches[3][0])
    assert all(x.max() < 1000 - 1 and torch.equal(x + 1, y) for x, y in batches)
    # Two processes with 2 windows each see, together, the 4 windows one process sees.
    ranks = [
        next(iter(RandomWindows(data, block_size=8, batch_size=2, seed=7, rank=r, world_size=2, start_step=3)))
        for r in (0, 1)
    ]
    assert torch.equal(torch.cat([ranks[0][0], ranks[1][0]]), batches[3][0])


def make_datamodule(path, **overrides):
    args = (
        dict(
            name="text",
            path=str(path),
            url=None,
            sha256=None,
            block_size=16,
            batch_size=4,
            train_fraction=0.9,
            val_windows=8,
            seed=0,
        )
        | overrides
    )
    dm = CharDataModule(**args)
    dm.setup("fit")
    return dm


def test_split_is_contiguous_and_validation_fixed_across_seeds(short_text):
    dm = make_datamodule(short_text)
    text = short_text.read_text()
    n_train = int(0.9 * len(text))
    assert dm.tokenizer.decode(dm.train_data.tolist()) == text[:n_train]
    assert dm.tokenizer.decode(dm.val_data.tolist()) == text[n_train:]
    other_seed = make_datamodule(short_text, seed=123)
    assert torch.equal(dm.val_set.tensors[0], other_seed.val_set.tensors[0])


def test_block_size_larger_than_a_split_is_refused(short_text):
    with pytest.raises(UserError, match=r"data\.block_size=100 does not fit the validation split"):
        make_datamodule(short_text, block_size=100)


def test_the_block_size_suggested_for_a_short_split_fits_every_split(tmp_path):
    """A train split too short for the block size gets a bound that the (shorter) validation split takes too."""
    text = tmp_path / "small.txt"
    text.write_text("hello world " * 10)  # 120 characters: 108 to train on, 12 to validate on
    with pytest.raises(UserError, match=r"block_size=110 does not fit the train split") as refusal:
        make_datamodule(text, block_size=110, batch_size=1, val_windows=1)
    largest = int(re.search(r"data\.block_size <= (\d+)", str(refusal.value)).group(1))
    assert largest == 12 - 2
    make_datamodule(text, block_size=largest, batch_size=1, val_windows=1)
    with pytest.raises(UserError, match="does not fit the validation split"):
        make_datamodule(text, block_size=largest + 1, batch_size=1, val_windows=1)
