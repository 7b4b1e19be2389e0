"""Score a predictions JSONL against its references: ``python eval/score.py PRED.jsonl --corpus meld --out DIR``."""
import sys

from c2ser.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
