"""``c2ser validate-manifest PATH [--no-files] [--audio]``: check a manifest (fields, labels, duplicate keys, files;
with --audio also open every clip: readable, finite, long enough, duration and sample rate as the manifest says).

Each problem is one stdout line ``PATH:LINE (key): problem`` or ``FILE: problem``; exit 1 when there is any."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("path")
    p.add_argument("--no-files", action="store_true", help="do not check that audio files exist")
    p.add_argument("--audio", action="store_true",
                   help="open every audio file (progress bar): readable, no NaN/Inf, at least 25 ms, duration "
                        "and sample_rate matching the manifest; over 30 s is reported as a note (cropped at use)")


def run(args):
    from c2ser.data.manifest import read_manifest, validate_manifest
    from c2ser.data.validate import MAX_SECONDS, validate_rows

    dups: list[dict] = []
    rows = read_manifest(args.path, dups, quiet=True)
    problems = [f"{d['source']}: {d['reason']}" for d in dups]
    problems += validate_manifest(rows, check_files=not args.no_files and not args.audio, name=args.path)
    notes = []
    if args.audio:
        kept, rejects = validate_rows([r for r in rows if r.get("audio")], required=(), classes=None,
                                      check_metadata=True, desc="open clips")
        problems += [x["reason"] for x in rejects]
        notes = [f"{r['audio']}: note: longer than {MAX_SECONDS:g} s (cropped to the first {MAX_SECONDS:g} s at "
                 "use unless long_audio=error)" for r in kept if r.get("cropped")]
    for p in problems + notes:
        print(p)
    print(f"{args.path}: {len(rows) + len(dups)} rows, {len(problems)} problems")
    return 1 if problems else 0
