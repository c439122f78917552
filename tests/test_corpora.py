"""The benchmark corpora (data=enwik8, text8, tinyshakespeare): their presets, the byte tokenizer, the 90M / 5M / 5M
split, fetching from a zip, and a model trained and tested on each, all on synthetic files of the same shape
(gpt/synthetic.py): nothing here downloads."""

import hashlib
import zipfile

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_entry, tiny_except
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gpt.config import CONFIG_DIR
from gpt.corpus import resolve_corpus, splits
from gpt.data import CharDataModule
from gpt.errors import UserError
from gpt.synthetic import write_synthetic
from gpt.token_cache import encoded_corpus
from gpt.tokenizer import ByteTokenizer, CharTokenizer

# The published facts each preset must carry (see the preset files for where they are pinned).
PRESETS = {
    "enwik8": dict(tokenizer="bytes", train_fraction=0.9, test_fraction=0.05, archive_member="enwik8",
                   url="http://mattmahoney.net/dc/enwik8.zip",
                   sha256="2b49720ec4d78c3c9fabaee6e4179a5e997302b3a70029f30f2d582218c024a8"),
    "text8": dict(tokenizer="chars", train_fraction=0.9, test_fraction=0.05, archive_member="text8",
                  url="http://mattmahoney.net/dc/text8.zip",
                  sha256="6e890197040d37d85beb962ae1f041ff1d9a9ca8d20c7d99c85027eebf51dca7"),
    "tinyshakespeare": dict(tokenizer="chars", train_fraction=0.9, test_fraction=0.0, archive_member=None,
                            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
}  # fmt: skip


def composed_data(name: str):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("config", [f"data={name}"]).data


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_carries_its_source_tokenizer_and_split(name):
    data = composed_data(name)
    for key, value in PRESETS[name].items():
        assert data[key] == value, key


@pytest.mark.parametrize("name", ["enwik8", "text8"])
def test_the_conventional_split_is_90m_5m_5m_of_the_10_to_the_8_bytes(name):
    data = composed_data(name)
    parts = splits(range(10**8), data.train_fraction, data.test_fraction)
    assert [(p.start, p.stop) for p in parts.values()] == [(0, 90_000_000), (90_000_000, 95_000_000),
                                                             (95_000_000, 100_000_000)]  # fmt: skip


def test_splits_are_contiguous_and_cover_the_corpus_once():
    for n in (1, 7, 20, 1001):
        for train, test in ((0.9, 0.0), (0.9, 0.05), (0.5, 0.25), (0.1, 0.8)):
            parts = splits(list(range(n)), train, test)
            assert [i for part in parts.values() for i in part] == list(range(n))
            assert len(parts["train"]) == int(train * n) and len(parts["test"]) == int(test * n)


def test_the_byte_tokenizer_is_the_identity_on_utf8_and_decodes_a_stream_byte_by_byte():
    tokenizer = ByteTokenizer()
    text = "War and Peace: Война и мир, 戦争と平和 🙂"
    ids = tokenizer.encode(text)
    assert ids == list(text.encode("utf-8")) and tokenizer.decode(ids) == text
    decode = tokenizer.decoder()
    pieces = [decode(i) for i in ids]
    assert "".join(pieces) == text
    assert pieces[ids.index(0xF0) : ids.index(0xF0) + 4] == ["", "", "", "🙂"]  # nothing until the 4th byte
    assert tokenizer.decode([0x41, 0xFF, 0x42]) == "A\ufffdB"  # a byte that is not UTF-8 cannot stop a sample
    assert tokenizer.labels([0x41, 0x20, 0x0A, 0xC3]) == ["A", "␣", "⏎", "\\xc3"]


def test_an_enwik8_shaped_file_is_its_own_token_memmap_split_90_5_5(tmp_path):
    path = write_synthetic("enwik8", tmp_path / "enwik8", 20_000)
    raw = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the shape includes what a char tokenizer would refuse
    assert len(set(raw)) > 200
    tokens, tokenizer = encoded_corpus(path, "bytes")
    assert isinstance(tokenizer, ByteTokenizer) and tokens.dtype == np.uint8 and tokens.tobytes() == raw
    datamodule = CharDataModule(
        name="enwik8", path=str(path), url=None, sha256=None, block_size=16, batch_size=4, train_fraction=0.9,
        val_windows=8, seed=0, test_fraction=0.05, tokenizer="bytes",
    )  # fmt: skip
    datamodule.setup("fit")
    assert datamodule.train_data.tobytes() == raw[:18_000] and datamodule.val_data.tobytes() == raw[18_000:19_000]
    inputs, targets = next(iter(datamodule.train_dataloader()))
    for x, y in zip(inputs, targets, strict=True):  # every window is a run of the file's bytes
        start = raw.find(bytes(x.tolist()))
        assert 0 <= start < 18_000 and bytes(y.tolist()) == raw[start + 1 : start + 17]


def test_a_text8_shaped_file_has_27_characters_in_a_uint8_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "cache"))
    path = write_synthetic("text8", tmp_path / "text8", 50_000)
    tokens, tokenizer = encoded_corpus(path)
    assert isinstance(tokenizer, CharTokenizer) and tokenizer.chars == " abcdefghijklmnopqrstuvwxyz"
    assert tokens.dtype == np.uint8 and tokenizer.decode(tokens.tolist()) == path.read_text()


def test_a_zipped_corpus_is_fetched_unzipped_and_checked(tmp_path, monkeypatch):
    """url= a zip archive (a local file: URL here), archive_member= the file inside it, sha256= of that file."""
    monkeypatch.delenv("GPT_DATA", raising=False)
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path / "cache"))
    inner = write_synthetic("enwik8", tmp_path / "inner", 5_000)
    archive = tmp_path / "corpus.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(inner, "enwik8")
    digest = hashlib.sha256(inner.read_bytes()).hexdigest()
    found = resolve_corpus("enwik8", None, archive.as_uri(), digest, "enwik8")
    assert found == tmp_path / "cache" / "enwik8.txt" and found.read_bytes() == inner.read_bytes()
    assert not [p for p in found.parent.iterdir() if p.suffix in (".part", ".unzipped")]  # no partial file left
    with pytest.raises(UserError, match="expected 000000000000"):
        resolve_corpus("other", None, archive.as_uri(), "0" * 64, "enwik8")
    assert not (tmp_path / "cache" / "other.txt").exists() and not (tmp_path / "cache" / "other.part").exists()
    with pytest.raises(UserError, match=r"put the file missing from .* unzipped, at "):
        resolve_corpus("absent", None, archive.as_uri(), None, "missing")


def test_offline_a_preset_says_exactly_where_its_file_goes(tmp_path, war_and_peace):
    """No network here: each zipped preset names the file inside its archive and where to put it (not $GPT_DATA,
    which names War and Peace)."""
    offline = (tmp_path / "nowhere.zip").as_uri()
    for name in ("enwik8", "text8"):
        result = run_entry(
            "gpt.train", f"data={name}", f"data.url={offline}", *tiny_except(), f"hydra.run.dir={tmp_path / name}",
            env={"GPT_DATA": str(war_and_peace), "GPT_CACHE_DIR": str(tmp_path / "cache")},
        )  # fmt: skip
        assert_one_line_error(result, f"put the file {name} from {offline}, unzipped, at {tmp_path / 'cache'}")
        assert "GPT_DATA" not in result.stderr


@pytest.mark.parametrize("name", [*PRESETS, "war_and_peace", "text"])
def test_gpt_data_names_war_and_peace_and_never_stands_in_for_a_benchmark(name, tmp_path, monkeypatch, war_and_peace):
    """With $GPT_DATA set (as .ci/run sets it, for War and Peace), data=enwik8, text8, tinyshakespeare still read
    their own file from the cache; War and Peace and data=text (any text) take $GPT_DATA's."""
    monkeypatch.setenv("GPT_DATA", str(war_and_peace))
    monkeypatch.setenv("GPT_CACHE_DIR", str(tmp_path))
    (tmp_path / f"{name}.txt").write_text("a cached copy of the preset's own text\n")
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        data = compose("config", [f"data={name}", "data.sha256=null"]).data
    found = instantiate(data).corpus()
    assert found == (war_and_peace if name in ("war_and_peace", "text") else tmp_path / f"{name}.txt")


def test_enwik8_trains_a_modern_gpt_and_is_scored_on_its_test_split(tmp_path):
    """`data=enwik8 model=modern` on a synthetic enwik8, then `gpt.evaluate split=test`: the last 5% of the bytes,
    each predicted once, in bits per byte; sampling decodes whatever bytes the model draws."""
    corpus = write_synthetic("enwik8", tmp_path / "enwik8", 40_000, seed=1)
    run_dir = tmp_path / "run"
    trained = run_entry(
        "gpt.train", "data=enwik8", f"data.path={corpus}", "data.sha256=null", "model=modern", "model.n_layer=2",
        "model.n_embd=32", "model.n_head=2", *tiny_except("inspect.full_val"), f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "whole validation split" in trained.stdout and "bits/byte" in trained.stdout  # a byte is the unit here
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    hparams = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hparams["tokenizer"] == "bytes" and hparams["corpus"]["test_fraction"] == 0.05
    tested = run_entry("gpt.evaluate", f"ckpt={ckpt}", "split=test", "stride=8")
    assert tested.returncode == 0, tested.stderr
    assert f"test split of {corpus}, {2_000 - 1:,} bytes scored" in tested.stdout and "bits/byte" in tested.stdout
    bits = float(tested.stdout.split("= ")[-1].split()[0])
    assert 0 < bits < 8.5  # a few steps from uniform over 256 bytes (8 bits)
    sampled = run_entry("gpt.sample", f"ckpt={ckpt}", "max_new_tokens=200", "prompt='<page>'")
    assert sampled.returncode == 0 and sampled.stdout.startswith("<page>"), sampled.stderr


def test_a_test_split_is_refused_in_one_line_where_the_corpus_holds_none(tmp_path, short_text):
    run_dir = tmp_path / "run"
    trained = run_entry(
        "gpt.train", "data=text", f"data.path={short_text}", "model=bigram", *tiny_except(),
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    refused = run_entry("gpt.evaluate", f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", "split=test")
    assert_one_line_error(refused, "split=test", "data.test_fraction=0", "allowed: train, val")


def test_fractions_that_leave_no_validation_are_refused_before_training(tmp_path, short_text):
    result = run_entry(
        "gpt.train", "data=text", f"data.path={short_text}", "data.test_fraction=0.1", *tiny_except(),
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert_one_line_error(result, "data.train_fraction=0.9 and data.test_fraction=0.1", "less than 1")
    assert not (tmp_path / "run" / "checkpoints").exists()
