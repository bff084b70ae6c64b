"""The `brukardialog` command: `command` builds it; each capability's commands in a module here."""

from __future__ import annotations

from bot.cli.command import main

__all__ = ["main"]
