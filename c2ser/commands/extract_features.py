"""``c2ser extract-features MANIFEST --checkpoint E2V --out-dir DIR [--mode tokens]``: cache Emotion2Vec-S features."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("manifest", nargs="+", help="manifest(s): one encoder load for all of them")
    p.add_argument("--checkpoint", required=True, help="Emotion2Vec-S checkpoint.pt or FunASR model directory")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--mode", default="tokens", choices=["official", "tokens", "mean"])
    p.add_argument("--batch-size", type=int, default=1,
                   help=">1: length-bucketed batches (for GPUs; on a CPU one clip at a time is as fast, "
                        "docs/benchmarks.md P1); equal to the online path within ~1e-5")
    p.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda ...")


def run(args):
    from c2ser.data.manifest import read_manifest
    from c2ser.encoders.emotion2vec import Emotion2VecS
    from c2ser.features import extract_features
    from c2ser.inference.loading import resolve_device

    encoder = Emotion2VecS.from_pretrained(args.checkpoint).to(resolve_device(args.device))
    for manifest in args.manifest:
        dups: list[dict] = []  # duplicate keys: the first row is kept, the others are rejected
        rows = read_manifest(manifest, dups)
        extract_features(rows, encoder, args.out_dir, args.mode, args.batch_size, earlier_rejects=dups)
