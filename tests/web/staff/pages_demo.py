"""Demo data for looking at pages 4-8 (screenshots, browser tests): two closed campaigns of the
same survey with enough answers to show charts, a breakdown with a hidden group, open answers,
a feedback text, an API follow-up rule and audit entries."""

from __future__ import annotations

from datetime import timedelta

from bot.results import feedback
from bot.runtime import Runtime
from bot.web.staff import rules_view
from tests.results_integration.conftest import make_campaign, people


async def seed(runtime: Runtime) -> dict[str, int]:
    """Campaign ids by name: "previous" and "current" (closed an hour ago, its feedback goes
    out in two weeks, so a live service with its poller running leaves it alone)."""
    now = runtime.clock.now()
    previous = await make_campaign(
        runtime,
        people(9, answers={"hjalp": "nej", "bemotande": "bra"})
        + people(6, answers={"hjalp": "ja", "bemotande": "daligt"}),
        name="Hösten 2025",
        closed_at=now - timedelta(days=120),
        created_at=now - timedelta(days=140),
    )
    current = await make_campaign(
        runtime,
        people(14, gender="kvinna", answers={"hjalp": "ja", "bemotande": "bra", "ovrigt": "Bra!"})
        + people(6, gender="man", answers={"hjalp": "ja", "bemotande": "daligt"})
        + people(3, gender="man", answers={"hjalp": "nej", "bemotande": "bra"})
        + people(4, answers={"hjalp": "nej", "bemotande": "bra"})
        + people(
            1,
            answers={
                "hjalp": "nej",
                "bemotande": "daligt",
                "ovrigt": "Ring mig på 070-123 45 67 om tiderna",
            },
        )
        + people(4, status="closed"),
        name="Våren 2026",
        closed_at=now - timedelta(hours=1),
        created_at=now - timedelta(days=14),
        feedback_delay=14 * 86400,
    )
    await feedback.set_feedback(
        runtime,
        current,
        text={
            "sv": "Vi ser över väntetiderna och svarar snabbare i telefon.",
            "en": "We will look at waiting times and answer the phone faster.",
        },
        without_text=["ar"],
        actor="staff:anna",
    )
    await rules_view.save_rule(
        runtime,
        {
            "name": "efter-besok",
            "event": "besok_avslutat",
            "survey": "nojdhet",
            "delay": "3d",
            "window": "10:00-18:00",
            "channels": ["sms", "webchat"],
        },
        name=None,
        actor="staff:admin",
    )
    return {"previous": previous, "current": current}
