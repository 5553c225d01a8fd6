"""Headless Chromium for tests: Debian's chromium and chromedriver, driven by Selenium.

    with chromium() as browser:
        browser.open(path)              # a local file, with the network switched off
        assert browser.errors() == []   # console errors, uncaught exceptions, failed loads
        browser.js("return document.title")

    with chromium(loopback=True) as browser:   # a server on 127.0.0.1, nothing else
        browser.visit("http://127.0.0.1:4533/")

Missing chromium fails the test under CI (CI=true installs it, see test.sh); elsewhere it skips.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions",
    "--disable-default-apps", "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves
)

# Runs before any script of every page: keeps uncaught errors and console.error calls.
RECORD_ERRORS = """
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || e.type)));
window.addEventListener('unhandledrejection', e => window.__errors.push(
    'unhandled rejection: ' + (e.reason && e.reason.stack || e.reason)));
const consoleError = console.error.bind(console);
console.error = (...args) => { window.__errors.push('console.error: ' + args.join(' '));
                               consoleError(...args); };
"""


def require_chromium() -> None:
    """Skip when the browser is missing on a developer's machine; fail under CI."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if not missing:
        return
    message = (f"headless browser tests need {', '.join(missing)}: "
               "apt-get install chromium chromium-driver (test.sh does)")
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class Browser:
    """One headless Chromium page."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, path: Path, *, ready: str = "true", timeout: float = 30) -> None:
        """Load a local file and wait until the JavaScript expression `ready` is truthy."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get_log("browser")  # drop messages from an earlier page
        self.driver.get(Path(path).resolve().as_uri())
        WebDriverWait(self.driver, timeout).until(
            lambda d: d.execute_script(f"return document.readyState === 'complete' && "
                                       f"Boolean({ready})"))

    def visit(self, url: str, *, ready: str = "true", timeout: float = 30) -> None:
        """Load a URL (chromium(loopback=True): a server on this machine) and wait for `ready`."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get_log("browser")
        self.driver.get(url)
        WebDriverWait(self.driver, timeout).until(
            lambda d: d.execute_script(f"return document.readyState === 'complete' && "
                                       f"Boolean({ready})"))

    def js(self, script: str, *args: Any) -> Any:
        """Run JavaScript in the page; `return` a JSON-like value to get it back."""
        return self.driver.execute_script(script, *args)

    def mouse_to(self, x: float, y: float) -> None:
        """Move the mouse to a point of the page (CSS pixels from the viewport's top left)."""
        from selenium.webdriver.common.actions.action_builder import ActionBuilder

        actions = ActionBuilder(self.driver)
        actions.pointer_action.move_to_location(round(x), round(y))
        actions.perform()

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and browser errors (e.g. failed loads)."""
        logged = [f"{e['level']}: {e['message']}" for e in self.driver.get_log("browser")
                  if e["level"] == "SEVERE"]
        return logged + list(self.js("return window.__errors || []"))

    def resources(self) -> list[str]:
        """URLs of everything the page loaded or tried to load after the document itself."""
        return self.js("return performance.getEntriesByType('resource').map(e => e.name)")


@contextmanager
def chromium(*, width: int = 1400, height: int = 1000,
             loopback: bool = False) -> Iterator[Browser]:
    """A fresh headless Chromium (own profile folder) with every network request refused; with
    loopback=True, all but those to 127.0.0.1 / localhost: the rest goes to a proxy address
    where nothing listens (Chromium never proxies loopback), and no host name resolves."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="musicdb-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        flags = [*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        if loopback:
            flags = [f.replace("~NOTFOUND", "~NOTFOUND, EXCLUDE 127.0.0.1") for f in flags]
            flags.append("--proxy-server=http://127.0.0.1:9")  # the discard port: refused
        for flag in flags:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # A driver path given: Selenium Manager (which would download drivers) is never run.
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                                  options=options)
        try:
            driver.set_page_load_timeout(60)
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.emulateNetworkConditions", {
                "offline": not loopback, "latency": 0, "downloadThroughput": -1,
                "uploadThroughput": -1})
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                   {"source": RECORD_ERRORS})
            yield Browser(driver)
        finally:
            driver.quit()
