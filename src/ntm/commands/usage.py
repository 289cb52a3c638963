"""What every `ntm` command shares: the one-line usage error, the parser that raises it, the console of tables.

A module of its own so that the commands (`cli`, `sweep`, `pretrained`, `ntm.plots.commands`) can
all import it without importing `cli`, which imports them: no import circle.
"""

from __future__ import annotations

import argparse

from rich.console import Console


class UsageError(ValueError):
    """A bad command line: reported in one line with exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def stdout_console() -> Console:
    """The console of results and tables: the terminal's width, or 80 columns when stdout is piped
    (COLUMNS overrides both); tables are built to fit that."""
    return Console()
