"""A real headless browser for the studio tests: Debian's chromium driven by Playwright for Python.

Playwright's sync API runs an event loop of its own in the thread that starts it, and anyio refuses to start
one where another is running; so the browser lives in a thread of its own, one per test process, and a test
hands it a function to run there (`BrowserThread.run`). Nothing is downloaded: `playwright install` is never
run; the browser is the system's `chromium`. Without chromium or Playwright the tests are skipped, unless
FOUNDRY_IMAGE_MCP_REQUIRE_BROWSER=1 (as in .ci/run), when they fail.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest

REQUIRE_VARIABLE = "FOUNDRY_IMAGE_MCP_REQUIRE_BROWSER"
ARTIFACTS_VARIABLE = "FOUNDRY_IMAGE_MCP_ARTIFACTS"
T = TypeVar("T")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing (pip install playwright; it is in the test extra)"
    if chromium_path() is None:
        return "chromium is not installed (apt-get install chromium); the tests never download a browser"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_VARIABLE}=1 requires the browser tests")
    pytest.skip(reason)


class BrowserThread:
    """One chromium for the whole test process, in its own thread; `run(fn)` calls `fn(browser)` there."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        self._started: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, name="chromium", daemon=True)
        # Started, not awaited: chromium starts while the caller starts its server; `run` waits for it.
        self._thread.start()

    def _main(self) -> None:
        try:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"]
                )
                self._started.set_result(None)
                self._serve(browser)
                browser.close()
        except BaseException as exc:  # reported to the test that waits for the start
            if not self._started.done():
                self._started.set_exception(exc)

    def _serve(self, browser: Any) -> None:
        while (job := self._jobs.get()) is not None:
            function, future = job
            try:
                future.set_result(function(browser))
            except BaseException as exc:
                future.set_exception(exc)

    def run(self, function: Callable[[Any], T], timeout: float = 60) -> T:
        self._started.result(timeout=60)
        future: Future[T] = Future()
        self._jobs.put((function, future))
        return future.result(timeout=timeout)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


def artifacts_dir(fallback: Path) -> Path:
    """Where screenshots go: FOUNDRY_IMAGE_MCP_ARTIFACTS when set, else `fallback` (the test's tmp_path)."""
    configured = os.environ.get(ARTIFACTS_VARIABLE)
    directory = Path(configured) if configured else fallback
    directory.mkdir(parents=True, exist_ok=True)
    return directory
