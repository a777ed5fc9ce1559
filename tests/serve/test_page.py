"""The try-it page: shipped in the package, self-contained (nothing fetched from elsewhere),
served at ``/`` and ``/try`` without a token; driven in headless Chromium over the DevTools
protocol against a real server with a token: the token is typed in, a task picked, its example
edited and submitted, and the parsed answer and raw output shown equal what the endpoint
returns; a screenshot is saved. Skipped with the reason where Chromium or ``websockets`` is
missing (``.ci/run`` installs Debian's chromium)."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
import subprocess
import time

import httpx
import pytest

from ecellm.infer import task_api
from ecellm.serve.app import create_app
from ecellm.serve.page import page_html
from ecellm.serve.run import BackgroundServer

TOKEN = "page-t0ken"


@pytest.fixture(scope="module")
def server(smollm2):
    with BackgroundServer(create_app(loaded=smollm2, token=TOKEN), token=TOKEN) as srv:
        yield f"http://127.0.0.1:{srv.port}"


def test_page_is_served_and_self_contained(server):
    html = page_html()
    external = re.findall(r'(?:src|href|action)\s*=\s*"(?:https?:)?//|url\(|<link\b|@import|\bimport\(', html)
    assert not external
    assert re.findall(r'fetch\("([^"]+)"', html) == ["/v1/tasks", "/health"]  # its own server only
    for path in ("/", "/try"):
        r = httpx.get(server + path)  # no token: the page holds no secret
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.text == html and r.headers["cache-control"] == "no-store"
    assert "/try" not in httpx.get(server + "/openapi.json").json()["paths"]


class DevTools:
    """A minimal Chrome DevTools Protocol client: one page, commands answered in order."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str):
        got = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in got:
            raise RuntimeError(f"page script failed: {got['exceptionDetails']}")
        return got["result"].get("value")

    def wait(self, expression: str, timeout: float = 120.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:  # the page may still be loading: its elements not there yet
                value = self.js(expression)
            except RuntimeError as exc:
                value, last = None, exc
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"page never satisfied {expression!r} (last error: {last})")


@pytest.fixture
def browser(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium); .ci/run installs it")
    if importlib.util.find_spec("websockets") is None:
        pytest.skip("the DevTools client needs the websockets package (pip install websockets)")
    profile = tmp_path / "profile"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900"]
    proc = subprocess.Popen(
        [chromium, *flags, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=30).json()
        page = next(p for p in pages if p.get("type") == "page")
        from websockets.sync.client import connect

        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30) as ws:
            yield DevTools(ws)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_page_submits_a_task_in_headless_chromium(server, browser, tmp_path):
    browser.send("Page.enable")
    browser.send(
        "Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False
    )
    browser.send("Page.navigate", url=f"{server}/try?task=sentiment_analysis")
    # without the token the task list is refused, and the page says what to do
    assert "enter the token" in browser.wait("document.getElementById('error').textContent")
    browser.js(
        f"""(() => {{ const t = document.getElementById('token'); t.value = {json.dumps(TOKEN)};
        t.dispatchEvent(new Event('change')); }})()"""
    )
    browser.wait("document.body.dataset.ready === '1'")
    assert browser.js("document.getElementById('task').value") == "sentiment_analysis"  # from ?task=
    options = browser.js("[...document.querySelectorAll('#task option')].map(o => o.value)")
    assert options == list(task_api.methods())
    assert browser.js("document.getElementById('field-review').value") == task_api.example("SA")["review"]
    review = "Stopped working after a week and the seller never answered. Do not buy."
    browser.js(
        f"""(() => {{ document.getElementById('field-review').value = {json.dumps(review)};
        document.getElementById('max_new_tokens').value = '4';
        document.getElementById('submit').click(); }})()"""
    )
    browser.wait("document.body.dataset.done === '1'")
    shown = browser.js(
        "({answer: document.getElementById('answer').textContent,"
        " raw: document.getElementById('raw').textContent,"
        " valid: document.getElementById('valid').textContent,"
        " error: document.getElementById('error').textContent})"
    )
    want = httpx.post(
        f"{server}/v1/tasks/sentiment_analysis",
        json={"review": review},
        params={"max_new_tokens": 4},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,
    ).json()
    assert want["valid"] and shown["error"] == ""
    assert shown["answer"] == json.dumps(want["answer"]) and shown["raw"] == want["text"]
    assert shown["valid"] == "valid"
    shot = tmp_path / "try-page.png"
    shot.write_bytes(base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"]))
    from PIL import Image

    with Image.open(shot) as im:  # a rendered page, not a blank one
        assert im.size == (1280, 900) and sum(1 for n in im.convert("L").histogram() if n) > 8
