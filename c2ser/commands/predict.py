"""``c2ser predict AUDIO...``: emotion of one or many files (table or JSON lines); bad files reported, not fatal."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from c2ser.commands._model_args import add_model_arguments, decoding_kwargs, load_from_args


def add_arguments(p) -> None:
    p.add_argument("audio", nargs="+", help="audio files (wav, flac, mp3, mp4, ...)")
    p.add_argument("--mode", choices=("implicit", "explicit", "gen-ser"), default="implicit")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--json", action="store_true", help="one JSON object per file instead of a table")
    add_model_arguments(p)


def run(args) -> int:
    from c2ser.inference.predict import predict_files

    model, proc = load_from_args(args)
    head = Path(args.checkpoint) / "head" if args.mode == "gen-ser" else None
    preds = predict_files(model, proc, args.audio, args.mode, args.batch_size, args.ssl_features, head,
                          **decoding_kwargs(args))
    for p in preds:
        if p.error:
            print(f"c2ser predict: error: {p.error}", file=sys.stderr)
    good = [p for p in preds if not p.error]
    if args.json:
        for p in good:
            print(json.dumps({k: v for k, v in asdict(p).items() if k != "error"}, ensure_ascii=False))
    else:
        for p in good:
            scores = " ".join(f"{k}={v:.2f}" for k, v in p.scores.items())
            print(f"{p.file}\t{p.emotion or '?'}\t{p.text.replace(chr(10), ' ')}{chr(9) + scores if scores else ''}")
    print(f"{len(good)}/{len(preds)} files predicted", file=sys.stderr)
    return 1 if len(good) < len(preds) else 0
