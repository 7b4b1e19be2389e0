"""``c2ser build-tiny OUT_DIR [--texts MANIFEST ...]``: tiny random models in the real formats (Whisper
checkpoint, Qwen2 directory with a trained byte-level BPE tokenizer, Emotion2Vec-S fairseq checkpoint)."""
from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("out_dir", help="directory to write the models into")
    p.add_argument("--texts", nargs="*", default=[], help="manifests whose targets/texts the tokenizer learns")
    p.add_argument("--seed", type=int, default=0)


def run(args):
    from c2ser.data.manifest import read_manifest
    from c2ser.testing import build_tiny_models

    texts = []
    for m in args.texts:
        for r in read_manifest(m):
            texts += [t for t in (r.get("text"), r.get("explicit_target"), r.get("implicit_target")) if t]
    paths = build_tiny_models(args.out_dir, seed=args.seed, texts=texts, emotion2vec=True)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
