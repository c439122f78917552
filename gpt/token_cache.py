"""A corpus tokenized once, then memory-mapped by every run, sweep job and DDP rank (as nanoGPT's train.bin).

    tokens, tokenizer = encoded_corpus(path)             # a read-only numpy memmap of token ids, and the tokenizer
    tokens, tokenizer = encoded_corpus(path, "bytes")    # the file itself as its uint8 tokens: nothing to encode

The first run on a text encodes it, streamed in chunks of CHUNK_BYTES (memory stays bounded whatever its size):
one pass finds its characters and its sha256, a second writes their ids, as uint8 where the vocabulary has up to
256 characters, uint16 up to 65,536 (uint32 beyond). The ids are exactly CharTokenizer's: the characters sorted by
code point. Every later start maps the file and reads only the windows it draws; the operating system keeps one
copy of it in its page cache for all the processes that map it.

The cache, under cache_dir()/tokens/:

    <text sha256>-chars.bin    the ids, written under a temporary name and renamed: a reader sees all of it or none
    <text sha256>-chars.json   the vocabulary, the count and dtype of the ids, and a fingerprint of the .bin (its size
                               and the sha256 of its first and last MiB): a file that does not match is rebuilt,
                               never trusted
    texts.json                 (path, size, mtime) -> sha256 of the texts seen, so that a start hashes nothing it
                               hashed before; a changed text has another size or mtime, hence a new sha256 and key
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np

from gpt.errors import UserError
from gpt.tokenizer import ByteTokenizer, CharTokenizer

CHUNK_BYTES = 1 << 24  # 16 MiB of text at a time: ~100 MB of working memory while encoding
FINGERPRINT_BYTES = 1 << 20
UNICODE = 0x110000  # code points


def cache_dir() -> Path:
    """Where the harness keeps what it fetched and derived: $GPT_CACHE_DIR, else $XDG_CACHE_HOME/gpt-harness. A
    downloaded corpus goes to <cache>/<name>.txt (gpt.corpus), its tokens to <cache>/tokens/."""
    if os.environ.get("GPT_CACHE_DIR"):
        return Path(os.environ["GPT_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "gpt-harness"


def cache_root() -> Path:
    return cache_dir() / "tokens"


def _write_atomically(path: Path, write) -> None:
    """write(file) into a temporary file beside path, then rename it over path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would keep other users of a shared cache out
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class NotTextError(UserError):
    """A corpus read as characters that is not UTF-8 text (a training run may read it as bytes instead)."""


# byte-order marks of text in UTF-32 and UTF-16, the longer first (UTF-32-LE's begins with UTF-16-LE's)
WIDE_BOMS = [(codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
             (codecs.BOM_UTF16_BE, "UTF-16")]  # fmt: skip


def _chunks(path: Path):
    """The text at path decoded from UTF-8 chunk by chunk, with the raw bytes, refused in one line where it is
    empty, binary (NUL bytes) or not UTF-8."""
    decoder, offset, seen_text = codecs.getincrementaldecoder("utf-8")(), 0, False
    try:
        file = path.open("rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the corpus ({exc.strerror}); check its permissions") from None
    with file:
        while True:
            raw = file.read(CHUNK_BYTES)
            if b"\x00" in raw:
                wide = next((name for bom, name in WIDE_BOMS if raw.startswith(bom)), None) if not offset else None
                if wide:  # text all the same, in an encoding whose characters hold zero bytes (Windows saves it)
                    raise NotTextError(
                        f"{path}: {wide} text (it begins with {wide}'s byte-order mark), not UTF-8; convert it: iconv "
                        f"-f {wide} -t UTF-8 {shlex.quote(str(path))} > {shlex.quote(path.stem + '.utf8.txt')}"
                    )
                raise NotTextError(f"{path}: contains NUL bytes, so it is binary, not text; give a UTF-8 text file")
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                raise NotTextError(
                    f"{path}: not valid UTF-8 (byte {offset + exc.start}: {exc.reason}); give a UTF-8 text file"
                ) from None
            seen_text = seen_text or bool(raw.strip())
            offset += len(raw)
            yield raw, text
            if not raw:
                break
    if not seen_text:
        raise UserError(f"{path}: the corpus is empty; give a UTF-8 text file")


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def text_sha256(path: Path) -> str:
    """The sha256 of the text at path, computed once per (path, size, mtime)."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    index_file = cache_root() / "texts.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    if not isinstance(index, dict):  # damaged: rebuilt
        index = {}
    if key not in index:
        digest = hashlib.sha256()
        with path.open("rb") as file:
            while block := file.read(CHUNK_BYTES):
                digest.update(block)
        index = {k: v for k, v in index.items() if Path(k.split("|")[0]).exists()}  # forget texts since deleted
        index[key] = digest.hexdigest()
        with contextlib.suppress(OSError):  # a read-only cache only costs the hash again next time
            _write_atomically(index_file, lambda f: f.write(json.dumps(index, indent=0).encode()))
    return index[key]


def _fingerprint(path: Path) -> dict:
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(FINGERPRINT_BYTES)
        file.seek(max(0, size - FINGERPRINT_BYTES))
        tail = file.read()
    return {"size": size, "head": hashlib.sha256(head).hexdigest(), "tail": hashlib.sha256(tail).hexdigest()}


def _encode(path: Path, bin_path: Path) -> dict:
    """Two streamed passes over the text: its characters, then their ids into bin_path. Returns the metadata."""
    present = np.zeros(UNICODE, dtype=bool)
    for _, text in _progress(path, "characters"):
        present[_code_points(text)] = True
    code_points = np.flatnonzero(present)
    dtype = np.uint8 if len(code_points) <= 1 << 8 else np.uint16 if len(code_points) <= 1 << 16 else np.uint32
    ids = np.zeros(UNICODE, dtype=dtype)
    ids[code_points] = np.arange(len(code_points), dtype=dtype)
    count = 0

    def write(file) -> None:
        nonlocal count
        for _, text in _progress(path, "ids"):
            encoded = ids[_code_points(text)]
            file.write(encoded.tobytes())
            count += len(encoded)

    _write_atomically(bin_path, write)
    return {"vocab": "".join(map(chr, code_points)), "count": count, "dtype": np.dtype(dtype).name,
            "fingerprint": _fingerprint(bin_path)}  # fmt: skip


def _progress(path: Path, what: str):
    """The text's chunks, with a progress line on stderr for texts of more than a few chunks."""
    size = max(path.stat().st_size, 1)
    show = size > 4 * CHUNK_BYTES
    done = 0
    for raw, text in _chunks(path):
        done += len(raw)
        if show:
            print(f"\rencoding {path.name} once ({what}): {done / size:.0%}", end="", file=sys.stderr, flush=True)
        yield raw, text
    if show:
        print(file=sys.stderr)


def encoded_corpus(path: Path, tokenizer: str = "chars") -> tuple[np.ndarray, CharTokenizer | ByteTokenizer]:
    """The token ids of the text at path as a read-only memmap, and its tokenizer (gpt.tokenizer.TOKENIZERS):
    for `chars` encoded on first use (module docstring); for `bytes` the file itself, whatever it holds."""
    if tokenizer == "bytes":
        if path.stat().st_size == 0:
            raise UserError(f"{path}: the corpus is empty; give a non-empty file")
        try:
            return np.memmap(path, dtype=np.uint8, mode="r"), ByteTokenizer()
        except OSError as exc:
            raise UserError(f"{path}: cannot read the corpus ({exc.strerror}); check its permissions") from None
    key = f"{text_sha256(path)}-chars"
    bin_path, meta_path = cache_root() / f"{key}.bin", cache_root() / f"{key}.json"
    try:
        meta = json.loads(meta_path.read_text())
        trusted = bin_path.is_file() and _fingerprint(bin_path) == meta["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):  # also JSON that is not the object written
        trusted = False
    if not trusted:  # absent, or damaged: (re)built, never trusted
        try:
            meta = _encode(path, bin_path)
            _write_atomically(meta_path, lambda f: f.write(json.dumps(meta).encode()))
        except OSError as exc:
            if exc.filename is None or not Path(exc.filename).absolute().is_relative_to(cache_dir().absolute()):
                raise
            raise UserError(
                f"cannot write the token cache at {exc.filename} ({exc.strerror}): set GPT_CACHE_DIR to a folder "
                "that can be written"
            ) from None
    tokens = np.memmap(bin_path, dtype=meta["dtype"], mode="r", shape=(meta["count"],))
    return tokens, CharTokenizer(meta["vocab"])
