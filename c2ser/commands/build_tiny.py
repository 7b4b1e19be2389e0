"""``c2ser build-tiny OUT_DIR``: build the tiny random models (Whisper checkpoint, Qwen2 directory)."""
from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("out_dir", help="directory to write the models into")
    p.add_argument("--seed", type=int, default=0)


def run(args):
    from c2ser.testing import build_tiny_models

    paths = build_tiny_models(args.out_dir, seed=args.seed)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
