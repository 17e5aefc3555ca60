"""MedSynth Studio's guards in a running studio: headless Chromium and a raw websocket client.

One ``medsynth studio --max-upload-mb 8`` subprocess on 127.0.0.1.  Checked: the page opened from
the printed address (with its token) works and the token leaves the address bar; a page without
the token gets no views; a page of another origin cannot open the websocket; raw clients without
an Origin, with a foreign Origin, with a foreign Host (DNS rebinding) are refused at the handshake
and a wrong token is refused at the hello; an uploaded header naming /etc/hostname is refused; an
oversized upload is refused before it is sent and the server's memory stays flat; a file larger
than one upload piece loads.
"""

from __future__ import annotations

import asyncio
import http.server
import socketserver
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer", reason="needs trame-slicer (pip install 'trame-slicer[standalone]==2.0.0')")

from medsynth_studio import browser  # noqa: E402

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(browser.missing_requirements() is not None, reason=str(browser.missing_requirements())),
]

WAIT_MS = 30_000
LIMIT_MB = 8


@pytest.fixture(scope="module")
def server():
    with browser.StudioServer(start_timeout=120, args=["--max-upload-mb", str(LIMIT_MB)]) as s:
        yield s


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        c = browser.launch_chromium(pw)
        try:
            yield c
        finally:
            c.close()


@pytest.fixture(scope="module")
def page(server, chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    browser.open_studio(pg, server.url, count=4, timeout_s=90)
    # the studio opens on the Nodule panel (chest CT sample): uploads go through the Volumes panel
    pg.locator(".medsynth-studio-panel-volumes .v-expansion-panel-title").click()
    browser.wait_for_state(pg, "studio_panel", lambda v: v == ["volumes"], timeout_s=10)
    yield pg
    context.close()


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def volume_names(page) -> list:
    return [i["title"] for i in browser.get_state(page, "volumes_volume_items") or []]


def upload(page, *paths) -> None:
    page.locator(".medsynth-upload input[type=file]").set_input_files([str(p) for p in paths])


def wait_error(page, needle: str, timeout_s: float = 30) -> str:
    text = browser.wait_for_state(page, "volumes_error", lambda v: needle in (v or ""), timeout_s=timeout_s)
    error = page.locator(".medsynth-error-volumes")
    error.wait_for(state="visible", timeout=WAIT_MS)
    assert needle in error.inner_text()
    return text


# --------------------------------------------------------------------------- who may connect
def test_the_printed_address_carries_a_token_that_leaves_the_address_bar(server, page):
    assert server.token and len(server.token) >= 40 and server.token != "wslink-secret"
    assert "secret=" not in page.url  # trame's page reads the token and removes it from the address bar
    assert len(browser.view_stats(page)) == 4


def test_a_page_without_the_token_gets_no_views(server, chromium):
    context = chromium.new_context()
    try:
        pg = context.new_page()
        pg.goto(server.bare_url, wait_until="commit")
        pg.wait_for_timeout(8000)
        assert browser.view_stats(pg) == []
        assert pg.evaluate("() => !!(window.trame && window.trame.state && window.trame.state.get('studio_ready'))") is False
    finally:
        context.close()


def test_a_page_of_another_origin_cannot_open_the_websocket(server, page, chromium):
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>another site</body></html>")

        def log_message(self, *args):
            pass

    port = browser.free_port()
    other = socketserver.TCPServer(("127.0.0.1", port), Page)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    context = chromium.new_context()
    try:
        pg = context.new_page()
        pg.goto(f"http://127.0.0.1:{port}/")
        script = """([url, secret]) => new Promise((resolve) => {
            const ws = new WebSocket(url);
            ws.onopen = () => resolve('open');
            ws.onerror = () => resolve('refused');
            setTimeout(() => resolve('timeout'), 10000);
        })"""
        assert pg.evaluate(script, [f"ws://127.0.0.1:{server.port}/ws", server.token]) == "refused"
        # the studio's own page, same browser, same token, connects (the check can pass)
        assert page.evaluate(script, [f"ws://127.0.0.1:{server.port}/ws", server.token]) == "open"
    finally:
        context.close()
        other.shutdown()
        other.server_close()
    deadline = time.time() + 10
    while time.time() < deadline and not any(f"origin 'http://127.0.0.1:{port}'" in ln for ln in server.lines):
        time.sleep(0.2)
    assert any(f"refused a websocket from origin 'http://127.0.0.1:{port}'" in ln for ln in server.lines), server.output()


async def _hello(url: str, headers: dict, secret: str):
    """Open the websocket with ``headers`` and send wslink's hello; returns the HTTP status or the answer."""
    import aiohttp
    import msgpack
    from wslink.chunking import UnChunker, generate_chunks

    async with aiohttp.ClientSession() as session:
        try:
            ws = await session.ws_connect(url, headers=headers)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        async with ws:
            hello = {"wslink": "1.0", "id": "system:c0:0", "method": "wslink.hello", "args": [{"secret": secret}],
                     "kwargs": {}}
            for chunk in generate_chunks(msgpack.packb(hello), 4096):
                await ws.send_bytes(chunk)
            unchunker = UnChunker()
            unchunker.set_max_message_size(1 << 24)
            while True:
                msg = await asyncio.wait_for(ws.receive(), 20)
                if msg.type != aiohttp.WSMsgType.BINARY:
                    return f"closed: {msg.type}"
                answer = unchunker.process_chunk(msg.data)
                if answer is not None and answer.get("id") == "system:c0:0":
                    return answer


def test_raw_clients_are_refused_without_origin_with_another_origin_host_or_token(server):
    url = f"ws://127.0.0.1:{server.port}/ws"
    own = f"http://127.0.0.1:{server.port}"

    def hello(headers, secret=server.token):
        # its own thread: Playwright's sync API keeps an event loop running in this one
        out = {}
        t = threading.Thread(target=lambda: out.update(r=asyncio.run(_hello(url, headers, secret))))
        t.start()
        t.join(60)
        return out.get("r")

    assert hello({}) == 403  # no Origin (not a browser page of the studio)
    assert hello({"Origin": "http://evil.example"}) == 403
    assert hello({"Origin": f"http://127.0.0.1:{server.port + 1}"}) == 403
    # DNS rebinding: a foreign name that resolves to 127.0.0.1, page and socket on the same (foreign) origin
    assert hello({"Origin": f"http://evil.example:{server.port}", "Host": f"evil.example:{server.port}"}) == 403
    wrong = hello({"Origin": own}, secret="wslink-secret")  # trame's built-in default no longer works
    assert isinstance(wrong, dict) and "error" in wrong and "Authentication failed" in str(wrong["error"]), wrong
    right = hello({"Origin": own})
    assert isinstance(right, dict) and "clientID" in right.get("result", {}), right


# --------------------------------------------------------------------------- what may be uploaded
def test_a_header_naming_a_server_file_is_refused(page, tmp_path):
    before = volume_names(page)
    evil = tmp_path / "evil.mhd"
    evil.write_text("ObjectType = Image\nNDims = 3\nDimSize = 4 1 1\nElementType = MET_UCHAR\n"
                    "ElementDataFile = /etc/hostname\n")
    upload(page, evil)
    text = wait_error(page, "outside its own folder")
    assert "evil.mhd" in text and "/etc" not in text and "/tmp" not in text, text
    assert volume_names(page) == before


def test_an_oversized_upload_is_refused_before_it_is_sent_and_memory_stays_flat(server, page, tmp_path):
    big = tmp_path / "big.nii.gz"
    with open(big, "wb") as f:
        f.write(np.random.default_rng(7).integers(0, 255, 64 * 1024 * 1024, dtype=np.uint8).tobytes())
    before_names = volume_names(page)
    page.wait_for_timeout(1000)
    rss0 = rss_kb(server.proc.pid)
    upload(page, big)
    text = wait_error(page, "more than this studio accepts")
    assert f"{LIMIT_MB} MB" in text, text
    page.wait_for_timeout(2000)
    grown_mb = (rss_kb(server.proc.pid) - rss0) / 1024
    print(f"server RSS change during a refused 64 MB upload: {grown_mb:+.1f} MB")
    assert grown_mb < 16, f"server memory grew by {grown_mb:.0f} MB for a refused 64 MB upload"
    assert volume_names(page) == before_names


def test_a_file_larger_than_one_piece_uploads_and_loads(server, page, tmp_path):
    from medsynth import Volume, make_ijk_to_ras
    from medsynth.io import write_volume

    k, j, i = np.meshgrid(np.arange(60), np.arange(100), np.arange(110), indexing="ij")
    array = ((i * 7 + j * 3 + k * 5) % 200).astype(np.float32)
    path = write_volume(Volume(array, make_ijk_to_ras((2.0, 2.0, 2.0), (0.0, 0.0, 0.0)), name="pieces_test"),
                        tmp_path / "pieces_test.nrrd", compress=False)
    assert 2 * 1024 * 1024 < path.stat().st_size < LIMIT_MB * 1024 * 1024
    upload(page, path)
    browser.wait_for_state(page, "volumes_volume_items", lambda v: any(i["title"] == "pieces_test" for i in v or []),
                           timeout_s=60)
    assert browser.get_state(page, "volumes_error") == ""
