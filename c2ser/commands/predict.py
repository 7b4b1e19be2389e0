"""``c2ser predict AUDIO...``: emotion of one or many files (table or JSON lines); bad files reported, not fatal."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from c2ser.commands._model_args import add_model_arguments, decoding_kwargs, load_from_args

EPILOG = ("Every file is read and checked before batching: each unusable one gets one stderr line "
          "'c2ser predict: error: FILE: reason' and the others are still predicted. Clips over 30 s are cropped "
          "with a warning (cropped: true) unless --long-audio error. Exit status: 0 when at least one file was "
          "predicted, 1 when none could be.")


def add_arguments(p) -> None:
    p.epilog = EPILOG
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
        elif p.cropped:
            print(f"c2ser predict: warning: {p.file}: longer than 30 s, only the first 30 s were used (cropped)",
                  file=sys.stderr)
    good = [p for p in preds if not p.error]
    if args.json:
        for p in good:
            print(json.dumps({k: v for k, v in asdict(p).items() if k != "error"}, ensure_ascii=False))
    else:
        for p in good:
            scores = " ".join(f"{k}={v:.2f}" for k, v in p.scores.items())
            text = p.text.replace(chr(10), " ") + (" [cropped to 30 s]" if p.cropped else "")
            print(f"{p.file}\t{p.emotion or '?'}\t{text}{chr(9) + scores if scores else ''}")
    print(f"{len(good)}/{len(preds)} files predicted", file=sys.stderr)
    return 0 if good else 1
