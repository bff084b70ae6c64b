"""Benchmark: import a generated contact list of N rows (default 100,000) into a fresh SQLite
database (or --database-url), the way `brukardialog contacts import` does, and print the rate.

    .venv/bin/python -m bench.import_contacts [--rows 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

# Run as a script, this folder would come first on sys.path and bench/telegram.py would shadow
# the python-telegram-bot package: put the repository there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.contacts.importer import import_validated, validate_csv
from bot.privacy import Pseudonymizer
from storage.db import Database
from storage.migrate import upgrade_async

TODAY = date(2026, 3, 2)
GROUPS = ("missbruk", "ekonomiskt bistånd", "barn och unga", "våld i nära relation")
UNITS = ("Norr", "Söder", "Öster", "Väster")


def generate(rows: int, seed: int = 1) -> str:
    """A CSV like a case system's export: every column, an attribute, Swedish mobile numbers."""
    rng = random.Random(seed)
    out = io.StringIO()
    out.write("external_ref,phone,language,gender,birth_year,target_group,unit,contact_since,")
    out.write("attr_kommun\n")
    for i in range(rows):
        out.write(
            f"R{i:07d},070-{i // 10000:03d} {i % 10000:04d},"
            f"{rng.choice(('sv', 'en', 'ar'))},{rng.choice(('kvinna', 'man', 'annat'))},"
            f"{rng.randint(1940, 2010)},{rng.choice(GROUPS)},{rng.choice(UNITS)},"
            f"20{rng.randint(10, 25)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)},"
            f"{rng.choice(('malmo', 'lund'))}\n"
        )
    return out.getvalue()


async def run(rows: int, url: str) -> None:
    text = generate(rows)
    await upgrade_async(url)
    db = Database(url)
    try:
        started = time.perf_counter()
        validated = validate_csv(io.StringIO(text, newline=""), today=TODAY)
        parsed = time.perf_counter()
        report = await import_validated(
            db,
            Pseudonymizer(bytes(range(32))),
            validated,
            skip_invalid=False,
            actor="bench",
            source="bench.csv",
        )
        done = time.perf_counter()
    finally:
        await db.dispose()
    total = done - started
    print(f"rows: {rows} (inserted {report.inserted}, invalid {len(validated.errors)})")
    print(f"parse+validate: {parsed - started:.2f} s, write: {done - parsed:.2f} s")
    print(f"total: {total:.2f} s, {rows / total:,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        asyncio.run(run(args.rows, url))


if __name__ == "__main__":
    main()
