"""MELD → manifests: ``python data_prep/meld.py --root MELD.Raw --out OUT`` (mp4 → 16 kHz mono wav via ffmpeg:
the centre channel of 5.1 audio, the first channel of stereo; keys meld-dia{D}_utt{U}-{train,dev,test}).
Killed at any moment, it is simply run again: every wav and manifest is complete or absent."""
import argparse
import sys

from c2ser.data.corpora import prepare_meld

if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="meld.py", description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    try:
        prepare_meld(a.root, a.out, a.workers)
    except (ValueError, OSError) as e:
        sys.exit(f"meld.py: error: {e}")
