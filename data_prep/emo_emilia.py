"""Emo-Emilia → manifest: ``python data_prep/emo_emilia.py --jsonl Emo-Emilia-ALL.jsonl --root DIR --out OUT``
(DIR holds ``wav/{index}.wav``). Clips missing on disk, unreadable or with NaN/Inf samples, unknown labels,
malformed lines and repeated keys (the first row is kept) are reported in OUT/rejects.jsonl. A missing or
non-UTF-8 list, a missing DIR, or no clip kept (e.g. a misspelled --root) → one ``emo_emilia.py: error: ...``
line and exit 1."""
import argparse
import sys

from c2ser.data.corpora import prepare_emo_emilia

if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="emo_emilia.py", description=__doc__.splitlines()[0])
    ap.add_argument("--jsonl", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    try:
        prepare_emo_emilia(a.jsonl, a.root, a.out)
    except (ValueError, OSError) as e:
        sys.exit(f"emo_emilia.py: error: {e}")
