"""``c2ser build-tiny OUT_DIR [--texts MANIFEST ...]``: tiny random models in the real formats (Whisper
checkpoint, Qwen2 directory with a trained byte-level BPE tokenizer, Emotion2Vec-S fairseq checkpoint and, with
``--official PATH``, a checkpoint in the released C2SER layout). ``--llm-pretrain-steps N`` pre-trains the tiny
LLM first (next-token prediction on the texts and on each row's prompt → target), so that a frozen-LLM + LoRA run
has a language model to adapt."""
from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("out_dir", help="directory to write the models into")
    p.add_argument("--texts", nargs="*", default=[], help="manifests whose targets/texts the tokenizer learns")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--llm-pretrain-steps", type=int, default=0,
                   help="pre-train the tiny LLM for this many steps on the texts and prompt → target pairs "
                        "(0: random weights)")
    p.add_argument("--official", help="also write a C2SER_llm.pt in the released layout at tiny width here")


def run(args):
    from c2ser.data.manifest import read_manifest
    from c2ser.testing import build_tiny_models, prompt_answer_pairs

    texts, pairs = [], []
    for m in args.texts:
        rows = list(read_manifest(m))
        for r in rows:
            texts += [t for t in (r.get("text"), r.get("explicit_target"), r.get("implicit_target")) if t]
        pairs += prompt_answer_pairs(rows)
    paths = build_tiny_models(args.out_dir, seed=args.seed, texts=texts, emotion2vec=True,
                              llm_pretrain_steps=args.llm_pretrain_steps, llm_pretrain_pairs=pairs)
    if args.official:
        from c2ser.testing import build_tiny_official

        paths["official"] = build_tiny_official(args.official, paths, seed=args.seed)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
