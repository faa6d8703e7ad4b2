"""The trainer's user-facing exceptions, in a module without dependencies (the CLI catches them)."""


class CorpusError(ValueError):
    """A corpus cannot be used as configured; the one-line message says what is wrong and how to fix it."""
