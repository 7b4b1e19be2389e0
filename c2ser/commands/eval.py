"""``c2ser eval``: evaluate a checkpoint on a manifest (deterministic greedy decoding by default)."""
from __future__ import annotations

from pathlib import Path

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
                   help="test manifest(s); several (and several modes) are evaluated with one model load")
    p.add_argument("--corpus", required=True, nargs="+",
                   help="label set to score each manifest with: emo_emilia, meld, casia, synthetic (one per manifest)")
    p.add_argument("--out", required=True, nargs="+",
                   help="output directory: one (several manifests go to OUT/<corpus>) or one per manifest; with "
                        "several modes, {mode} in it is replaced by the mode (else OUT/<mode>)")
    p.add_argument("--mode", default=["implicit"], nargs="+", choices=["implicit", "explicit", "gen-ser"],
                   help="answer mode(s): explicit and implicit can share a run; gen-ser needs a head checkpoint")
    p.add_argument("--feature-dir", help="cached Emotion2Vec-S features")
    p.add_argument("--decoding", default="greedy", help="greedy | beam4 | official | sample")
    p.add_argument("--seeds", default="0", help="comma-separated seeds; several = stability report")
    p.add_argument("--group-by", help="report per value of this field too (language, fold, ...)")
    p.add_argument("--max-new-tokens", type=int,
                   help="answer length limit: default 400 (the release's) for explicit answers and --decoding "
                        "official, 128 for implicit; answers reaching it are counted (truncated)")
    p.add_argument("--limit", type=int, help="evaluate the first N clips only")
    p.add_argument("--condition", default="clean",
                   help="degrade each clip first (drawn per clip key): clean (default), noise:KIND:SNR_DB with KIND "
                        "white|pink|brown|babble (SNR over the whole clip), reverb:RT60_S, telephone (300-3400 Hz "
                        "at 8 kHz); join with + to combine. Not clean: needs --ssl-checkpoint (features online)")
    p.add_argument("--overwrite", action="store_true", help="discard predictions already in --out and start over")
    add_loading_arguments(p)


def output_dirs(manifests: list[str], corpora: list[str], outs: list[str], modes: list[str]) -> list[tuple]:
    """The (manifest, corpus, mode, output directory) runs of one ``c2ser eval`` call, manifests outermost."""
    if len(manifests) != len(corpora):
        raise ValueError(f"{len(manifests)} manifests but {len(corpora)} corpora: give one --corpus each")
    if len(outs) == 1 and len(manifests) > 1:
        if len(set(corpora)) < len(corpora):
            raise ValueError(f"--corpus {' '.join(corpora)} repeats a corpus: give one --out per manifest")
        outs = [str(Path(outs[0]) / c) for c in corpora]
    if len(outs) != len(manifests):
        raise ValueError(f"{len(manifests)} manifests but {len(outs)} --out directories: give one, or one each")
    if len(set(modes)) < len(modes) or ("gen-ser" in modes and len(modes) > 1):
        raise ValueError(f"--mode {' '.join(modes)}: give each mode once; gen-ser (a head checkpoint) alone")

    def with_mode(out: str, mode: str) -> str:
        if "{mode}" in out or len(modes) == 1:
            return out.replace("{mode}", mode)
        return str(Path(out) / mode)

    runs = [(m, c, mode, with_mode(o, mode)) for m, c, o in zip(manifests, corpora, outs) for mode in modes]
    if len({r[3] for r in runs}) < len(runs):
        raise ValueError(f"--out {' '.join(outs)}: two runs would write the same directory")
    return runs


def run(args):
    from c2ser.evaluation.run import evaluate

    from c2ser.data.augment import parse_condition

    parse_condition(args.condition)  # a bad spec: one line, before any model is loaded
    runs = output_dirs(args.manifest, args.corpus, args.out, args.mode)
    loaded = None
    if len(runs) > 1:
        from c2ser.evaluation.inference import process_state
        from c2ser.inference.loading import load_for_inference

        state = process_state()  # several processes (accelerate launch): one device each
        device = str(state.device) if state is not None and args.device == "auto" else args.device
        loaded = load_for_inference(args.checkpoint, args.ssl_checkpoint, device, model_overrides(args),
                                    args.qwen2_dir)
    for manifest, corpus, mode, out in runs:
        r = evaluate(args.checkpoint, manifest, corpus, out, mode, args.feature_dir, args.decoding,
                     [int(s) for s in args.seeds.split(",")], args.group_by, args.max_new_tokens, args.device,
                     args.limit, overrides=model_overrides(args), ssl_checkpoint=args.ssl_checkpoint,
                     qwen2_dir=args.qwen2_dir, overwrite=args.overwrite, loaded=loaded, condition=args.condition)
        if r is None:  # not process 0 of a data-parallel run: process 0 reports
            continue
        cond = "" if args.condition == "clean" else f" ({args.condition})"
        print(f"{corpus} [{mode}]{cond} n={r['n']} WA={100 * r['WA']:.2f} UA={100 * r['UA']:.2f} "
              f"macro-F1={100 * r['macro_F1']:.2f} unparsed={100 * r['unparsed_rate']:.2f}%"
              + (f" truncated={r['truncated']}" if "truncated" in r else "") + f"  → {out}")
    from c2ser.evaluation.inference import end_processes

    end_processes()
