"""A real headless Chromium for console tests: Debian's ``chromium`` (scripts/ensure-system-packages.sh installs
it) driven by Playwright for Python. Playwright's own browser download is never used."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright


def chromium_path() -> str:
    path = os.environ.get("LLMOPS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("no chromium found: run scripts/ensure-system-packages.sh (or set LLMOPS_CHROMIUM)")
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield browser
        finally:
            browser.close()
