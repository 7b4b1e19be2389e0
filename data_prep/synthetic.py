"""Build the synthetic emotional-speech corpus (espeak-ng + sox) used by the tiny demo recipe and CI.

    python data_prep/synthetic.py --out exp/tiny/data/synthetic [--per-class 80] [--emotions neutral,happy,sad,angry]
    python data_prep/synthetic.py --draw-test-voices    # print the test split's voice draw (its rule) and exit
"""
import argparse
import sys

from c2ser.data.synthetic import TEST_VARIANTS, build_synthetic_corpus, draw_test_variants
from c2ser.labels import EMOTIONS


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    ap.add_argument("--draw-test-voices", action="store_true",
                    help="apply the test split's voice rule (c2ser.data.synthetic.draw_test_variants), print, exit")
    ap.add_argument("--emotions", default=",".join(EMOTIONS))
    ap.add_argument("--per-class", type=int, default=80, help="training clips per emotion")
    ap.add_argument("--valid-per-class", type=int, default=40, help="valid clips per emotion (held-out voices)")
    ap.add_argument("--valid2-per-class", type=int, default=30,
                    help="second validation split's clips per emotion (the demo's former test voices and sentences)")
    ap.add_argument("--valid3-per-class", type=int, default=0,
                    help="third validation split's clips per emotion (the test draw's unused voices, new sentences)")
    ap.add_argument("--test-per-class", type=int, default=60, help="test clips per emotion (held-out voices)")
    ap.add_argument("--langs", default="en,zh")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=4)
    a = ap.parse_args()
    if a.draw_test_voices:
        drawn, why = draw_test_variants()
        for variant, reason in why.items():
            print(f"{variant}: {reason}")
        print(f"drawn: {drawn} (c2ser/data/synthetic.py TEST_VARIANTS: {TEST_VARIANTS})")
        return
    if not a.out:
        ap.error("--out is required")
    try:
        build_synthetic_corpus(a.out, a.emotions.split(","), a.per_class, a.valid_per_class, a.test_per_class,
                               a.langs.split(","), a.seed, workers=a.workers, valid2_per_class=a.valid2_per_class,
                               valid3_per_class=a.valid3_per_class)
    except (ValueError, FileNotFoundError) as e:   # a bad count or emotion, a missing tool: one line
        sys.exit(f"synthetic.py: error: {e}")


if __name__ == "__main__":
    main()
