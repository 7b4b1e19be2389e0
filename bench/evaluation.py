"""Benchmark: our batched deterministic evaluation vs the official release's protocol on the same model.

Ours: length-bucketed batches, greedy decoding. Official protocol: one clip at a time, 4-beam sampling among
the top-2 tokens (``official`` preset). Same clips, same model, same max_new_tokens; clips/s and speed-up.

    python bench/evaluation.py --device cpu --size tiny
    python bench/evaluation.py --device cuda --size full
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import build_c2ser, median_time, parser, table  # noqa: E402


class _Sink:  # a PredictionWriter that keeps nothing (every run decodes every clip)
    done_keys: set = set()

    def write(self, row):
        pass


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--max-new-tokens", type=int, default=32)
    args = p.parse_args()
    import torch

    from c2ser.evaluation.inference import predict_manifest
    from c2ser.models.processor import C2SERProcessor
    from c2ser.testing import make_toy_corpus
    from c2ser.training.data import read_rows

    with tempfile.TemporaryDirectory() as tmp:
        model = build_c2ser(args.size, args.device, tmp).eval()
        if args.size == "full":
            model.cfg.ssl.dim = 768
        corpus = make_toy_corpus(Path(tmp) / "c", per_class=args.clips // 4, ssl_dim=model.cfg.ssl.dim)
        rows = read_rows(corpus["train"])
        proc = C2SERProcessor(model.tokenizer)

        def run(preset, batch):
            return lambda: predict_manifest(model, proc, rows, _Sink(), "implicit", str(corpus["features"]),
                                            decoding=preset, max_new_tokens=args.max_new_tokens,
                                            max_batch_size=batch, progress=False)

        with torch.no_grad():
            t_official = median_time(run("official", 1), args.repeats, args.device)
            t_ours = median_time(run("greedy", 16), args.repeats, args.device)
    n = len(rows)
    print(f"\nEvaluation, size={args.size}, device={args.device}, {n} clips, {args.max_new_tokens} new tokens max, "
          f"median of {args.repeats}\n")
    print(table(["protocol", "clips/s", "speed-up"],
                [["official: one clip at a time, 4-beam sampling", f"{n / t_official:.1f}", "1.0×"],
                 ["ours: batched (≤ 16), greedy", f"{n / t_ours:.1f}", f"{t_official / t_ours:.1f}×"]]))


if __name__ == "__main__":
    main()
