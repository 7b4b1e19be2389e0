"""CASIA → manifests: ``python data_prep/casia.py --root CASIA --out OUT`` (``speaker/emotion/id.wav``;
writes all.jsonl for zero-shot testing and the four leave-one-speaker-out folds in EmoBox's order)."""
import argparse

from c2ser.data.corpora import prepare_casia

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    prepare_casia(a.root, a.out)
