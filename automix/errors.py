"""The exceptions every layer raises for bad input, in a module any layer may import (no dependencies)."""


class ConfigError(ValueError):
    """A user-facing configuration problem; the message is one line (the CLI prints it, exit code 2)."""
