"""A small Chrome DevTools Protocol driver: Debian's headless `chromium` on loopback, one page.

    browser = Chromium()                    # starts chromium --headless=new, port from
    page = browser.new_page()               # DevToolsActivePort; a page over its WebSocket
    page.navigate("http://127.0.0.1:8080/ui/")
    page.wait_for_selector("#overview [data-count=devices]")
    page.click("#next-page"); page.type("#device-search", "iPhone")
    page.evaluate("fetch('/healthz').then(r => r.status)")    # promises are awaited
    page.screenshot("overview.png")
    page.problems()                         # console errors, exceptions, error log entries
    page.document_headers                   # the main document's response headers (lowercase)
    browser.close()

Only what the dashboard test and benchmark need: no frames, no downloads. The WebSocket is
python3-websocket (websocket-client). Chromium gets a throw-away profile directory and listens on
127.0.0.1 only; it is stopped at exit (tests/lib/cleanup.py) even when the run is interrupted.
Whatever is missing (chromium, python3-websocket) raises Unavailable; tests turn it into
harness.unavailable() (a failure with CI=true).
"""

import base64
import http.client
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
import cleanup  # noqa: E402

try:
    import websocket  # python3-websocket
except ImportError:  # reported when a browser is asked for
    websocket = None

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
DEFAULT_TIMEOUT = 20.0


class Unavailable(Exception):
    """chromium or python3-websocket is not installed."""


class CDPError(Exception):
    """An error answer to a DevTools command, or a script that threw."""


def find_chromium():
    override = os.environ.get("VOUCH_CHROMIUM")
    if override:
        return override if os.access(override, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless chromium process with its own profile directory."""

    def __init__(self, window=(1280, 900), log_path=None, extra_args=()):
        if websocket is None:
            raise Unavailable("python3-websocket (apt-get install python3-websocket)")
        binary = find_chromium()
        if binary is None:
            raise Unavailable("chromium (apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="vouch-chromium-")
        argv = [binary, "--headless=new", "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1", f"--user-data-dir={self.profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps", "--mute-audio",
                "--metrics-recording-only", "--password-store=basic", "--use-mock-keychain",
                "--disable-dev-shm-usage", f"--window-size={window[0]},{window[1]}"]
        if os.geteuid() == 0:
            argv.append("--no-sandbox")  # chromium refuses to run as root with its sandbox
        argv += list(extra_args) + ["about:blank"]
        self._log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, start_new_session=True)
        self._cleanup_key = cleanup.register(self.close)
        self.port = self._wait_for_port()
        self.pages = []

    def _wait_for_port(self, timeout=30.0):
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited with {self.proc.returncode} while starting")
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first.isdigit():
                    return int(first)
            except OSError:
                pass
            time.sleep(0.05)
        self.close()
        raise CDPError(f"chromium wrote no {path} within {timeout:.0f} s")

    def _http(self, method, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            body = r.read()
            if r.status != 200:
                raise CDPError(f"{method} {path}: {r.status} {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()

    def new_page(self):
        """A new tab, attached: Page, Runtime, Log and Network events are on."""
        target = self._http("PUT", "/json/new?about:blank")
        page = Page(self, target["id"], target["webSocketDebuggerUrl"])
        self.pages.append(page)
        return page

    def close(self):
        for page in getattr(self, "pages", []):
            page.close_socket()
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: the renderers too
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if getattr(self, "_cleanup_key", None) is not None:
            cleanup.unregister(self._cleanup_key)
            self._cleanup_key = None
        if getattr(self, "profile", None):
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Page:
    """One tab over its own WebSocket. Commands are synchronous; the events that arrive while
    waiting are recorded (console, exceptions, log entries, the main document's response)."""

    def __init__(self, browser, target_id, ws_url):
        self.browser = browser
        self.target_id = target_id
        self.ws = websocket.create_connection(ws_url, timeout=DEFAULT_TIMEOUT,
                                              suppress_origin=True)
        self._ids = itertools.count(1)
        self._answers = {}
        self.events = []          # every event, (method, params), until clear_events()
        self.console = []         # [(type, text)] of console API calls
        self.exceptions = []      # [text] of uncaught exceptions
        self.log_entries = []     # [(level, source, text, url)] of Log.entryAdded
        self.document_headers = None
        self.document_status = None
        self.main_frame = None
        self._loaded = False
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.main_frame = self.send("Page.getFrameTree")["frameTree"]["frame"]["id"]

    # -- the protocol ---------------------------------------------------------------------------
    def _read_one(self, timeout):
        self.ws.settimeout(max(timeout, 0.01))
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return False
        msg = json.loads(raw)
        if "id" in msg:
            self._answers[msg["id"]] = msg
        else:
            self._on_event(msg["method"], msg.get("params", {}))
        return True

    def send(self, method, params=None, timeout=DEFAULT_TIMEOUT):
        """Sends one command and returns its result (raises CDPError on an error answer)."""
        cid = next(self._ids)
        self.ws.send(json.dumps({"id": cid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while cid not in self._answers:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no answer within {timeout:.0f} s")
            self._read_one(left)
        msg = self._answers.pop(cid)
        if "error" in msg:
            raise CDPError(f"{method}: {msg['error'].get('message')} "
                           f"{msg['error'].get('data', '')}".strip())
        return msg.get("result", {})

    def pump(self, seconds):
        """Takes events for this long."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read_one(deadline - time.monotonic())

    def _on_event(self, method, params):
        self.events.append((method, params))
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", a.get("type"))))
                            for a in params.get("args", []))
            self.console.append((params.get("type"), text))
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            exc = d.get("exception", {})
            self.exceptions.append(f"{d.get('text', '')} {exc.get('description', '')} "
                                   f"({d.get('url', '')}:{d.get('lineNumber')})")
        elif method == "Log.entryAdded":
            e = params.get("entry", {})
            self.log_entries.append((e.get("level"), e.get("source"), e.get("text"),
                                     e.get("url")))
        elif method == "Network.responseReceived":
            if params.get("type") == "Document" and params.get("frameId") == self.main_frame:
                resp = params.get("response", {})
                self.document_status = resp.get("status")
                self.document_headers = {k.lower(): v for k, v in
                                         resp.get("headers", {}).items()}
        elif method == "Page.loadEventFired":
            self._loaded = True

    # -- what the page did wrong ------------------------------------------------------------------
    def problems(self, ignore_http_status=()):
        """Console errors and assertions, uncaught exceptions, and error log entries (CSP
        violations, failed loads, ...). ignore_http_status: statuses whose 'Failed to load
        resource' network entries are expected (a wrong token's 401, for one)."""
        out = [f"console.{t}: {text}" for t, text in self.console if t in ("error", "assert")]
        out += [f"exception: {text}" for text in self.exceptions]
        for level, source, text, url in self.log_entries:
            if level != "error":
                continue
            if source == "network" and any(f"status of {s}" in (text or "")
                                           for s in ignore_http_status):
                continue
            out.append(f"log ({source}): {text} {url or ''}".strip())
        return out

    def clear_problems(self):
        self.console.clear()
        self.exceptions.clear()
        self.log_entries.clear()

    def clear_events(self):
        self.events.clear()

    # -- navigation and scripts -----------------------------------------------------------------
    def navigate(self, url, wait_load=True, timeout=DEFAULT_TIMEOUT):
        """Loads url in the tab; returns the main document's status (None for a same-document
        navigation such as a hash change)."""
        self._loaded = False
        self.document_headers = None
        self.document_status = None
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"navigate {url}: {result['errorText']}")
        if wait_load and result.get("loaderId"):
            deadline = time.monotonic() + timeout
            while not self._loaded:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDPError(f"navigate {url}: no load event within {timeout:.0f} s")
                self._read_one(left)
        return self.document_status

    def reload(self, timeout=DEFAULT_TIMEOUT):
        self._loaded = False
        self.send("Page.reload", {"ignoreCache": True})
        deadline = time.monotonic() + timeout
        while not self._loaded:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"reload: no load event within {timeout:.0f} s")
            self._read_one(left)

    def evaluate(self, expression, await_promise=True, timeout=DEFAULT_TIMEOUT):
        """The value of a JavaScript expression (JSON-able values come back as Python values;
        a promise is awaited). A script that throws raises CDPError with its message."""
        result = self.send("Runtime.evaluate",
                           {"expression": expression, "awaitPromise": await_promise,
                            "returnByValue": True, "userGesture": True,
                            "timeout": int(timeout * 1000)}, timeout=timeout + 5)
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            desc = d.get("exception", {}).get("description") or d.get("text")
            raise CDPError(f"script threw: {desc}\n  in: {expression[:300]}")
        r = result.get("result", {})
        if r.get("type") == "undefined":
            return None
        return r.get("value", r.get("description"))

    def wait_for(self, expression, timeout=DEFAULT_TIMEOUT, interval=0.05, what=None):
        """Evaluates expression until it is truthy; returns its value, or raises
        AssertionError naming what (default: the expression) and its last value."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = self.evaluate(expression, timeout=max(1.0, min(timeout, 10.0)))
            except CDPError as exc:
                last = exc
            else:
                if last:
                    return last
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for "
                                     f"{what or expression} (last: {last!r})")
            self.pump(interval)

    def wait_for_selector(self, selector, visible=False, timeout=DEFAULT_TIMEOUT):
        js = f"document.querySelector({json.dumps(selector)})"
        if visible:
            js = (f"(e => !!e && !!(e.offsetWidth || e.offsetHeight || "
                  f"e.getClientRects().length) && getComputedStyle(e).visibility !== 'hidden')"
                  f"({js})")
        else:
            js = f"!!{js}"
        return self.wait_for(js, timeout=timeout, what=f"selector {selector}"
                             + (" (visible)" if visible else ""))

    def query(self, selector, script="e => e.textContent"):
        """script applied to the first element matching selector (None when none matches)."""
        return self.evaluate(f"(e => e ? ({script})(e) : null)"
                             f"(document.querySelector({json.dumps(selector)}))")

    def query_all(self, selector, script="e => e.textContent"):
        return self.evaluate(f"Array.from(document.querySelectorAll({json.dumps(selector)}))"
                             f".map({script})")

    def exists(self, selector):
        return self.evaluate(f"!!document.querySelector({json.dumps(selector)})")

    # -- input ------------------------------------------------------------------------------------
    def _center(self, selector):
        box = self.evaluate(
            f"(e => {{ if (!e) return null; e.scrollIntoView({{block: 'center'}});"
            f" const r = e.getBoundingClientRect();"
            f" return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; }})"
            f"(document.querySelector({json.dumps(selector)}))")
        if not box:
            raise AssertionError(f"click: nothing matches {selector}")
        if box[2] <= 0 or box[3] <= 0:
            raise AssertionError(f"click: {selector} is not visible (size {box[2]}x{box[3]})")
        return box[0], box[1]

    def click(self, selector):
        """A real mouse click (press and release) at the element's centre."""
        x, y = self._center(selector)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params = {"type": kind, "x": x, "y": y}
            if kind != "mouseMoved":
                params.update(button="left", clickCount=1)
            self.send("Input.dispatchMouseEvent", params)

    def focus(self, selector):
        ok = self.evaluate(f"(e => {{ if (!e) return false; e.focus(); return true; }})"
                           f"(document.querySelector({json.dumps(selector)}))")
        if not ok:
            raise AssertionError(f"focus: nothing matches {selector}")

    def type(self, selector, text, clear=True, delay=0.0):
        """Focuses the element and types text one character at a time (an input event each)."""
        self.focus(selector)
        if clear:
            self.evaluate(f"(e => {{ e.select && e.select(); }})"
                          f"(document.querySelector({json.dumps(selector)}))")
            self.key("Backspace")
        for ch in text:
            self.send("Input.insertText", {"text": ch})
            if delay:
                self.pump(delay)

    def key(self, name):
        """One key press: Enter, Backspace, Escape, Tab."""
        codes = {"Enter": (13, "\r"), "Backspace": (8, ""), "Escape": (27, ""), "Tab": (9, "")}
        code, text = codes[name]
        base = {"key": name, "code": name, "windowsVirtualKeyCode": code,
                "nativeVirtualKeyCode": code}
        self.send("Input.dispatchKeyEvent", dict(base, type="keyDown", text=text) if text
                  else dict(base, type="rawKeyDown"))
        self.send("Input.dispatchKeyEvent", dict(base, type="keyUp"))

    def select(self, selector, value):
        """Chooses value in a <select> as a user would (change and input events)."""
        ok = self.evaluate(
            f"(e => {{ if (!e) return false; e.focus(); e.value = {json.dumps(value)};"
            f" if (e.value !== {json.dumps(value)}) return false;"
            f" e.dispatchEvent(new Event('input', {{bubbles: true}}));"
            f" e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})"
            f"(document.querySelector({json.dumps(selector)}))")
        if not ok:
            raise AssertionError(f"select: {selector} has no option {value!r}")

    # -- pictures -----------------------------------------------------------------------------
    def screenshot(self, path, full_page=True):
        """A PNG of the page (the whole page by default) written to path."""
        params = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m.get("contentSize")
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"],
                                "height": min(size["height"], 10000), "scale": 1})
        data = base64.b64decode(self.send("Page.captureScreenshot", params)["data"])
        with open(path, "wb") as f:
            f.write(data)
        return path

    def close_socket(self):
        try:
            self.ws.close()
        except Exception:  # the browser may be gone already
            pass
