"""Evaluate a checkpoint on a corpus manifest: ``python eval/evaluate.py --checkpoint DIR --manifest M --corpus C
--out DIR [--mode implicit|explicit|gen-ser] [--decoding greedy] [--seeds 0,1,2]`` (same as ``c2ser eval``)."""
import sys

from c2ser.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
