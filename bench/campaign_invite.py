"""Benchmark: start a campaign over N contacts (default 1,000,000) on SQLite: the
`campaign.start` step (audience evaluation over every contact, in pages, and the pending
invitation rows), timed, with the process's peak memory.

    .venv/bin/python -m bench.campaign_invite [--contacts 1000000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

# Run as a script, this folder would come first on sys.path and bench/telegram.py would shadow
# the python-telegram-bot package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot import campaigns
from bot.campaigns import CampaignRequest
from bot.clock import FixedClock
from bot.config import load_settings
from bot.features import open_runtime
from storage.db import Database
from storage.migrate import upgrade_async
from storage.models import Contact, Invitation

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
GROUPS = ("missbruk", "ekonomiskt_bistand", "barn_och_unga", "vald_i_nara_relation")
UNITS = ("Norr", "Söder", "Öster", "Väster")
AUDIENCE = f"target_group in {list(GROUPS)!r} and age >= 16"
"""Everyone: the worst case, one invitation row per contact."""


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


async def fill(url: str, n: int, chunk: int = 20_000) -> None:
    """Bulk-insert n contacts (Core executemany, no addresses: only the audience is timed)."""
    rng = random.Random(1)
    db = Database(url)
    now = NOW
    try:
        for start in range(0, n, chunk):
            rows: list[dict[str, Any]] = [
                {
                    "external_ref": f"B{i:08d}",
                    "language": "sv",
                    "gender": rng.choice(("kvinna", "man")),
                    "birth_year": rng.randint(1940, 2008),
                    "target_group": rng.choice(GROUPS),
                    "unit": rng.choice(UNITS),
                    "contact_since": date(2024, 1, 1),
                    "attributes": {"kommun": "malmo"},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(start, min(n, start + chunk))
            ]
            async with db.transaction() as s:
                await s.execute(insert(Contact), rows)
    finally:
        await db.dispose()


async def run(n: int, url: str) -> None:
    await upgrade_async(url)
    t = time.perf_counter()
    await fill(url, n)
    print(f"created {n:,} contacts in {time.perf_counter() - t:.1f} s")
    settings = load_settings(
        None,
        {
            "BRUKARDIALOG__DATABASE__URL": url,
            "BRUKARDIALOG__PRIVACY__PSEUDONYM_KEY": "bench-pseudonym-key-0123456789abcdef",
            "BRUKARDIALOG__PRIVACY__ADDRESS_KEY": "ab" * 32,
        },
    )
    async with open_runtime(settings, clock=FixedClock(NOW), channels={}) as runtime:
        campaigns.register(runtime)
        campaign = await campaigns.create_campaign(
            runtime,
            CampaignRequest(
                survey_id="ifo-brukarundersokning", audience=AUDIENCE, ends="2026-04-01"
            ),
            actor="bench",
        )
        rss_before = peak_rss_mb()
        t = time.perf_counter()
        size = await campaigns.start_task(runtime, campaign.id)
        seconds = time.perf_counter() - t
        async with runtime.db.transaction(read_only=True) as s:
            rows = await s.scalar(select(func.count()).select_from(Invitation))
    print(f"campaign.start: {seconds:.1f} s for {n:,} contacts -> {size:,} invitations")
    print(f"rate: {n / seconds:,.0f} contacts/s, {int(rows or 0) / seconds:,.0f} invitations/s")
    print(f"peak RSS: {peak_rss_mb():.0f} MB (before the start step: {rss_before:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(args.contacts, url))


if __name__ == "__main__":
    main()
