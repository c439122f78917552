import pytest

from gpt.errors import UnknownCharacterError
from gpt.tokenizer import CharTokenizer


def test_round_trip_on_the_corpus(war_and_peace):
    text = war_and_peace.read_text(encoding="utf-8")
    tokenizer = CharTokenizer.from_text(text)
    assert tokenizer.vocab_size == 111  # Project Gutenberg #2600 has 111 distinct characters
    sample = text[100_000:110_000]
    ids = tokenizer.encode(sample)
    assert len(ids) == len(sample) and max(ids) < 111
    assert tokenizer.decode(ids) == sample


def test_ids_follow_sorted_characters():
    tokenizer = CharTokenizer.from_text("banana!")
    assert tokenizer.chars == "!abn"
    assert tokenizer.encode("nab!") == [3, 1, 2, 0]


def test_unknown_characters_are_named():
    tokenizer = CharTokenizer.from_text("abc")
    with pytest.raises(UnknownCharacterError) as info:
        tokenizer.encode("abzcy€")
    message = str(info.value)
    assert "'y'" in message and "'z'" in message and "'€'" in message and "abc" in message
