"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class RlrecError(Exception):
    """Base class of the errors rlrec raises about its input."""


class DataError(RlrecError, ValueError):
    """Bad input data: the message names the file, the line or field, and what was expected."""


class ConfigError(RlrecError, ValueError):
    """A configuration value that cannot work: the message names the field and what was expected."""


def shown(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: what an error message quotes of a bad value."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class UsageError(Exception):
    """A mistake in what the user asked for: printed as one clear line, without a traceback."""
