"""Fake MELD.Raw, CASIA and Emo-Emilia trees in the real raw layouts, spoken by the synthetic emotional voices
(espeak-ng + sox; ffmpeg for MELD's mp4), for the tiny recipe and CI:

    python data_prep/fake_corpora.py --out exp/tiny/raw [--per-class 8] [--seed 0]

writes OUT/MELD.Raw, OUT/CASIA and OUT/Emo-Emilia (see c2ser/data/fake_corpora.py for sizes and details);
data_prep/{meld,casia,emo_emilia}.py then prepare them exactly as the real corpora.
"""
import argparse
import sys

from c2ser.data.fake_corpora import build_fake_corpora


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-class", type=int, default=8,
                    help="clips per emotion: MELD train (dev N/4, test N/2), CASIA and Emo-Emilia in all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    try:
        build_fake_corpora(a.out, a.per_class, a.seed, a.workers)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"fake_corpora: error: {e}")


if __name__ == "__main__":
    main()
