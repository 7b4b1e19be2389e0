"""``c2ser web`` under concurrent load: analyses/s, p50/p95 latency and peak server RSS, per ``--concurrency``.

For each concurrency a real ``c2ser web`` process is started on 127.0.0.1; ``--clients`` gradio clients each send
``--uploads`` files at once (the mix of tests/test_web_load.py: three short clips, a 30-s clip, a non-audio file and
a file over the upload limit), one warm-up round, then ``--repeats`` timed rounds. Analyses/s = answered analyses
(valid clips) per wall second of a round; latency = upload + queue + analysis of one valid clip as its client sees
it. One server per concurrency, all started together, their rounds timed in alternation (so a shared machine's load
hits each alike). Medians over the rounds; peak RSS = the server's VmHWM after the last round (``--json`` also
has it after each round, to show where it levels off).

    python bench/web_load.py --device cpu --size tiny --clients 16 --uploads 5 --concurrency 1,2 --repeats 3
    python bench/web_load.py --device cuda --checkpoint exp/stage2/final --ssl-checkpoint E2V.pt --clips a.wav b.wav

``--size tiny`` serves the tiny demo checkpoint of the web tests (tests/inference_fixtures.py, 8 new tokens);
small/full need a real ``--checkpoint`` (the server loads a checkpoint directory, and the random-weight models of
the other benchmarks are built in memory).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tiny_demo(root: Path) -> tuple[list[str], list[Path]]:
    """The web tests' tiny checkpoint, clips and SSL features, plus a 30-s clip; (server args, valid clips)."""
    import numpy as np
    import soundfile as sf

    sys.path.insert(0, str(ROOT / "tests"))
    from inference_fixtures import make_checkpoint_and_clips

    from c2ser.testing import build_tiny_models

    ckpt, feats, clips = make_checkpoint_and_clips(build_tiny_models(root / "models"), root, n=3)
    rng = np.random.default_rng(1)
    sf.write(root / "long30.wav", (0.1 * rng.standard_normal(16000 * 30)).astype(np.float32), 16000, subtype="PCM_16")
    np.save(feats / "long30.npy", rng.standard_normal((10, 48)).astype(np.float32))
    return ["--checkpoint", str(ckpt), "--ssl-features", str(feats), "--max-new-tokens", "8"], [*clips, root / "long30.wav"]


def main():
    sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]
    from _common import emit, load_average, parser

    from c2ser.inference.web_load import (env_for_server, latency_summary, mixed_schedule, rss_mb, run_load,
                                          serve)

    p = parser(__doc__.splitlines()[0])
    p.set_defaults(repeats=3)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--uploads", type=int, default=5, help="uploads per client per round")
    p.add_argument("--concurrency", default="1,2", help="comma-separated --concurrency values to compare")
    p.add_argument("--max-upload-mb", type=float, default=1.0)
    p.add_argument("--checkpoint", help="a real checkpoint instead of the tiny demo one (needed for small/full)")
    p.add_argument("--ssl-checkpoint"), p.add_argument("--ssl-features")
    p.add_argument("--clips", nargs="+", help="valid clips to send (with --checkpoint)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.checkpoint:
            if not args.clips:
                p.error("--checkpoint needs --clips")
            server_args = ["--checkpoint", args.checkpoint]
            server_args += ["--ssl-checkpoint", args.ssl_checkpoint] if args.ssl_checkpoint else []
            server_args += ["--ssl-features", args.ssl_features] if args.ssl_features else []
            valid = [Path(c) for c in args.clips]
        elif args.size != "tiny":
            p.error(f"--size {args.size} needs --checkpoint DIR --clips ... (only tiny is built here)")
        else:
            server_args, valid = tiny_demo(root)
        max_bytes = int(args.max_upload_mb * 2**20)
        notes, big = root / "notes.wav", root / "big.wav"
        notes.write_text("not audio at all")
        big.write_bytes(b"\0" * (max_bytes + 1))
        files = [valid[0], big, *valid[1:-1], notes, valid[-1]]
        schedule = mixed_schedule(files, args.clients, args.uploads)
        n_valid = sum(f in valid for files_ in schedule for f in files_)

        concs = [int(c) for c in args.concurrency.split(",")]
        rounds, peaks, idle = {c: [] for c in concs}, {c: [] for c in concs}, {}
        with ExitStack() as stack:  # one server per concurrency, all up at once; rounds in alternation (A B A B ...)
            servers = {}
            for conc in concs:
                cmd = [*server_args, "--device", args.device, "--max-upload-mb", str(args.max_upload_mb),
                       "--concurrency", str(conc), "--max-queue", str(max(64, args.clients))]
                servers[conc] = stack.enter_context(serve(cmd, root / f"web-{conc}.log", cwd=ROOT,
                                                          env=env_for_server(root / f"gradio-{conc}")))
            for conc, (proc, url) in servers.items():
                idle[conc] = round(rss_mb(proc.pid, "VmRSS"))
                run_load(url, [s[:1] for s in schedule], max_bytes)  # warm-up: one upload per client
            for _ in range(args.repeats):
                for conc, (proc, url) in servers.items():
                    answers, wall = run_load(url, schedule, max_bytes)
                    bad = [a for a in answers if a.ok != (Path(a.file) in valid)]
                    if len(answers) != len(schedule) * args.uploads or bad:
                        raise SystemExit(f"concurrency {conc}: wrong answers: {bad[:3]} ({len(answers)} answers)")
                    rounds[conc].append(latency_summary(answers, wall))
                    peaks[conc].append(round(rss_mb(proc.pid)))
        rows = []
        for conc in concs:
            med = {k: statistics.median(r[k] for r in rounds[conc]) for k in ("req_per_s", "p50_s", "p95_s")}
            rows.append([conc, f"{med['req_per_s']:.2f}", f"{med['p50_s']:.2f}", f"{med['p95_s']:.2f}", idle[conc],
                         peaks[conc][-1]])
            print(f"concurrency {conc}: {rounds[conc]}; peak RSS after each round {peaks[conc]} MiB", file=sys.stderr)
        details = {c: {"rounds": rounds[c], "peak_rss_mib_after_each_round": peaks[c]} for c in concs}

    emit(args, f"c2ser web under load: {args.clients} clients x {args.uploads} uploads ({n_valid} analyses per round), "
               f"size {args.size}, {args.device}, median of {args.repeats} rounds, load average {load_average()}",
         ["--concurrency", "analyses/s", "p50 latency (s)", "p95 latency (s)", "idle RSS (MiB)", "peak RSS (MiB)"],
         rows, details=details)


if __name__ == "__main__":
    main()
