"""The JSON log format: one object a line (`serve --log-format json`, or `logging.format`).

Each line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, an `event` and its `data`
when the line is an event (bot.ops.events), and `error` with the traceback when there is one.
The redaction filter (bot.logging_setup) stays on the handler, so it has rewritten the message
and traceback before this formatter runs; an event's data values are redacted here as well."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from bot.logging_setup import install_redaction, redact
from bot.ops.events import DATA, EVENT

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line: time, level, logger, message and any event with its data."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        name = getattr(record, EVENT, None)
        if isinstance(name, str):
            out["event"] = name
            data = getattr(record, DATA, None)
            if isinstance(data, dict):
                out["data"] = {
                    str(k): redact(v) if isinstance(v, str) else v for k, v in data.items()
                }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            out["error"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


def use_format(fmt: str, logger: logging.Logger | None = None) -> None:
    """Put the format on every handler of `logger` (default: root), redaction kept on each."""
    target = logger or logging.getLogger()
    if fmt == "json":
        for handler in target.handlers:
            handler.setFormatter(JsonFormatter())
    install_redaction(target)
