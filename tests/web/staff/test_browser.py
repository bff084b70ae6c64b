"""The staff web app in a real headless Chromium: a whole cycle (sign in, upload contacts, create a
campaign, watch the response rate change as answers arrive through the web chat, letters, close),
the security rules (no page without a session, no POST without the CSRF token, a viewer cannot
change anything, a disabled user's session ends, lockout after 5 failures), and axe-core on every
page of these (no serious or critical violation) at 390 px and 1280 px."""

from __future__ import annotations

import base64
import json
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from bot import contact_links
from bot.config import ScheduleSettings, ServerSettings, Settings
from bot.web.staff import accounts
from tests.results_integration.conftest import settings_for
from tests.web.staff.browser import (
    LiveService,
    assert_accessible,
    browser,
    copy_sqlite,
    sign_in,
    wait_for,
)
from tests.web.staff.helpers import CONTACTS_CSV, PASSWORD


def live_settings(database_url: str) -> Settings:
    """No quiet hours, a quick due-task poll, and http (so the session cookie is sent)."""
    settings = settings_for(database_url, quiet="")
    return replace(
        settings,
        server=ServerSettings(public_url="http://127.0.0.1:8080"),
        schedule=ScheduleSettings(timezone="Europe/Stockholm", quiet_hours="", poll_interval=0.2),
    )


@pytest.fixture
def live(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveService]:
    with LiveService(live_settings(copy_sqlite(sqlite_template, tmp_path))) as service:
        yield service


def add_user(live: LiveService, name: str, role: str) -> None:
    live.call(lambda rt: accounts.add_user(rt, name, role, PASSWORD, actor="test"))


def text_of(driver: object, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)  # type: ignore[attr-defined]


def answer(live: LiveService, ref: str, replies: list[tuple[str, str | None]]) -> None:
    """Answer as a person, through the web chat's own endpoint (their personal link)."""
    link = live.call(lambda rt: contact_links.contact_link(rt, ref))
    assert link is not None
    token = link.webchat_link.rsplit("/", 1)[1]
    for n, (text, payload) in enumerate(replies):
        body: dict[str, str] = {"id": f"{ref}-{n}", "text": text}
        if payload:
            body["payload"] = payload
        request = urllib.request.Request(
            f"{live.url}/chat/{token}/messages",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202


@pytest.mark.parametrize("width", [1280, 390])
def test_a_whole_cycle_in_the_browser(live: LiveService, tmp_path: Path, width: int) -> None:
    add_user(live, "anna", "analyst")
    with browser(width) as driver:
        driver.get(live.url + "/staff/")
        assert "/staff/login" in driver.current_url
        assert_accessible(driver)
        sign_in(driver, live, "anna", PASSWORD)
        assert_accessible(driver)

        # Upload a contacts file; the job page shows the progress, then the outcome.
        csv_file = tmp_path / "kontakter.csv"
        csv_file.write_text(CONTACTS_CSV, encoding="utf-8")
        driver.get(live.url + "/staff/contacts/upload")
        assert_accessible(driver)
        driver.find_element(By.ID, "file").send_keys(str(csv_file))
        driver.find_element(By.CSS_SELECTOR, "form[data-upload] button[type=submit]").click()
        wait_for(driver, lambda d: "Klart: 10 nya" in d.page_source)
        assert_accessible(driver)
        driver.get(live.url + "/staff/contacts?unit=Norr")
        assert "5 kontakter matchar" in driver.page_source
        assert_accessible(driver)
        driver.find_element(By.LINK_TEXT, "P001").click()
        assert "/chat/" in driver.page_source and "+4670123" not in driver.page_source
        assert_accessible(driver)

        # Create a campaign: the audience is counted as it is typed.
        driver.get(live.url + "/staff/campaigns/new")
        Select(driver.find_element(By.ID, "survey")).select_by_value("nojdhet")
        driver.find_element(By.ID, "audience").send_keys("unit = 'Norr'")
        wait_for(driver, lambda d: "tecken 6" in text_of(d, "#audience-count"))
        assert driver.find_element(By.ID, "audience-pointer").text.endswith("^")
        assert_accessible(driver)
        field = driver.find_element(By.ID, "audience")
        field.clear()
        field.send_keys("unit == 'Norr'")
        wait_for(driver, lambda d: "5 personer matchar" in text_of(d, "#audience-count"))
        for channel in ("sms", "telegram"):
            box = driver.find_element(By.CSS_SELECTOR, f"input[name=channels][value={channel}]")
            if box.is_selected():
                box.click()
        driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
        wait_for(driver, lambda d: "Kampanjen är skapad" in d.page_source)
        campaign_url = driver.current_url
        assert_accessible(driver)

        # The overview's response rate changes as answers arrive, without a reload.
        driver.get(live.url + "/staff/")
        wait_for(driver, lambda d: text_of(d, '[data-item="1"] [data-field="invited"]') == "5")
        wait_for(driver, lambda d: text_of(d, '[data-item="1"] [data-field="rate"]') == "0 %")
        answer(live, "P001", [("Ja", "choice:ja"), ("Bra", "choice:bra"), ("Inget mer", None)])
        wait_for(driver, lambda d: text_of(d, '[data-item="1"] [data-field="rate"]') == "20 %")
        assert text_of(driver, '[data-item="1"] [data-field="completed"]') == "1"
        assert_accessible(driver)

        # Printable letters: one A4 page per person, with a QR code.
        driver.get(live.url + "/staff/contacts/links")
        assert_accessible(driver)
        driver.find_element(By.ID, "audience").send_keys("unit == 'Norr'")
        driver.find_element(By.CSS_SELECTOR, "button[formaction]").click()
        wait_for(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.letter")) == 5)
        assert len(driver.find_elements(By.CSS_SELECTOR, "article.letter svg[role=img]")) == 5
        assert_accessible(driver)
        pdf = base64.b64decode(
            driver.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True})["data"]
        )
        assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 5, "one A4 page per letter"

        # Close after the confirmation step.
        driver.get(campaign_url)
        assert_accessible(driver)
        driver.find_element(By.LINK_TEXT, "Stäng").click()
        assert "Det går inte att ångra" in driver.page_source
        assert_accessible(driver)
        driver.find_element(By.CSS_SELECTOR, "button.danger").click()
        wait_for(driver, lambda d: "Kampanjen är stängd" in d.page_source)
        driver.get(live.url + "/staff/campaigns")
        assert_accessible(driver)
        driver.get(live.url + "/staff/campaigns/999")
        assert "Sidan finns inte" in driver.page_source
        assert_accessible(driver)


def test_the_security_rules_in_the_browser(live: LiveService) -> None:
    add_user(live, "anna", "analyst")
    add_user(live, "vera", "viewer")
    with browser(390) as driver:
        # No page without a session.
        for path in ("/staff/", "/staff/campaigns", "/staff/contacts"):
            driver.get(live.url + path)
            assert "/staff/login" in driver.current_url
        # Lockout after 5 failures, with the same message as a wrong name.
        for _ in range(5):
            driver.get(live.url + "/staff/login")
            driver.find_element(By.ID, "username").send_keys("anna")
            driver.find_element(By.ID, "password").send_keys("fel lösenord!")
            driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
            wait_for(driver, lambda d: "Inloggningen misslyckades" in d.page_source)
        assert_accessible(driver)
        driver.get(live.url + "/staff/login")
        driver.find_element(By.ID, "username").send_keys("anna")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
        wait_for(driver, lambda d: "Inloggningen misslyckades" in d.page_source)

        # A viewer reads but cannot change anything.
        sign_in(driver, live, "vera", PASSWORD)
        driver.get(live.url + "/staff/campaigns")
        assert not driver.find_elements(By.PARTIAL_LINK_TEXT, "Ny kampanj")
        driver.get(live.url + "/staff/campaigns/new")
        assert "inte behörighet" in driver.page_source
        assert_accessible(driver)
        token = driver.find_element(By.CSS_SELECTOR, "input[name=csrf_token]").get_attribute(
            "value"
        )
        status = driver.execute_async_script(
            """
            const [url, token, done] = arguments;
            fetch(url, {method: 'POST', headers: {'X-CSRF-Token': token},
                        body: new URLSearchParams({survey: 'nojdhet', audience: 'age > 1',
                                                   ends: '30d', channels: 'webchat'})})
              .then(r => done(r.status));
            """,
            live.url + "/staff/campaigns/new",
            token,
        )
        assert status == 403
        # No POST without the CSRF token: 403, and the session is still there.
        status = driver.execute_async_script(
            """
            const [url, done] = arguments;
            fetch(url, {method: 'POST'}).then(r => done(r.status));
            """,
            live.url + "/staff/logout",
        )
        assert status == 403
        driver.get(live.url + "/staff/")
        assert "/staff/login" not in driver.current_url

        # Disabling the user ends their session at once.
        live.call(lambda rt: accounts.disable_user(rt, "vera", actor="test"))
        driver.get(live.url + "/staff/campaigns")
        assert "/staff/login" in driver.current_url
        assert "sessionen tog slut" in driver.page_source

        # English.
        driver.find_element(By.CSS_SELECTOR, "a.lang").click()
        assert "Sign in" in driver.page_source
        assert_accessible(driver)
