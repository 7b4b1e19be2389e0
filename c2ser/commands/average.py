"""``c2ser average CKPT... --out DIR``: one checkpoint whose trained weights are the mean of several checkpoints of
one run (WeNet's average_model.py), e.g. ``c2ser average exp/c2ser/stage2/epochs/epoch-* --out exp/avg``.
Training does this itself with ``average_last_epochs=N`` (c2ser/training/loop.py)."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("checkpoints", nargs="+", help="checkpoint directories of one run (same trained tensors)")
    p.add_argument("--out", required=True, help="the averaged checkpoint directory (written atomically)")


def run(args):
    from c2ser.averaging import save_average

    out = save_average(args.checkpoints, args.out)
    print(f"averaged {len(args.checkpoints)} checkpoints → {out}")
