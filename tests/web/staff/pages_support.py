"""Shared set-up of the staff results/feedback/rules/surveys/audit tests: a runtime on the
results tests' small surveys plus the shipped ones, and campaigns built from rows."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.channels.webchat import WebChatChannel
from bot.clock import FixedClock
from bot.config import SHIPPED_SURVEYS, SurveySettings
from bot.results import feedback
from bot.runtime import Runtime, open_runtime
from tests.results_integration.conftest import SURVEYS, settings_for


@asynccontextmanager
async def staff_runtime(
    database_url: str, clock: FixedClock, **settings: Any
) -> AsyncIterator[Runtime]:
    """A runtime serving the results tests' surveys (nojdhet, bakgrund) and the shipped ones."""
    base = settings_for(database_url, **settings)
    config = dataclasses.replace(base, surveys=SurveySettings(paths=(SURVEYS, SHIPPED_SURVEYS)))
    async with open_runtime(config, clock=clock, channels={"webchat": WebChatChannel()}) as rt:
        feedback.register(rt)
        yield rt
