"""``c2ser web``: the local gradio demo (binds to 127.0.0.1 unless --host says otherwise; SIGTERM closes it).

Load limits (--concurrency, --max-queue, --upload-ttl-s, --max-sessions, --session-ttl-s): see
:class:`c2ser.inference.web.ServeLimits`."""
from __future__ import annotations

import signal
import threading
from pathlib import Path

from c2ser.commands._model_args import add_model_arguments, load_from_args, max_new_tokens


def limit_malloc_arenas(n: int = 2) -> bool:
    """Cap glibc's malloc arenas (``M_ARENA_MAX``) for this process, unless ``MALLOC_ARENA_MAX`` is set already.

    Without a cap every server worker thread may get its own arena (up to 8 per core) and the memory freed in it stays
    mapped: under repeated 16 x 5 load rounds the server's peak RSS climbed for 4 rounds to ~130 MiB above the capped
    server's, which levelled off after 2-3 (docs/benchmarks.md, web load). glibc fixes the limit when a thread first
    needs an arena of its own, so this runs when ``c2ser web`` is imported, before torch or gradio start threads (the
    CLI imports nothing heavy before it). False where libc has no ``mallopt``."""
    import ctypes
    import ctypes.util
    import os

    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-8, n))  # -8 = M_ARENA_MAX
    except (OSError, AttributeError):
        return False


LIMITED_ARENAS = limit_malloc_arenas()


def add_arguments(p) -> None:
    from c2ser.inference.web import ServeLimits

    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 exposes the demo)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="the server refuses larger uploads (HTTP 413)")
    d = ServeLimits()
    p.add_argument("--concurrency", type=int, default=d.concurrency,
                   help="analyses / chat turns run at once; the others wait in the queue")
    p.add_argument("--max-queue", type=int, default=d.max_queue,
                   help="requests that may wait; one more is refused at once with 'Queue is full'")
    p.add_argument("--upload-ttl-s", type=int, default=d.upload_ttl_s,
                   help="uploaded files are deleted this many seconds after upload")
    p.add_argument("--max-sessions", type=int, default=d.max_sessions,
                   help="browser sessions whose chat is kept in memory (the oldest is dropped first)")
    p.add_argument("--session-ttl-s", type=int, default=d.session_ttl_s,
                   help="a session's chat is dropped this many seconds after its last use")
    add_model_arguments(p)


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and Ctrl-C set. Nothing is raised, so a signal that arrives while gradio is still
    starting (its start-up check runs inside ``demo.launch``) cannot leave a half-started server and a traceback."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    return stop


def run(args) -> int:
    from c2ser.inference.web import DemoBackend, ServeLimits, launch

    if not args.max_upload_mb > 0:
        raise ValueError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    limits = ServeLimits(args.concurrency, args.max_queue, args.upload_ttl_s, args.max_sessions, args.session_ttl_s)
    model, proc = load_from_args(args)
    head = Path(args.checkpoint) / "head"
    backend = DemoBackend(model, proc, head if head.is_dir() else None, args.ssl_features, args.max_upload_mb,
                          max_new_tokens(args, "explicit"))  # the page answers in explicit CoT
    launch(backend, args.host, args.port, stop=stop_on_signals(), limits=limits)
    return 0
