"""``c2ser eval``: evaluate a checkpoint on a manifest (deterministic greedy decoding by default)."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (e.g. exp/tiny/stage2/final)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--corpus", required=True, help="label set to score with: emo_emilia, meld, casia, synthetic")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--mode", default="implicit", choices=["implicit", "explicit", "gen-ser"])
    p.add_argument("--feature-dir", help="cached Emotion2Vec-S features")
    p.add_argument("--decoding", default="greedy", help="greedy | beam4 | official | sample")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; several = stability report")
    p.add_argument("--group-by", help="report per value of this field too (language, fold, ...)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--device", default="cpu")
    p.add_argument("--limit", type=int, help="evaluate the first N clips only")


def run(args):
    from c2ser.evaluation.run import evaluate

    r = evaluate(args.checkpoint, args.manifest, args.corpus, args.out, args.mode, args.feature_dir, args.decoding,
                 [int(s) for s in args.seeds.split(",")], args.group_by, args.max_new_tokens, args.device, args.limit)
    print(f"{args.corpus} [{args.mode}] n={r['n']} WA={100 * r['WA']:.2f} UA={100 * r['UA']:.2f} "
          f"macro-F1={100 * r['macro_F1']:.2f} unparsed={100 * r['unparsed_rate']:.2f}%  → {args.out}")
