"""``c2ser validate-manifest PATH [--no-files]``: check a manifest (fields, labels, duplicate keys, files)."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("path")
    p.add_argument("--no-files", action="store_true", help="do not check that audio files exist")


def run(args):
    from c2ser.data.manifest import read_manifest, validate_manifest

    rows = read_manifest(args.path)
    problems = validate_manifest(rows, check_files=not args.no_files, name=args.path)
    for p in problems:
        print(p)
    print(f"{args.path}: {len(rows)} rows, {len(problems)} problems")
    return 1 if problems else 0
