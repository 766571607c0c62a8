"""A headless Chromium driven over the DevTools protocol, for tests that check what a person sees in a page.

Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) is started with ``--headless --no-sandbox
--remote-debugging-port=0``; the port is read from ``DevToolsActivePort`` in its throw-away profile and the page
is driven through its websocket (``websocket-client``, a test extra). Console messages, uncaught exceptions,
browser log entries and every network request of the page are recorded.

``chromium_or_skip()`` gives the binary, or skips with the reason when it is absent on a developer's machine;
on CI (``CI`` set, as ``.ci/run`` runs, or ``REQUIRE_BROWSER=1``) a missing browser is a failure, never a skip.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import List, Optional

import pytest

CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')


def find_chromium() -> Optional[str]:
    """``$CHROMIUM`` or the first Chromium on PATH."""
    named = os.environ.get('CHROMIUM')
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


def browser_required() -> bool:
    """On CI (``CI`` set and not ``0``/``false``) or with ``REQUIRE_BROWSER=1`` the browser tests must run."""
    def flag(name: str) -> bool:
        return os.environ.get(name, '').strip().lower() not in ('', '0', 'false', 'no')
    return flag('CI') or flag('REQUIRE_BROWSER')


def chromium_or_skip() -> str:
    binary = find_chromium()
    missing = []
    if binary is None:
        missing.append('no Chromium on PATH (apt-get install chromium; .ci/run installs it)')
    try:
        import websocket  # noqa: F401
    except ImportError:
        missing.append('the websocket-client test extra is not installed (make install)')
    if missing:
        if browser_required():
            pytest.fail('browser tests cannot run on CI: ' + '; '.join(missing), pytrace=False)
        pytest.skip('browser tests skipped (not on CI): ' + '; '.join(missing))
    return binary


class DevToolsError(RuntimeError):
    pass


class Chromium:
    """One headless Chromium with one page. Use as a context manager."""

    def __init__(self, binary: str, width: int = 1200, height: int = 900, timeout: float = 60.0) -> None:
        import websocket

        self.timeout = timeout
        self.events: List[dict] = []
        self._id = 0
        self.profile = Path(tempfile.mkdtemp(prefix='chromium-test-'))
        self._stderr = open(self.profile / 'stderr.log', 'wb')
        self.proc = subprocess.Popen(
            [binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
             '--no-default-browser-check', '--disable-extensions', '--disable-background-networking',
             '--hide-scrollbars', '--mute-audio', f'--window-size={width},{height}', '--remote-debugging-port=0',
             '--remote-allow-origins=*', f'--user-data-dir={self.profile}', 'about:blank'],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr)
        try:
            port = self._port()
            page = self._page_target(port)
            self.ws = websocket.create_connection(page['webSocketDebuggerUrl'], timeout=timeout, suppress_origin=True)
        except BaseException:
            self.close()
            raise

    # ---- plumbing --------------------------------------------------------------------------------------------
    def _port(self) -> int:
        marker = self.profile / 'DevToolsActivePort'
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DevToolsError(f'chromium exited with {self.proc.returncode}: {self._stderr_tail()}')
            if marker.is_file():
                lines = marker.read_text().splitlines()
                if lines and lines[0].strip().isdigit():
                    return int(lines[0])
            time.sleep(0.05)
        raise DevToolsError(f'chromium did not open its DevTools port in {self.timeout:.0f} s: {self._stderr_tail()}')

    def _page_target(self, port: int) -> dict:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list', timeout=self.timeout) as response:
                pages = [t for t in json.load(response) if t.get('type') == 'page']
            if pages:
                return pages[0]
            time.sleep(0.05)
        raise DevToolsError('chromium has no page target')

    def _stderr_tail(self) -> str:
        self._stderr.flush()
        return (self.profile / 'stderr.log').read_text(errors='replace')[-2000:]

    def send(self, method: str, **params) -> dict:
        """One DevTools command; its result (events that arrive meanwhile are recorded)."""
        self._id += 1
        call = self._id
        self.ws.send(json.dumps({'id': call, 'method': method, 'params': params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get('id') == call:
                if 'error' in message:
                    raise DevToolsError(f'{method}: {message["error"]}')
                return message.get('result', {})
            self.events.append(message)

    def wait_for(self, method: str) -> dict:
        """The first recorded event ``method``, waiting for it if needed."""
        deadline = time.monotonic() + self.timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get('method') == method:
                    return event
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise DevToolsError(f'no {method} within {self.timeout:.0f} s')
            self.events.append(json.loads(self.ws.recv()))

    # ---- what a test does --------------------------------------------------------------------------------------
    def open(self, path: Path) -> None:
        """Load a local file and wait for its load event (console, log and network recorded from the start)."""
        for domain in ('Runtime', 'Log', 'Page', 'Network'):
            self.send(f'{domain}.enable')
        self.events.clear()
        self.send('Page.navigate', url=Path(path).resolve().as_uri())
        self.wait_for('Page.loadEventFired')

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited); a page exception is an error."""
        result = self.send('Runtime.evaluate', expression=expression, returnByValue=True, awaitPromise=True)
        if 'exceptionDetails' in result:
            raise DevToolsError(f'{expression[:80]}: {result["exceptionDetails"]}')
        return result['result'].get('value')

    def click(self, selector: str) -> None:
        """Click the middle of the element as a mouse does (scrolled into view first)."""
        box = self.evaluate(f'(() => {{ const e = document.querySelector({json.dumps(selector)}); '
                            'if (!e) return null; e.scrollIntoView({block: "center"}); '
                            'const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()')
        if box is None:
            raise DevToolsError(f'no element {selector}')
        x, y = box
        self.send('Input.dispatchMouseEvent', type='mouseMoved', x=x, y=y)
        for kind in ('mousePressed', 'mouseReleased'):
            self.send('Input.dispatchMouseEvent', type=kind, x=x, y=y, button='left', clickCount=1)

    def errors(self) -> List[str]:
        """Console errors and assertions, uncaught exceptions and browser log errors recorded so far."""
        out = []
        for event in self.events:
            method, params = event.get('method'), event.get('params', {})
            if method == 'Runtime.consoleAPICalled' and params.get('type') in ('error', 'assert'):
                out.append('console: ' + ' '.join(str(a.get('value', a.get('description'))) for a in params['args']))
            elif method == 'Runtime.exceptionThrown':
                details = params.get('exceptionDetails', {})
                out.append('exception: ' + str(details.get('exception', {}).get('description', details.get('text'))))
            elif method == 'Log.entryAdded' and params.get('entry', {}).get('level') == 'error':
                out.append('log: ' + params['entry'].get('text', ''))
        return out

    def requests(self) -> List[str]:
        """URLs of every request the page made."""
        return [e['params']['request']['url'] for e in self.events if e.get('method') == 'Network.requestWillBeSent']

    def screenshot(self, path: Path, width: int = 1200, height: int = 900, scale: float = 1.0) -> Path:
        """A PNG of the top ``width`` x ``height`` CSS pixels of the page (after scrolling to the top)."""
        self.evaluate('window.scrollTo(0, 0)')
        shot = self.send('Page.captureScreenshot', format='png', captureBeyondViewport=True,
                         clip={'x': 0, 'y': 0, 'width': width, 'height': height, 'scale': scale})
        Path(path).write_bytes(base64.b64decode(shot['data']))
        return Path(path)

    def close(self) -> None:
        ws = getattr(self, 'ws', None)
        if ws is not None:
            try:
                ws.close()
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> 'Chromium':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
