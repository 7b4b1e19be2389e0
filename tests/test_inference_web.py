"""The gradio demo: backend checks, the real ``c2ser web`` command with its defaults (127.0.0.1 only, the server
refuses oversize uploads, SIGTERM stops it), and an end-to-end run in headless Chromium on a tiny model."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from c2ser.inference.loading import audio_item, load_for_inference
from c2ser.inference.predict import label_word_scores
from c2ser.inference.web import DemoBackend
from deps import missing, need_module
from inference_fixtures import make_checkpoint_and_clips

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def backend(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    ckpt, feats, clips = make_checkpoint_and_clips(tiny_models, root, n=1)
    model, proc = load_for_inference(str(ckpt))
    return DemoBackend(model, proc, ssl_features=feats, max_upload_mb=1, max_new_tokens=8), clips, root


REPO = Path(__file__).resolve().parents[1]
DEFAULT_LIMIT = 20 * 2**20  # c2ser web --max-upload-mb default (20 MB)


def test_analyze_gives_scores_reasoning_and_starts_a_chat(backend):
    b, clips, _ = backend
    emotion, scores, reasoning = b.analyze(str(clips[0]))
    expected = label_word_scores(b.model, b.processor, audio_item(clips[0], b.model, b.ssl_features))
    assert scores == expected and emotion.split()[0] == max(expected, key=expected.get)
    assert b.chat.path == str(clips[0]) and isinstance(b.chat.ask("why?"), str)


def test_rejects_non_audio_and_oversized_uploads(backend):
    b, clips, root = backend
    text = root / "notes.wav"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.wav"):
        b.analyze(str(text))
    big = root / "big.wav"
    big.write_bytes(b"\0" * (2 * 2**20))
    with pytest.raises(ValueError, match="over the 1 MB limit"):
        b.analyze(str(big))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listen_addresses(port: int) -> set[str]:
    """Local addresses of the LISTEN sockets on ``port`` (Linux /proc/net/tcp{,6})."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(addr)
                words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]  # per-32-bit-word little endian
                out.add(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, b"".join(words)))
    return out


@pytest.fixture(scope="module")
def served(backend):
    """``python -m c2ser.cli web --checkpoint CKPT --port PORT``, every other option left at its default."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to see which address the server binds")
    httpx = need_module("httpx")
    _, _, root = backend
    port = _free_port()
    log = open(root / "web.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "c2ser.cli", "web", "--checkpoint", str(root / "ckpt"),
                             "--port", str(port)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code
            except httpx.TransportError:
                time.sleep(0.5)
        log.seek(0)
        assert status == 200, f"c2ser web did not serve its page (exit {proc.poll()}):\n{log.read()[-3000:]}"
        yield proc, port, httpx
        assert proc.poll() is None, "the server died during the tests"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0  # closed cleanly, not killed
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def test_web_command_with_defaults_serves_on_localhost_only(served):
    proc, port, httpx = served
    page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert page.status_code == 200 and "C2SER demo" in page.text
    assert _listen_addresses(port) == {"127.0.0.1"}


def test_server_refuses_an_oversize_upload(served, backend):
    proc, port, httpx = served
    _, clips, _ = backend
    url = f"http://127.0.0.1:{port}/gradio_api/upload"
    big = httpx.post(url, files={"files": ("big.wav", b"\0" * (DEFAULT_LIMIT + 1), "audio/wav")}, timeout=60)
    assert big.status_code == 413 and f"maximum allowed size of {DEFAULT_LIMIT} bytes" in big.text
    small = httpx.post(url, files={"files": ("clip0.wav", clips[0].read_bytes(), "audio/wav")}, timeout=60)
    assert small.status_code == 200
    (stored,) = small.json()
    assert Path(stored).name == "clip0.wav" and Path(stored).read_bytes() == clips[0].read_bytes()


def test_upload_limit_is_whole_bytes(backend):
    b, _, _ = backend
    limit = DemoBackend(b.model, b.processor, max_upload_mb=20.0).max_bytes
    assert limit == 20971520 and type(limit) is int  # gradio's max_file_size takes an int, not a float
    assert DemoBackend(b.model, b.processor, max_upload_mb=0.5).max_bytes == 524288
    with pytest.raises(ValueError, match="positive"):
        DemoBackend(b.model, b.processor, max_upload_mb=0)


def test_page_in_headless_chromium(backend):
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        missing("chromium", f"it is not at {CHROMIUM} nor on PATH")
    pw = need_module("playwright.sync_api", "playwright")
    from c2ser.inference.web import launch

    b, clips, _ = backend
    port = _free_port()
    demo = launch(b, "127.0.0.1", port, block=False)
    try:
        with pw.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/", timeout=60000)
            page.locator("input[type=file]").first.set_input_files(str(clips[0]))
            page.wait_for_timeout(1500)
            page.locator("#analyze").click()
            page.wait_for_function("document.querySelector('#status') && "
                                   "document.querySelector('#status').innerText.includes('Emotion:')", timeout=60000)
            status = page.locator("#status").inner_text()
            browser.close()
    finally:
        demo.close()
    emotion, _, _ = b.analyze(str(clips[0]))
    assert f"Emotion: {emotion}" in status


def test_sigterm_during_gradio_start_up_closes_cleanly(monkeypatch):
    """CI once sent SIGTERM while gradio's own start-up check ran inside ``demo.launch``; the old handler raised
    KeyboardInterrupt there and the server died with a traceback. Now the signal only sets an event."""
    import c2ser.inference.web as web
    from c2ser.commands.web import stop_on_signals

    calls = []

    class StartingDemo:  # stands in for gradio.Blocks: the signal arrives in the middle of launch()
        is_running = True

        def launch(self, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler runs here, inside launch
            calls.append("launched")

        def close(self):
            calls.append("closed")

    monkeypatch.setattr(web, "build_demo", lambda backend: StartingDemo())
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stop = stop_on_signals()
        start = time.time()
        web.launch(type("B", (), {"max_bytes": 1})(), stop=stop)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert calls == ["launched", "closed"] and stop.is_set() and time.time() - start < 5
