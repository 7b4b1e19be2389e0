"""Choose the Gen-SER head's sampling step count on the validation split (never on test).

    python eval/select_gen_ser_steps.py --checkpoint exp/tiny/seed0/head_gen_ser/final \\
        --manifest exp/tiny/seed0/data/synthetic/valid.cot.jsonl --corpus synthetic --feature-dir F \\
        [--steps 1,2,4,8] [--write]

The backbone's conditioning of the validation clips is computed once; the head samples with each step count
(per-clip noise seeded by the clip key, as ``c2ser eval``), UA is computed for each, and the best is chosen (ties:
the fewest steps). ``--write`` stores the choice as the head's default (``head/config.yaml``:
``head_stage.gen_ser.steps``, and ``result.valid_ua_by_steps``), so ``c2ser eval --mode gen-ser`` then uses it.
Prints one line per step count and the choice; exit 1 with one ``select_gen_ser_steps.py: error: ...`` line on bad
input.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def select_steps(ua_by_steps: dict[int, float]) -> int:
    """The step count with the best UA; ties go to the fewest steps."""
    return min(ua_by_steps, key=lambda s: (-ua_by_steps[s], s))


def run(checkpoint: str, manifest: str, corpus: str, feature_dir: str | None, steps: list[int],
        write: bool = False) -> dict:
    from omegaconf import OmegaConf

    from c2ser.checkpoint import load_model
    from c2ser.data.manifest import read_manifest
    from c2ser.evaluation.metrics import ser_metrics
    from c2ser.labels import corpus_classes
    from c2ser.models.processor import C2SERProcessor
    from c2ser.training.head_stage import allowed_mask, conditioning, load_head, predict

    head, cfg = load_head(checkpoint)
    if cfg.kind != "gen_ser":
        raise ValueError(f"{checkpoint}: a {cfg.kind} head has no sampling steps")
    rows = read_manifest(manifest)
    if not rows:
        raise ValueError(f"{manifest}: no clips")
    model = load_model(checkpoint)
    processor = C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, model.cfg.whisper.long_audio)
    conds = conditioning(model, processor, rows, feature_dir, cfg.conditioning, progress=False)
    keys, refs = [r["key"] for r in rows], [r["emotion"] for r in rows]
    ua = {}
    for n in steps:
        pred, _ = predict(head, conds, allowed_mask(cfg.labels, corpus), steps=n, keys=keys)
        ua[n] = ser_metrics(refs, [cfg.labels[p] for p in pred], corpus_classes(corpus))["UA"]
        print(f"gen-ser steps={n}: validation UA {100 * ua[n]:.2f} ({len(rows)} clips)")
    chosen = select_steps(ua)
    print(f"chosen on validation: steps={chosen}")
    if write:
        path = Path(checkpoint) / "head" / "config.yaml"
        data = OmegaConf.load(path)
        data.head_stage.gen_ser.steps = chosen
        data.result = {**OmegaConf.to_container(data.get("result", {})), "chosen_steps": chosen,
                       "valid_ua_by_steps": {str(k): v for k, v in ua.items()}}
        OmegaConf.save(data, path)
    return {"chosen": chosen, "valid_ua_by_steps": ua}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="select_gen_ser_steps.py", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a Gen-SER head stage's output (…/head_gen_ser/final)")
    ap.add_argument("--manifest", required=True, help="the validation manifest")
    ap.add_argument("--corpus", required=True, help="label set (e.g. synthetic)")
    ap.add_argument("--feature-dir", help="cached Emotion2Vec-S features")
    ap.add_argument("--steps", default="1,2,4,8", help="comma-separated step counts to try")
    ap.add_argument("--write", action="store_true", help="store the choice as the head's default step count")
    a = ap.parse_args(argv)
    try:
        steps = [int(s) for s in a.steps.split(",")]
        if not steps or min(steps) < 1:
            raise ValueError(f"--steps {a.steps!r}: expected positive integers")
        run(a.checkpoint, a.manifest, a.corpus, a.feature_dir, steps, a.write)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"select_gen_ser_steps.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
