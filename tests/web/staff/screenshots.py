"""`make screenshots`: a PNG of every staff page at 390 px and 1280 px in docs/screenshots/.

Runs the service on a throw-away SQLite database with example contacts, a campaign with some
answers, and one admin; signs in and photographs each page in PAGES (add yours there)."""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from bot.campaigns import CampaignRequest, create_campaign, invite_task, start_task
from bot.contacts.importer import import_validated, validate_csv
from bot.runtime import Runtime
from bot.web.staff import accounts
from storage.migrate import upgrade
from tests.web.staff import pages_demo
from tests.web.staff.browser import WIDTHS, LiveService, browser, sign_in
from tests.web.staff.helpers import CONTACTS_CSV, PASSWORD
from tests.web.staff.test_browser import answer, live_settings

PAGES: tuple[tuple[str, str], ...] = (
    ("login", "/staff/login"),
    ("overview", "/staff/"),
    ("campaigns", "/staff/campaigns"),
    ("campaign-new", "/staff/campaigns/new"),
    ("campaign", "/staff/campaigns/1"),
    ("campaign-close", "/staff/campaigns/1/close"),
    ("contacts", "/staff/contacts"),
    ("contact", "/staff/contacts/1"),
    ("contacts-upload", "/staff/contacts/upload"),
    ("contacts-links", "/staff/contacts/links"),
    ("letters", "/staff/contacts/letters?audience=unit+%3D%3D+%27Norr%27"),
    ("results", "/staff/results"),
    ("feedback", "/staff/feedback"),
    ("followups", "/staff/followups"),
    ("surveys", "/staff/surveys"),
    ("audit", "/staff/audit"),
    ("users", "/staff/users"),
    ("contact-erase", "/staff/contacts/1/erase"),
    ("not-found", "/staff/campaigns/999"),
    ("results-campaign", "/staff/campaigns/3/results?breakdown=gender"),
    ("results-open", "/staff/campaigns/3/results?open=1"),
    ("feedback-campaign", "/staff/campaigns/3/feedback"),
    ("followup-new", "/staff/followups/new"),
    ("survey", "/staff/surveys/nojdhet"),
)
"""(file name, path) of every page to photograph."""


async def _example(runtime: Runtime) -> None:
    await accounts.add_user(runtime, "anna", "admin", PASSWORD, actor="screenshots")
    today = runtime.clock.now().date()
    rows = validate_csv(CONTACTS_CSV.splitlines(keepends=True), today=today)
    await import_validated(
        runtime.db,
        runtime.service.pseudonymizer,
        rows,
        skip_invalid=False,
        actor="screenshots",
        source="example.csv",
    )
    campaign = await create_campaign(
        runtime,
        CampaignRequest(
            "nojdhet",
            "unit == 'Norr'",
            (today + timedelta(days=30)).isoformat(),
            name="Brukarundersökning våren",
            channels=["webchat"],
            reminders=["3d"],
        ),
        actor="staff:anna",
    )
    await start_task(runtime, campaign.id)
    await invite_task(runtime, campaign.id)


def shoot(driver: WebDriver, url: str, out: Path, width: int) -> None:
    """The whole page at `width` CSS pixels."""
    driver.get(url)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": min(height, 6000),
            "deviceScaleFactor": 1,
            "mobile": width < 500,
        },
    )
    driver.find_element(By.TAG_NAME, "body").screenshot(str(out))
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )


def main(folder: str) -> int:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/screens.db"
        upgrade(url)
        settings = live_settings(url)
        with LiveService(settings) as live:
            live.call(_example)
            live.call(pages_demo.seed)  # campaigns 2 and 3 with results, feedback, a rule
            for ref in ("P001", "P003"):
                answer(live, ref, [("Ja", "choice:ja"), ("Bra", "choice:bra"), ("Inget", None)])
            for width in WIDTHS:
                with browser(width) as driver:
                    shoot(driver, live.url + "/staff/login", out / f"login-{width}.png", width)
                    sign_in(driver, live, "anna", PASSWORD)
                    for name, path in PAGES[1:]:
                        shoot(driver, live.url + path, out / f"{name}-{width}.png", width)
    print(f"wrote {len(PAGES) * len(WIDTHS)} screenshots to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
