"""Text-only rendering of engine messages: the one SMS renderer.

The SMS channel sends what `render_text` gives, the loader counts its segments, and `flows try`
prints it, so what a survey author checks is what a person gets. Choices become numbered lines
("1. Ja"). A scale is answered with its value, never a position, so it shows its values:
"1 😞  2 🙁  3 😐  4 🙂  5 😀" for smileys, or its range "0-10" (a 0-10 scale starts at 0, so
position numbers would mislead). The range uses an ASCII hyphen: an en dash is not in GSM-7 and
would make a Swedish SMS cost twice as many segments."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from flows.answers import SCALE_PREFIX, parse_int
from flows.conversation import Button

__all__ = ["Renderable", "render_text"]


class Renderable(Protocol):
    """An engine message, or an outbox row made from one."""

    @property
    def text(self) -> str:
        """The message text."""
        ...

    @property
    def buttons(self) -> Sequence[Button]:
        """Buttons shown by chat channels."""
        ...

    @property
    def numbered(self) -> Sequence[str]:
        """Choice labels written as numbered lines on SMS."""
        ...


def _scale_values(buttons: Sequence[Button]) -> list[int] | None:
    values: list[int] = []
    for button in buttons:
        if not button.payload.startswith(SCALE_PREFIX):
            return None
        value = parse_int(button.payload.removeprefix(SCALE_PREFIX))
        if value is None:
            return None
        values.append(value)
    return values or None


def _scale_line(values: Sequence[int], labels: Sequence[str]) -> str:
    if all(label == str(value) for value, label in zip(values, labels, strict=True)):
        return f"{min(values)}-{max(values)}"
    return "  ".join(f"{value} {label}" for value, label in zip(values, labels, strict=True))


def render_text(message: Renderable) -> str:
    """The message as plain text: its text, then its choices as numbered lines or its scale."""
    lines = [message.text] if message.text else []
    values = _scale_values(message.buttons)
    if values is not None and len(values) == len(message.numbered):
        lines.append(_scale_line(values, message.numbered))
    else:
        lines.extend(f"{n}. {label}" for n, label in enumerate(message.numbered, start=1))
    return "\n".join(lines)
