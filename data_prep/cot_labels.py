"""Add measured style (pitch, loudness, rate and their bins) and chain-of-thought targets to a manifest.

    python data_prep/cot_labels.py --manifest data/x/train.jsonl --out data/x/train.cot.jsonl [--group-by speaker]
    [--stats-from data/x/train.jsonl]   # bins from another manifest's μ ± σ (e.g. apply train thresholds to test)

Unreadable clips go to ``<out>.rejects.jsonl`` with the reason; the others are kept. Re-running reuses the
measurements already present in the input rows.
"""
import argparse
from pathlib import Path

from tqdm import tqdm

from c2ser.audio import AudioError, load_audio
from c2ser.data.cot import add_bins, hf_rewriter, measure, targets
from c2ser.data.manifest import Rejects, read_manifest, summary, write_manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--group-by", help="compute the μ ± σ bins within each value of this field (e.g. speaker)")
    ap.add_argument("--rewrite-llm", help="local instruct-LLM directory to paraphrase the explicit targets")
    a = ap.parse_args()
    rows = read_manifest(a.manifest)
    rejects = Rejects(Path(a.out).with_suffix(".rejects.jsonl"))
    kept = []
    for r in tqdm(rows, desc="measure"):
        if r.get("style") and r["style"].get("pitch_hz") is not None:
            kept.append(r)
            continue
        try:
            wav = load_audio(r["audio"], channel=r.get("channel"), start=r.get("start"), end=r.get("end"))
        except AudioError as e:
            rejects.add(r["key"], r["audio"], str(e))
            continue
        r["style"] = measure(wav, r.get("text") or "", r.get("language") or "en")
        kept.append(r)
    add_bins(kept, a.group_by)
    rewrite = hf_rewriter(a.rewrite_llm) if a.rewrite_llm else None
    for r in kept:
        r["explicit_target"], r["implicit_target"] = targets(r, rewrite)
    write_manifest(kept, a.out)
    rejects.write()
    print(summary(kept, rejects, a.out))


if __name__ == "__main__":
    main()
