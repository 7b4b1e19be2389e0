"""The gradio demo: backend checks, and an end-to-end run in headless Chromium on a tiny model (127.0.0.1 only)."""
import os
import shutil
import socket

import pytest

from c2ser.inference.loading import audio_item, load_for_inference
from c2ser.inference.predict import label_word_scores
from c2ser.inference.web import DemoBackend
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


def test_page_in_headless_chromium(backend):
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        pytest.skip(f"chromium not found at {CHROMIUM}")
    pw = pytest.importorskip("playwright.sync_api")
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
