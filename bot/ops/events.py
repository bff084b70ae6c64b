"""One readable INFO line per thing that happened, for the people running the service.

Campaigns created, started, paused, resumed and closed; each invite round and reminder with its
counts; feedback sent; results exported; follow-up rules changed; a channel going down and
coming back. Each line names ids (campaigns, surveys, rules) and counts, never a person: no
phone number, chat id, name or message text. In the JSON log format (bot.ops.logformat) each
line also carries `event` and its `data` as fields."""

from __future__ import annotations

import logging
from collections.abc import Mapping

log = logging.getLogger("brukardialog.events")

EVENT = "event"
DATA = "data"
"""The LogRecord attributes a line's event name and values are kept in."""

_SCALARS = (str, int, float, bool, type(None))


def note(event: str, message: str, **data: object) -> None:
    """Log `message` (a str.format template over `data`) at INFO as `event`."""
    values = {k: v if isinstance(v, _SCALARS) else str(v) for k, v in data.items()}
    log.info(message.format(**values), extra={EVENT: event, DATA: values})


def by(actor: str) -> str:
    """Who acted, as a kind and never a name: "cli:alice" is "cli", "api:token-3" is "api"."""
    return actor.partition(":")[0] or "unknown"


def counts(values: Mapping[str, int]) -> str:
    """`{"invited": 3, "waiting": 1}` as "3 invited, 1 waiting" (zeros left out)."""
    return ", ".join(f"{n} {what}" for what, n in values.items() if n) or "nothing"
