"""``c2ser eval``: evaluate a checkpoint on a manifest (deterministic greedy decoding by default)."""
from __future__ import annotations

from c2ser.commands._model_args import add_loading_arguments, model_overrides

EPILOG = ("The manifest is checked first: unusable rows (missing field, label outside the corpus's label set, "
          "unreadable / non-finite / too short audio, missing or bad cached features, duplicate keys) get one "
          "stderr line each and go to OUT/rejects.jsonl; the others are evaluated. An existing OUT/predictions.jsonl "
          "is resumed only when it was written by the same checkpoint, mode, decoding, manifest and corpus "
          "(OUT/*.fingerprint.json); otherwise eval refuses unless --overwrite.")


def add_arguments(p):
    p.epilog = EPILOG
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint directory (e.g. exp/tiny/stage2/final), a head stage's output (gen-ser), "
                        "or official:PATH/C2SER_llm.pt (with --qwen2-dir)")
    p.add_argument("--manifest", required=True, nargs="+",
                   help="test manifest(s); several are evaluated with one model load, into OUT/<corpus>")
    p.add_argument("--corpus", required=True, nargs="+",
                   help="label set to score each manifest with: emo_emilia, meld, casia, synthetic (one per manifest)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--mode", default="implicit", choices=["implicit", "explicit", "gen-ser"])
    p.add_argument("--feature-dir", help="cached Emotion2Vec-S features")
    p.add_argument("--decoding", default="greedy", help="greedy | beam4 | official | sample")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; several = stability report")
    p.add_argument("--group-by", help="report per value of this field too (language, fold, ...)")
    p.add_argument("--max-new-tokens", type=int, help="default 128; 400 with --decoding official (the release's)")
    p.add_argument("--limit", type=int, help="evaluate the first N clips only")
    p.add_argument("--overwrite", action="store_true", help="discard predictions already in --out and start over")
    add_loading_arguments(p)


def run(args):
    from pathlib import Path

    from c2ser.evaluation.run import evaluate

    if len(args.manifest) != len(args.corpus):
        raise ValueError(f"{len(args.manifest)} manifests but {len(args.corpus)} corpora: give one --corpus each")
    several = len(args.manifest) > 1
    loaded = None
    if several:
        from c2ser.evaluation.inference import process_state
        from c2ser.inference.loading import load_for_inference

        state = process_state()  # several processes (accelerate launch): one device each
        device = str(state.device) if state is not None and args.device == "auto" else args.device
        loaded = load_for_inference(args.checkpoint, args.ssl_checkpoint, device, model_overrides(args),
                                    args.qwen2_dir)
    for manifest, corpus in zip(args.manifest, args.corpus):
        out = str(Path(args.out) / corpus) if several else args.out
        r = evaluate(args.checkpoint, manifest, corpus, out, args.mode, args.feature_dir, args.decoding,
                     [int(s) for s in args.seeds.split(",")], args.group_by, args.max_new_tokens, args.device,
                     args.limit, overrides=model_overrides(args), ssl_checkpoint=args.ssl_checkpoint,
                     qwen2_dir=args.qwen2_dir, overwrite=args.overwrite, loaded=loaded)
        if r is None:  # not process 0 of a data-parallel run: process 0 reports
            continue
        print(f"{corpus} [{args.mode}] n={r['n']} WA={100 * r['WA']:.2f} UA={100 * r['UA']:.2f} "
              f"macro-F1={100 * r['macro_F1']:.2f} unparsed={100 * r['unparsed_rate']:.2f}%  → {out}")
