"""User-facing errors: a wrong config value, a missing corpus, a prompt the vocabulary can't encode.

Entry points print these as one line (`error: ...`) and exit with status 2, instead of a traceback.
Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Something the user can fix; the message says what was wrong and what is allowed."""


class UnknownCharacterError(UserError, ValueError):
    """Text contains characters outside a tokenizer's vocabulary."""


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite: the run stops, keeping its last good checkpoint."""
