"""Pages 4-8 in a real headless Chromium: writing feedback updates its preview and SMS segment
count as one types, the results page shows its charts and tables, a try-out answers, and
axe-core finds no serious or critical violation on any of these pages at 390 px and 1280 px."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from bot.web.staff import accounts
from tests.web.staff import pages_demo
from tests.web.staff.browser import (
    WIDTHS,
    LiveService,
    assert_accessible,
    browser,
    copy_sqlite,
    sign_in,
    wait_for,
)
from tests.web.staff.helpers import PASSWORD
from tests.web.staff.test_browser import live_settings


@pytest.fixture
def demo(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[LiveService, dict[str, int]]]:
    with LiveService(live_settings(copy_sqlite(sqlite_template, tmp_path))) as service:
        service.call(lambda rt: accounts.add_user(rt, "anna", "analyst", PASSWORD, actor="test"))
        ids = service.call(pages_demo.seed)
        yield service, ids


def _segments(driver: object, code: str) -> str:
    css = f"#segments-{code} [data-role='segments']"
    return str(driver.find_element(By.CSS_SELECTOR, css).text)  # type: ignore[attr-defined]


def test_feedback_preview_and_segments_follow_the_text(
    demo: tuple[LiveService, dict[str, int]],
) -> None:
    live, ids = demo
    with browser(390) as driver:
        sign_in(driver, live, "anna", PASSWORD)
        driver.get(f"{live.url}/staff/campaigns/{ids['current']}/feedback")
        preview = driver.find_element(By.ID, "preview-sv")
        assert "Vi ser över väntetiderna" in preview.text
        before = _segments(driver, "sv")
        box = driver.find_element(By.ID, "text-sv")
        box.clear()
        box.send_keys("Vi inför kvällsöppet på torsdagar.")
        wait_for(driver, lambda d: "Vi inför kvällsöppet på torsdagar." in preview.text)
        assert "Det här gör vi: Vi inför kvällsöppet på torsdagar." in preview.text
        # An en dash is not in the SMS alphabet: the message turns UCS-2 and costs more.
        box.send_keys(" Öppet 17–20 " + "och vi ringer upp alla som väntar. " * 6)
        wait_for(driver, lambda d: "UCS-2" in _segments(d, "sv"))
        assert _segments(driver, "sv") != before
        verdict = driver.find_element(By.CSS_SELECTOR, "#segments-sv [data-role='verdict']")
        wait_for(driver, lambda d: "För långt" in verdict.text)
        # Nothing was stored by typing: the saved text is still there after a reload.
        driver.refresh()
        assert "Vi ser över väntetiderna" in driver.find_element(By.ID, "preview-sv").text


def test_results_page_shows_charts_and_tables(demo: tuple[LiveService, dict[str, int]]) -> None:
    live, ids = demo
    with browser(1280) as driver:
        sign_in(driver, live, "anna", PASSWORD)
        driver.get(f"{live.url}/staff/campaigns/{ids['current']}/results?breakdown=gender")
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.bar-chart[role='img']")
        assert len(charts) >= 4
        title = charts[0].find_element(By.TAG_NAME, "title")
        assert "Har du fått hjälp?" in str(title.get_attribute("textContent"))
        rows = driver.find_elements(By.CSS_SELECTOR, "table.figures tbody tr")
        assert any("Ja" in r.text and "%" in r.text for r in rows)
        assert "Jämfört med Hösten 2025" in driver.find_element(By.TAG_NAME, "main").text
        driver.find_element(By.PARTIAL_LINK_TEXT, "Visa fritextsvar").click()
        wait_for(driver, lambda d: "Ring mig på" in d.find_element(By.TAG_NAME, "main").text)
        assert "070-123 45 67" not in driver.find_element(By.TAG_NAME, "main").text


def test_try_out_answers_in_the_browser(demo: tuple[LiveService, dict[str, int]]) -> None:
    live, _ = demo
    with browser(390) as driver:
        sign_in(driver, live, "anna", PASSWORD)
        driver.get(f"{live.url}/staff/surveys/nojdhet")
        driver.find_element(By.XPATH, "//button[contains(., 'English')]").click()
        wait_for(driver, lambda d: "Have you been helped?" in d.page_source)
        driver.find_element(By.XPATH, "//button[@name='payload' and contains(., 'Yes')]").click()
        wait_for(driver, lambda d: "How were you treated?" in d.page_source)


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_4_to_8_have_no_serious_accessibility_violations(
    demo: tuple[LiveService, dict[str, int]], width: int
) -> None:
    live, ids = demo
    current = ids["current"]
    paths = [
        "/staff/results",
        f"/staff/campaigns/{current}/results?breakdown=gender&breakdown=target_group",
        f"/staff/campaigns/{current}/results?open=1",
        "/staff/feedback",
        f"/staff/campaigns/{current}/feedback",
        "/staff/followups",
        "/staff/surveys",
        "/staff/surveys/nojdhet",
        "/staff/audit",
        "/staff/audit?from=yesterday",
        "/staff/campaigns/999/results",
    ]
    with browser(width) as driver:
        sign_in(driver, live, "anna", PASSWORD)
        for path in paths:
            driver.get(live.url + path)
            assert_accessible(driver)
        driver.get(f"{live.url}/staff/surveys/nojdhet")
        driver.find_element(By.XPATH, "//button[contains(., 'Svenska')]").click()
        wait_for(driver, lambda d: "Har du fått hjälp?" in d.page_source)
        assert_accessible(driver)
    # The admin's pages: the users and a person's erasure.
    live.call(lambda rt: accounts.add_user(rt, "ada", "admin", PASSWORD, actor="test"))
    with browser(width) as driver:
        sign_in(driver, live, "ada", PASSWORD)
        for path in ("/staff/users", "/staff/contacts/1", "/staff/contacts/1/erase"):
            driver.get(live.url + path)
            assert_accessible(driver)
