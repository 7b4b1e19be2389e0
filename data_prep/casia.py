"""CASIA → manifests: ``python data_prep/casia.py --root CASIA --out OUT [--valid-fraction F]``
(``speaker/emotion/id.wav``; writes all.jsonl for zero-shot testing and the four leave-one-speaker-out folds in
EmoBox's order: ``fold_k/test.jsonl`` = one speaker's 300 clips, ``fold_k/train.jsonl`` = the other three
speakers' 900, exactly EmoBox's fold lists).

EmoBox has no validation split. ``--valid-fraction F`` writes ``fold_k/valid.jsonl`` with a fixed fraction F of
the training speakers' clips (by a CRC-32 of the key) and REMOVES them from ``train.jsonl``: such folds are NOT
comparable with EmoBox results. Without it no valid file is written (a stale one is deleted).
Bad clips (unknown emotion folder, unreadable or NaN/Inf audio) go to OUT/rejects.jsonl; a missing root or no
clip kept → one ``casia.py: error: ...`` line and exit 1.
"""
import argparse
import sys

from c2ser.data.corpora import prepare_casia

if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="casia.py", description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--valid-fraction", type=float, default=None,
                    help="also write fold_k/valid.jsonl with this fraction of train (NOT EmoBox-comparable)")
    a = ap.parse_args()
    try:
        prepare_casia(a.root, a.out, a.valid_fraction)
    except (ValueError, OSError) as e:
        sys.exit(f"casia.py: error: {e}")
