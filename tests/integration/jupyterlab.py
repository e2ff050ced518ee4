"""JupyterLab as a user meets it: Debian's Chromium driven by Playwright, the page unmodified.

No script is injected and nothing is retried: a cell that does not answer within the timeout
is a failure. One browser and one page serve many notebooks; each notebook is opened from
the launcher (Lab starts a fresh kernel for it) and closed with "Close and Shut Down".
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import Any, Self

from localrun import CHROMIUM, CHROMIUM_ARGS
from playwright.sync_api import TimeoutError as PlaywrightTimeout

NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"
# The status bar's "<kernel> | <status>" reads "Idle" only once the kernel's websocket is connected
# and the kernel idle ("No Kernel | Initializing" before). The toolbar's execution indicator starts
# at "idle" before any kernel exists, and a cell run then is silently not executed ("[ ]").
STATUS_BAR = ".jp-StatusBar-TextItem"


class JupyterLab:
    """One Lab page: ``with JupyterLab(url, token) as lab: lab.new_notebook(); lab.run("1+1")``."""

    def __init__(self, base_url: str, token: str, timeout_ms: int = 30_000, failure_shot: Path | None = None):
        self.base_url, self.token, self.timeout_ms = base_url, token, timeout_ms
        self.failure_shot = failure_shot  # where the page is saved if the block fails
        self.console: list[str] = []
        self.cells = 0  # cells run in the current notebook

    def __enter__(self) -> Self:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            self.page = self.browser.new_page(viewport={"width": 1280, "height": 800})
            self.page.set_default_timeout(self.timeout_ms)
            self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
            started = time.monotonic()
            self.page.goto(f"{self.base_url}/lab?reset&token={self.token}")  # reset: no restored tabs
            self.page.locator('.jp-LauncherCard[data-category="Notebook"]').first.wait_for()
            self.load_seconds = time.monotonic() - started
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if exc and exc[0] is not None and self.failure_shot:
            with contextlib.suppress(Exception):
                self.screenshot(self.failure_shot)
        with contextlib.suppress(Exception):
            self.browser.close()
        self._pw.stop()

    def new_notebook(self) -> None:
        """A new Python notebook from the launcher; returns once its kernel reports idle."""
        card = self.page.locator('.jp-LauncherCard[data-category="Notebook"]').first
        try:  # Lab opens a launcher when the last tab closes
            card.wait_for(timeout=3000)
        except PlaywrightTimeout:
            self.menu("File", "New Launcher")
        card.click()
        self.page.locator(f"{NOTEBOOK} .jp-Cell .cm-content").first.wait_for()
        self.wait_status("idle")
        self.cells = 0

    def kernel_start_error(self, display_name: str) -> str:
        """Open a new notebook with the kernelspec ``display_name`` from the launcher, expecting
        its kernel not to start; returns the text of the error dialog Lab shows, left open (Lab
        offers its kernel selector once it is closed)."""
        card = self.page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{display_name}"]')
        try:
            card.wait_for(timeout=3000)
        except PlaywrightTimeout:
            self.menu("File", "New Launcher")
        card.click()
        dialog = self.page.locator(".jp-Dialog")
        dialog.wait_for()
        return dialog.inner_text()

    def wait_status(self, status: str, timeout_ms: int | None = None) -> None:
        """Wait until the status bar shows the current notebook's kernel as ``status`` (idle, busy...)."""
        shown = re.compile(rf"\S \| {status}$", re.IGNORECASE)
        self.page.locator(STATUS_BAR).filter(has_text=shown).first.wait_for(timeout=timeout_ms or self.timeout_ms)

    def run(self, code: str, *, wait: bool = True) -> dict[str, Any]:
        """Type ``code`` into the next cell and run it; with ``wait``, until its prompt shows a number.
        Returns the cell's output text and prompt."""
        index = self.cells
        cell = self.page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell").nth(index)
        cell.locator(".cm-content").click()
        self.page.keyboard.type(code)
        self.page.keyboard.press("Shift+Enter")
        self.cells += 1
        if wait:
            return self.result(index)
        cell.locator(".jp-InputArea-prompt").filter(has_text="[*]").wait_for()
        return {}

    def result(self, index: int) -> dict[str, Any]:
        """Output text and prompt of cell ``index`` once it has finished (prompt ``[n]:``)."""
        cell = self.page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell").nth(index)
        prompt = cell.locator(".jp-InputArea-prompt")
        self.page.wait_for_function(
            "e => /^\\[\\d+\\]:$/.test(e.innerText.trim())", arg=prompt.element_handle(), timeout=self.timeout_ms
        )
        outputs = cell.locator(".jp-OutputArea-output")
        text = "\n".join(t.strip() for t in outputs.all_inner_texts())
        return {"output": text, "prompt": prompt.inner_text().strip()}

    def output_with(self, index: int, text: str) -> str:
        """The output text of cell ``index`` once it holds ``text`` (the cell may never finish)."""
        outputs = self.page.locator(f"{NOTEBOOK} .jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output")
        outputs.filter(has_text=text).first.wait_for(timeout=self.timeout_ms)
        return "\n".join(t.strip() for t in outputs.all_inner_texts())

    def menu(self, top: str, item: str, *, accept: bool = False) -> None:
        """Click ``top`` > ``item`` in Lab's menu bar; ``accept`` the dialog that follows."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=top).first.click()
        self.page.locator(".lm-Menu-itemLabel", has_text=item).first.click()
        if accept:
            self.page.locator(".jp-Dialog .jp-mod-accept").click()
            self.page.locator(".jp-Dialog").wait_for(state="detached")

    def close_and_shut_down(self) -> None:
        self.menu("File", "Close and Shut Down Notebook", accept=True)
        self.page.locator(NOTEBOOK).wait_for(state="detached")

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path))
        return path
