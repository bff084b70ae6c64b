"""Real-browser helpers for the staff web app: the service on a real port in a thread of its own,
headless Chromium from Debian (`/usr/bin/chromium` + `/usr/bin/chromedriver`, installed by
`make browser-deps`) and an axe-core accessibility check.

A missing browser, driver or axe-core FAILS the tests (never skips them).

    with LiveService(settings) as live, browser(1280) as driver:
        live.call(lambda rt: accounts.add_user(rt, "anna", "admin", PASSWORD, actor="test"))
        sign_in(driver, live, "anna")
        driver.get(live.url + "/staff/campaigns")
        assert_accessible(driver)          # no serious or critical axe-core violation
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from bot.app import RUNTIME, create_app
from bot.channels.webchat import WebChatChannel
from bot.clock import Clock
from bot.config import Settings
from bot.runtime import Runtime

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
AXE = ROOT / ".browser" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
WIDTHS = (390, 1280)


class LiveService:
    """The whole service (`create_app`, background work on) on 127.0.0.1, in its own thread."""

    def __init__(
        self, settings: Settings, *, clock: Clock | None = None, background: bool = True
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.background = background
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> LiveService:
        self.thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def _run(self, coro: Awaitable[T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(120)

    async def _start(self) -> None:
        app = create_app(
            self.settings,
            clock=self.clock,
            channels={"webchat": WebChatChannel()},
            background=self.background,
        )
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.app = app

    async def _stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def runtime(self) -> Runtime:
        """The running service's runtime."""
        runtime: Runtime = self.app[RUNTIME]
        return runtime

    def call(self, work: Callable[[Runtime], Awaitable[T]]) -> T:
        """Run `work(runtime)` on the service's event loop and wait for it."""

        async def run() -> T:
            return await work(self.runtime)

        return self._run(run())


def require_browser() -> None:
    """Fail (not skip) when Chromium, its driver or axe-core is missing."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER, AXE) if not p.exists()]
    if missing:
        pytest.fail(f"browser tests need {', '.join(missing)}: run `make browser-deps`")


@contextmanager
def browser(width: int = 1280, height: int = 900) -> Iterator[WebDriver]:
    """Headless Chromium at this window width."""
    require_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--lang=sv-SE",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        # --window-size sets the outer size; make the page itself `width` wide.
        # Headless windows are at least 500 px wide: emulate a narrower (phone) screen.
        if int(driver.execute_script("return window.innerWidth")) != width:
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500},
            )
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, check: Callable[[WebDriver], Any], timeout: float = 20) -> Any:
    """Wait until `check(driver)` is truthy (WebDriverWait polls; no fixed sleeps)."""
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(check)


def sign_in(driver: WebDriver, live: LiveService, name: str, password: str) -> None:
    """Sign in through the form."""
    driver.get(live.url + "/staff/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    wait_for(driver, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "nav")))


def axe_violations(driver: WebDriver) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the current page (WCAG 2.1 A/AA rules)."""
    require_browser()
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a',
                'wcag21aa', 'best-practice']}})
           .then(r => done(r.violations), e => done([{id: 'axe-error', impact: 'critical',
                 help: String(e), nodes: []}]));
        """
    )
    return [v for v in result if v.get("impact") in BLOCKING]


def assert_accessible(driver: WebDriver) -> None:
    """No serious or critical axe-core violation on the current page."""
    found = axe_violations(driver)
    details = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(" ".join(n.get("target", [])) for n in v.get("nodes", [])[:3])
        for v in found
    ]
    assert not found, f"{driver.current_url}: " + "\n".join(details)


def copy_sqlite(template: Path, folder: Path) -> str:
    """A fresh migrated SQLite database for a live service."""
    path = folder / "staff-live.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"
