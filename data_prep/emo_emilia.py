"""Emo-Emilia → manifest: ``python data_prep/emo_emilia.py --jsonl Emo-Emilia-ALL.jsonl --root DIR --out OUT``
(DIR holds ``wav/{index}.wav``; clips missing on disk are reported in OUT/rejects.jsonl)."""
import argparse

from c2ser.data.corpora import prepare_emo_emilia

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jsonl", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    prepare_emo_emilia(a.jsonl, a.root, a.out)
