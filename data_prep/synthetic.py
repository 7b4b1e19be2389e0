"""Build the synthetic emotional-speech corpus (espeak-ng + sox) used by the tiny demo recipe and CI.

    python data_prep/synthetic.py --out exp/tiny/data/synthetic [--per-class 80] [--emotions neutral,happy,sad,angry]
"""
import argparse

from c2ser.data.synthetic import build_synthetic_corpus
from c2ser.labels import EMOTIONS


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--emotions", default=",".join(EMOTIONS))
    ap.add_argument("--per-class", type=int, default=80, help="training clips per emotion")
    ap.add_argument("--valid-per-class", type=int, default=40, help="valid clips per emotion (held-out voices)")
    ap.add_argument("--test-per-class", type=int, default=60, help="test clips per emotion (held-out voices)")
    ap.add_argument("--langs", default="en,zh")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    build_synthetic_corpus(a.out, a.emotions.split(","), a.per_class, a.valid_per_class, a.test_per_class,
                           a.langs.split(","), a.seed, workers=a.workers)


if __name__ == "__main__":
    main()
