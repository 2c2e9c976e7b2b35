"""A real headless Chromium for page tests: finding it, running it with the flags that keep it
offline and quiet, and driving a page over the DevTools protocol (`browser_page`). Missing Chromium
fails the test (CI installs the Debian package `chromium`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars")


def chromium_path() -> str:
    """The Chromium binary: $CHROMIUM when set, else the first of NAMES on PATH; fails when there is none."""
    configured = os.environ.get("CHROMIUM")
    found = configured or next((path for name in NAMES if (path := shutil.which(name))), None)
    if not found:
        pytest.fail("Chromium is not installed: 'apt-get install chromium' (or set CHROMIUM to its path).")
    return found


def chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throw-away profile; raises when it fails."""
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        result = subprocess.run([chromium_path(), *FLAGS, f"--user-data-dir={profile}", *args],
                                capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode:
        pytest.fail(f"chromium {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result


def dump_dom(page: Path) -> str:
    """The DOM of `page` after load, as Chromium serialises it (scripts, had any run, would show here)."""
    return chromium("--virtual-time-budget=2000", "--dump-dom", page.resolve().as_uri()).stdout


def screenshot(page: Path, png: Path, size: str = "1280,1600") -> Path:
    chromium(f"--window-size={size}", f"--screenshot={png}", page.resolve().as_uri())
    if not png.exists():
        pytest.fail(f"chromium wrote no screenshot of {page}")
    return png


# ------------------------------------------------------------------- driving a page over DevTools


class Page:
    """One tab of a headless Chromium, driven over the DevTools protocol (a websocket): navigate,
    type, click, pick files, evaluate and wait, as a person at the browser would, with the page's
    own scripts running. JavaScript dialogs (alert, confirm) are dismissed and recorded in `dialogs`.

    Network answers are recorded in `responses` (method, URL, status). After `answer_sign_in`, a
    server's request for HTTP credentials (a 401 with `WWW-Authenticate`) is recorded in `challenges`
    and answered as a person at the browser's prompt would: with the credentials given, or by
    cancelling when none were."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.dialogs: list[str] = []
        self.exceptions: list[str] = []
        self.responses: list[tuple[str, str, int]] = []
        self.challenges: list[dict[str, Any]] = []
        self._credentials: tuple[str, str] | None = None
        self._requests: dict[str, str] = {}
        self._next_id = 0
        for domain in ("Page", "Runtime", "DOM", "Network"):
            self.send(f"{domain}.enable")

    def answer_sign_in(self, user: str | None = None, password: str = "") -> None:
        """From now on, answer the browser's credential prompts with `user` and `password` (None:
        cancel them). Every request then waits for this driver to let it go on, which it does
        whenever it talks to the page: keep calling `wait_for` or `evaluate` while a page loads."""
        self._credentials = (user, password) if user is not None else None
        self.send("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": "*"}])

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call a DevTools method and return its result (events that arrive meanwhile are handled)."""
        self._next_id += 1
        call_id = self._next_id
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"DevTools {method} failed: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(f"{params.get('type')}: {params.get('message')}")
            # answered without waiting: the page is blocked until it is
            self._answer("Page.handleJavaScriptDialog", accept=False)
        elif method == "Runtime.exceptionThrown":
            self.exceptions.append(json.dumps(params.get("exceptionDetails", {}))[:500])
        elif method == "Network.requestWillBeSent":
            self._requests[params["requestId"]] = params["request"]["method"]
        elif method == "Network.responseReceived":
            response = params["response"]
            self.responses.append((self._requests.get(params["requestId"], "?"), response["url"], response["status"]))
        elif method == "Fetch.requestPaused":
            self._answer("Fetch.continueRequest", requestId=params["requestId"])
        elif method == "Fetch.authRequired":
            self.challenges.append(params["authChallenge"])
            reply: dict[str, str] = {"response": "CancelAuth"}
            if self._credentials:
                reply = {"response": "ProvideCredentials", "username": self._credentials[0],
                         "password": self._credentials[1]}
            self._answer("Fetch.continueWithAuth", requestId=params["requestId"], authChallengeResponse=reply)

    def _answer(self, method: str, **params: Any) -> None:
        """A call whose result nobody waits for (its answer is dropped when it arrives)."""
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{expression!r} threw: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Poll `expression` until it is truthy in JavaScript; its value (True for an element). It may
        throw meanwhile (a page still loading)."""
        deadline = time.monotonic() + timeout
        probe = f"(() => {{ const v = ({expression}); return [!!v, v instanceof Node ? true : v]; }})()"
        while True:
            try:
                (truthy, value), last = self.evaluate(probe), None
            except AssertionError as exc:
                truthy, value, last = False, None, exc
            if truthy:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout} s: {expression} ({last or value!r})")
            time.sleep(0.2)

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element."""
        box = self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                            "e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); "
                            "return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        """Focus the field, clear it, and type `text` into it."""
        self.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); "
                      "e.select && e.select(); })()")
        self.send("Input.insertText", text=text)

    def press_enter(self) -> None:
        """The Enter key, in whatever has the focus (a search box submits)."""
        self.send("Input.dispatchKeyEvent", type="keyDown", key="Enter", code="Enter", windowsVirtualKeyCode=13,
                  text="\r")
        self.send("Input.dispatchKeyEvent", type="keyUp", key="Enter", code="Enter", windowsVirtualKeyCode=13)

    def set_files(self, selector: str, paths: list[Path]) -> None:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", nodeId=node, files=[str(p.resolve()) for p in paths])

    def text(self, selector: str) -> str:
        return str(self.evaluate(f"document.querySelector({json.dumps(selector)}).innerText"))


@contextmanager
def browser_page(timeout: float = 30) -> Iterator[Page]:
    """A fresh headless Chromium (throw-away profile) and one page of it; closed afterwards."""
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen([chromium_path(), *FLAGS, f"--user-data-dir={profile}",
                                    "--remote-debugging-port=0", "--remote-allow-origins=*", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"  # Chromium writes its debugging port here
            deadline = time.monotonic() + timeout
            while not (port_file.exists() and port_file.read_text().strip()):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Chromium did not open its DevTools port (exit {process.poll()})")
                time.sleep(0.05)
            port = int(port_file.read_text().splitlines()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                targets = json.loads(answer.read())
            url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            with connect(url, max_size=None, open_timeout=10) as socket:
                yield Page(socket)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
