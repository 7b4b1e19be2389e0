"""``c2ser web`` under concurrent load, on 127.0.0.1 only: a real server process, concurrent gradio clients sending a
mix of valid clips, a 30-s clip, a non-audio file and an oversize file. Every valid upload gets ``c2ser predict``'s
answer, every bad one a clear message, the server stays up with bounded memory, uploads are deleted after their
lifetime, each session chats about its own clip, and a full queue refuses at once instead of hanging.

CI runs 4 clients x 3 uploads; ``C2SER_WEB_LOAD=16x5`` runs the issue's full count (timings: bench/web_load.py).
"""
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from c2ser.inference.web_load import env_for_server, mixed_schedule, rss_mb, run_load, serve

gradio_client = pytest.importorskip("gradio_client")
CLIENTS, UPLOADS = (int(x) for x in os.environ.get("C2SER_WEB_LOAD", "4x3").split("x"))
MAX_UPLOAD = 2**20          # the server's --max-upload-mb 1
UPLOAD_TTL_S = 6            # --upload-ttl-s: long enough for a queued upload to be analysed on a loaded machine
# Peak RSS of the server over its RSS once up, before any request. What serving adds: torch's and gradio's first-use
# allocations and worker-thread stacks (glibc arenas capped at 2 by c2ser web), the model's activations (tiny: well
# under 10 MB per analysis, --concurrency 2 at once), the upload bodies in flight (at most one per client: CLIENTS x
# 1 MB) and gradio's per-event/session bookkeeping (kilobytes each). Measured: +90-110 MB at 4x3, +110-170 MB at 16x5,
# levelling off over repeated 16x5 rounds (bench/web_load.py --json). So 200 MB: at 16x5 a leak of the uploads or the
# clips' audio (>= 1 MB a request) crosses it; at the CI count (12 requests) only a leak of ~9 MB a request would.
RSS_BOUND_MB = 200


@pytest.fixture(scope="module")
def demo(tiny_models, tmp_path_factory):
    from inference_fixtures import make_checkpoint_and_clips

    root = tmp_path_factory.mktemp("web_load")
    ckpt, feats, clips = make_checkpoint_and_clips(tiny_models, root, n=3)
    rng = np.random.default_rng(1)
    long30 = root / "long30.wav"  # exactly the encoder's 30 s: analysed whole, not cropped
    sf.write(long30, (0.1 * rng.standard_normal(16000 * 30)).astype(np.float32), 16000, subtype="PCM_16")
    np.save(feats / "long30.npy", rng.standard_normal((10, 48)).astype(np.float32))
    notes, big = root / "notes.wav", root / "big.wav"
    notes.write_text("not audio at all")
    big.write_bytes(b"\0" * (MAX_UPLOAD + 1))
    return root, ckpt, feats, [*clips, long30], notes, big


def predict_answers(ckpt, feats, clips, capsys) -> dict[str, dict]:
    """``c2ser predict --mode explicit --json`` (in-process, one clip per batch as the page does) by file name."""
    from c2ser.cli import main

    capsys.readouterr()
    assert main(["predict", *map(str, clips), "--mode", "explicit", "--json", "--batch-size", "1",
                 "--checkpoint", str(ckpt), "--ssl-features", str(feats), "--max-new-tokens", "8"]) == 0
    return {Path(r["file"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}


def test_concurrent_mixed_uploads(demo, capsys):
    from c2ser.inference.chat import ChatSession
    from c2ser.inference.loading import audio_item, load_for_inference
    from c2ser.inference.predict import label_word_scores

    root, ckpt, feats, valid, notes, big = demo
    files = [valid[0], big, valid[1], notes, valid[3], valid[2]]  # every kind within any client's first 3 uploads
    schedule = mixed_schedule(files, CLIENTS, UPLOADS)
    gradio_tmp = root / "gradio_tmp"

    args = ["--checkpoint", str(ckpt), "--ssl-features", str(feats), "--max-upload-mb", "1", "--max-new-tokens", "8",
            "--concurrency", "2", "--upload-ttl-s", str(UPLOAD_TTL_S)]
    t0 = time.time()
    with serve(args, root / "web.log", env=env_for_server(gradio_tmp)) as (server, url):
        started = time.time() - t0
        idle_mb = rss_mb(server.pid, "VmRSS")
        answers, wall = run_load(url, schedule, MAX_UPLOAD, request_timeout_s=120, total_timeout_s=300)
        own_chats = _two_sessions_chat(url, valid[0], valid[1])
        last_upload, peak_mb = time.time(), rss_mb(server.pid)
        assert server.poll() is None, "the server died under load"
        uploaded = _files(gradio_tmp)
        # the expected answers, computed while the server's upload sweep runs
        expected = predict_answers(ckpt, feats, valid, capsys)
        model, proc = load_for_inference(str(ckpt))
        scores = {c.name: label_word_scores(model, proc, audio_item(c, model, feats)) for c in valid}
        want_chats = []
        for clip in valid[:2]:
            chat = ChatSession(model, proc, "explicit", 8, ssl_features=feats)
            chat.load_audio(str(clip))
            want_chats.append(chat.ask("why?"))
        while _files(gradio_tmp) and time.time() < last_upload + 1.1 * UPLOAD_TTL_S + 5:
            time.sleep(0.5)
        left = _files(gradio_tmp)
        swept = time.time() - last_upload

    print(f"\nweb load {CLIENTS}x{UPLOADS}: {len(answers)} answers in {wall:.1f} s; server RSS {idle_mb:.0f} MiB idle, "
          f"peak {peak_mb:.0f} MiB (+{peak_mb - idle_mb:.0f}); server start {started:.1f} s, sweep wait {swept:.1f} s")
    assert len(answers) == CLIENTS * UPLOADS
    for a in answers:
        name = Path(a.file).name
        if name == "notes.wav":  # one line naming the upload, not the server's temporary copy
            assert not a.ok and a.message.startswith("Error: notes.wav: unreadable audio"), a
            assert str(gradio_tmp) not in a.message
        elif name == "big.wav":  # refused by the server itself
            assert not a.ok and a.message.startswith("HTTP 413") and "maximum allowed size of 1048576" in a.message, a
        else:  # c2ser predict's reasoning, label-word scores and label
            want = expected[name]
            assert a.ok and a.reasoning == want["text"], a
            assert a.scores == pytest.approx(scores[name], abs=1e-5)
            top = max(scores[name], key=scores[name].get)
            said = f" (reasoning says: {want['emotion']})" if want["emotion"] and want["emotion"] != top else ""
            assert a.message == f"Emotion: {top}{said}"
    assert peak_mb - idle_mb < RSS_BOUND_MB
    assert uploaded and not left, f"uploads not deleted after {UPLOAD_TTL_S} s: {left}"
    # each session's chat is about its own clip (and the two clips get different answers)
    assert own_chats == want_chats and want_chats[0] != want_chats[1]


def _files(d: Path) -> list[Path]:
    return [p for p in d.rglob("*") if p.is_file()] if d.is_dir() else []


def _two_sessions_chat(url, clip_a, clip_b) -> list[str]:
    """Two sessions analyse different clips, then both ask: the answers, in order a, b."""
    from gradio_client import Client, handle_file

    a, b = Client(url, verbose=False), Client(url, verbose=False)
    a.predict(handle_file(str(clip_a)), api_name="/analyze")
    b.predict(handle_file(str(clip_b)), api_name="/analyze")
    out = [c.predict("why?", [], api_name="/ask")[1][-1]["content"][0]["text"] for c in (a, b)]
    a.close(), b.close()
    return out


def test_full_queue_refuses_at_once():
    """--max-queue 1, --concurrency 1 and a slow backend: of 4 simultaneous requests, the ones that find the queue
    full get gradio_client's QueueError ("Queue is full") at once; the others get their answers."""
    from gradio_client import Client

    from c2ser.inference.web import ServeLimits, launch
    from c2ser.inference.web_load import free_port

    class SlowBackend:  # stands in for DemoBackend: a 1-s analysis
        max_bytes = MAX_UPLOAD
        chat = None

        def new_chat(self):
            return None

        def analyze(self, path, chat=None):
            time.sleep(1.0)
            return "neutral", {"neutral": 1.0}, "calm"

    port = free_port()
    demo = launch(SlowBackend(), "127.0.0.1", port, block=False, limits=ServeLimits(concurrency=1, max_queue=1))
    results = []
    try:
        clients = [Client(f"http://127.0.0.1:{port}/", verbose=False) for _ in range(4)]
        start_line = threading.Barrier(4)

        def one(c):
            start_line.wait(30)
            t = time.perf_counter()
            try:
                results.append((c.predict(None, api_name="/analyze")[0], time.perf_counter() - t))
            except Exception as e:  # noqa: BLE001 - the refusal is what is tested
                results.append((f"{type(e).__name__}: {e}", time.perf_counter() - t))
        threads = [threading.Thread(target=one, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for c in clients:
            c.close()
    finally:
        demo.close()
    full = [r for r in results if r[0].startswith("QueueError")]
    done = [r for r in results if not r[0].startswith("QueueError")]
    assert len(results) == 4 and full and done, results
    assert all("Queue is full" in m and s < 5 for m, s in full), full
    assert all(m == "Emotion: neutral" for m, _ in done), done


@pytest.mark.parametrize("flag", ["--concurrency", "--max-queue", "--upload-ttl-s", "--max-sessions", "--session-ttl-s"])
def test_limits_must_be_positive_whole_numbers(flag, capsys):
    from c2ser.cli import main

    assert main(["web", "--checkpoint", "unused", flag, "0"]) == 1  # refused before any model is loaded
    name = flag[2:].replace("-", "_")
    assert f"c2ser web: error: {name} must be a whole number >= 1, got 0" in capsys.readouterr().err
