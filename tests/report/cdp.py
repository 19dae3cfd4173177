"""A minimal Chrome DevTools Protocol client over ``--remote-debugging-pipe``.

Enough to open a page in headless Chromium, wait for it to load, evaluate an expression,
collect console / log errors and take a screenshot (:class:`Page`), with no extra Python
dependency (messages are NUL-terminated JSON on file descriptors 3 and 4 of the browser).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    def __init__(self, binary: str) -> None:
        self._to_r, self._to_w = os.pipe()  # we write commands -> browser fd 3
        self._from_r, self._from_w = os.pipe()  # browser fd 4 -> we read
        self._profile = tempfile.mkdtemp(prefix="cdp-profile-")
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=self._dup_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(self._to_r)
        os.close(self._from_w)
        self._id = 0
        self._buf = b""
        self.events: list[dict[str, Any]] = []

    def _dup_fds(self) -> None:
        os.dup2(self._to_r, 3)
        os.dup2(self._from_w, 4)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)
        raise TimeoutError(method)

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buf:
            chunk = os.read(self._from_r, 1 << 16)
            if not chunk:
                raise RuntimeError("browser closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return dict(json.loads(raw))

    def wait_event(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ev = self._read()
            if ev.get("method") == method:
                return ev
            self.events.append(ev)
        raise TimeoutError(method)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - best effort on shutdown
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_w)
        os.close(self._from_r)
        shutil.rmtree(self._profile, ignore_errors=True)


def load_and_inspect(url: str, expression: str, binary: str) -> tuple[Any, list[str]]:
    """Open ``url``, wait for the load event, evaluate ``expression`` (JSON-returnable).

    Returns:
        The expression's value and every console error / log error / exception text.
    """
    b = Browser(binary)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            b.send(f"{domain}.enable", session=session)
        b.send("Page.navigate", {"url": url}, session=session)
        b.wait_event("Page.loadEventFired", timeout=60)
        value = b.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )["result"].get("value")
        errors = []
        for ev in b.events:
            p = ev.get("params", {})
            if ev.get("method") == "Runtime.exceptionThrown":
                errors.append(str(p.get("exceptionDetails", {}).get("text")))
            elif ev.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
                errors.append(str(p.get("args")))
            elif (
                ev.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error"
            ):
                errors.append(str(p["entry"].get("text")))
        return value, errors
    finally:
        b.close()


class Page:
    """One headless Chromium tab at a fixed viewport: navigate, evaluate, screenshot.

    Example::

        with Page(find_chromium(), width=1280, height=900) as page:
            load_ms = page.goto(path.as_uri())
            value = page.evaluate("document.title")
            page.screenshot(tmp / "shot.png", full_page=True)
            assert page.errors() == []
    """

    def __init__(self, binary: str, width: int = 1280, height: int = 900) -> None:
        self.width, self.height = width, height
        self.browser = Browser(binary)
        b = self.browser
        try:
            target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = b.send(
                "Target.attachToTarget", {"targetId": target, "flatten": True}
            )["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                b.send(f"{domain}.enable", session=self.session)
            b.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=self.session,
            )
        except BaseException:
            b.close()
            raise

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def goto(self, url: str, timeout: float = 60.0) -> float:
        """Navigate and wait for the load event; returns the page's own navigation-start to
        load-event time in milliseconds (Navigation Timing)."""
        self.browser.events = [e for e in self.browser.events
                               if e.get("method") != "Page.loadEventFired"]  # fmt: skip
        self.browser.send("Page.navigate", {"url": url}, session=self.session)
        self.browser.wait_event("Page.loadEventFired", timeout=timeout)
        ms = self.evaluate(
            "(() => { const e = performance.getEntriesByType('navigation')[0];"
            " return e ? e.loadEventStart : -1; })()"
        )
        return float(ms)

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` (JSON-returnable; promises are awaited)."""
        res = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def screenshot(self, path: str | os.PathLike[str], full_page: bool = False) -> int:
        """Save a PNG of the viewport (or the whole page); returns its size in bytes."""
        import base64

        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.browser.send("Page.getLayoutMetrics", session=self.session)
            css = size.get("cssContentSize") or size["contentSize"]
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": self.width,
                      "height": math.ceil(css["height"]), "scale": 1},  # fmt: skip
            )
        data = base64.b64decode(
            self.browser.send("Page.captureScreenshot", params, session=self.session,
                              timeout=60)["data"]  # fmt: skip
        )
        with open(path, "wb") as fh:
            fh.write(data)
        return len(data)

    def errors(self) -> list[str]:
        """Every console error, log error and uncaught exception seen so far."""
        return _errors(self.browser.events)

    def close(self) -> None:
        self.browser.close()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for ev in events:
        p = ev.get("params", {})
        if ev.get("method") == "Runtime.exceptionThrown":
            errors.append(str(p.get("exceptionDetails", {}).get("text")))
        elif ev.get("method") == "Runtime.consoleAPICalled" and p.get("type") == "error":
            errors.append(str(p.get("args")))
        elif ev.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            errors.append(str(p["entry"].get("text")))
    return errors
