"""A bounded load client for ``c2ser web`` (used by ``tests/test_web_load.py`` and ``bench/web_load.py``).

:func:`serve` starts the real ``c2ser web`` process on 127.0.0.1 and stops it (SIGTERM, then SIGKILL) on exit;
:func:`run_load` sends a fixed schedule of uploads from concurrent clients and returns one :class:`Answer` each.
Audio files go through ``gradio_client`` (upload + the ``/analyze`` queue event, as the page does); files over the
server's upload limit are posted straight to gradio's upload route, because ``gradio_client`` refuses them itself
before sending (a browser does the same), and the point is that the *server* refuses them (HTTP 413).
Everything is bounded: a fixed number of requests, a timeout per request and one for the whole run.
Only loopback URLs are accepted.
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "http://127.0.0.1:"


@dataclass
class Answer:
    client: int
    file: str
    seconds: float
    ok: bool              # the server answered with a result (an "Emotion: ..." status)
    message: str          # the status line, or the error the client got
    scores: dict | None = None
    reasoning: str = ""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of a process from /proc (``VmHWM``: peak resident set; ``VmRSS``: current), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"/proc/{pid}/status has no {field}")


@contextmanager
def serve(args: list[str], log_path, env: dict | None = None, start_timeout_s: float = 180, cwd=None):
    """``python -m c2ser.cli web --port P ARGS`` on 127.0.0.1; yields ``(process, url)`` once its page answers."""
    import httpx

    port = free_port()
    log = open(log_path, "w+")
    proc = subprocess.Popen([sys.executable, "-m", "c2ser.cli", "web", "--host", "127.0.0.1", "--port", str(port),
                             *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    url = f"{LOOPBACK}{port}/"
    try:
        deadline, status = time.time() + start_timeout_s, None
        while time.time() < deadline and proc.poll() is None and status != 200:
            try:
                status = httpx.get(url, timeout=5).status_code
            except httpx.TransportError:
                time.sleep(0.3)
        if status != 200:
            log.seek(0)
            raise RuntimeError(f"c2ser web did not serve its page (exit {proc.poll()}):\n{log.read()[-3000:]}")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _post_upload(url: str, path: Path, timeout_s: float) -> tuple[bool, str]:
    import httpx

    r = httpx.post(url + "gradio_api/upload", files={"files": (path.name, path.read_bytes(), "audio/wav")},
                   timeout=timeout_s)
    return r.status_code == 200, f"HTTP {r.status_code}: {r.text.strip()[:200]}"


def _one(client, url: str, path: Path, max_bytes: int, timeout_s: float) -> tuple[bool, str, dict | None, str]:
    from gradio_client import handle_file

    if path.stat().st_size > max_bytes:
        ok, msg = _post_upload(url, path, timeout_s)
        return False, msg, None, ""  # an oversize upload that the server accepted is a failure of the test
    status, label, reasoning, _ = client.submit(handle_file(str(path)), api_name="/analyze").result(timeout=timeout_s)
    scores = {c["label"]: c["confidence"] for c in (label or {}).get("confidences", [])}
    return status.startswith("Emotion:"), status, scores or None, reasoning


def run_load(url: str, schedule: list[list[Path]], max_bytes: int, request_timeout_s: float = 120,
             total_timeout_s: float = 600) -> tuple[list[Answer], float]:
    """Client ``i`` sends ``schedule[i]`` one file after another, all clients at once; returns (answers, wall s).

    A request that raises (queue full, timeout, connection error) gives an Answer with ``ok=False`` and the
    exception as its message; a client still running after ``total_timeout_s`` is reported as missing answers.
    """
    if not url.startswith(LOOPBACK):
        raise ValueError(f"the load client only talks to 127.0.0.1, not {url}")
    from gradio_client import Client

    answers: list[Answer] = []
    lock = threading.Lock()
    start_line = threading.Barrier(len(schedule))

    def client_loop(i: int, files: list[Path]):
        try:
            client, failed = Client(url, verbose=False), None
        except Exception as e:  # noqa: BLE001 - reported as this client's answers
            client, failed = None, f"{type(e).__name__}: {str(e)[:200]}"
        start_line.wait(timeout=total_timeout_s)
        for f in files:
            t = time.perf_counter()
            try:
                if failed:
                    raise RuntimeError(f"no client: {failed}")
                ok, msg, scores, reasoning = _one(client, url, Path(f), max_bytes, request_timeout_s)
            except Exception as e:  # noqa: BLE001 - every failure is recorded as this request's answer
                ok, msg, scores, reasoning = False, f"{type(e).__name__}: {str(e)[:200]}", None, ""
            with lock:
                answers.append(Answer(i, str(f), time.perf_counter() - t, ok, msg, scores, reasoning))
        if client is not None:
            client.close()

    threads = [threading.Thread(target=client_loop, args=(i, files), daemon=True) for i, files in enumerate(schedule)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, total_timeout_s - (time.perf_counter() - t0)))
    wall = time.perf_counter() - t0
    with lock:
        return list(answers), wall


def mixed_schedule(files: list[Path], clients: int, uploads: int) -> list[list[Path]]:
    """Client ``i``'s ``j``-th upload is ``files[(i + j) % len(files)]``: every file is sent, by different clients
    at the same moment."""
    return [[files[(i + j) % len(files)] for j in range(uploads)] for i in range(clients)]


def latency_summary(answers: list[Answer], wall_s: float) -> dict:
    """requests/s (answered analyses per wall second) and p50/p95 latency (s) of the answered analyses."""
    lat = sorted(a.seconds for a in answers if a.ok)
    if not lat:
        return {"answered": 0, "req_per_s": 0.0, "p50_s": float("nan"), "p95_s": float("nan")}
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    return {"answered": len(lat), "req_per_s": len(lat) / wall_s, "p50_s": statistics.median(lat), "p95_s": p95}


def env_for_server(temp_dir) -> dict:
    """The environment of a served ``c2ser web``: this checkout importable, gradio's files under ``temp_dir``."""
    repo = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=repo + (os.pathsep + path if path else ""), GRADIO_TEMP_DIR=str(temp_dir),
                GRADIO_ANALYTICS_ENABLED="False")
