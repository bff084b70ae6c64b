"""Text-only rendering of engine messages, as sent over SMS.

Choices become numbered lines ("1. Ja"). A scale goes on one compact line of its values,
"1 😞  2 🙁  3 😐  4 🙂  5 😀" or "1  2  3  4  5", because the reply is the value itself (a
0-10 scale starts at 0, so position numbers would mislead)."""

from __future__ import annotations

from collections.abc import Sequence

from flows.answers import SCALE_PREFIX, parse_int
from flows.conversation import Button, OutMessage

__all__ = ["render_text"]


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


def render_text(message: OutMessage) -> str:
    """The message as plain text: its text, then its choices as numbered lines or a scale line."""
    lines = [message.text] if message.text else []
    values = _scale_values(message.buttons)
    if values is not None and len(values) == len(message.numbered):
        cells = (
            label if label == str(value) else f"{value} {label}"
            for value, label in zip(values, message.numbered, strict=True)
        )
        lines.append("  ".join(cells))
    else:
        lines.extend(f"{n}. {label}" for n, label in enumerate(message.numbered, start=1))
    return "\n".join(lines)
