"""Benchmark: peak memory and wall time of the head stage (``c2ser train-head``) at two corpus sizes 4× apart.

The stage computes each batch's conditioning on the fly from the backbone, so its peak RSS should not grow with
the number of training clips; the previous design cached every clip's LLM states in memory first. For each corpus
size this runs the whole command in a fresh process (``--repeats`` times, in alternation) and reports the median
peak RSS (``ru_maxrss`` of the process) and wall time, plus the size of the in-memory conditioning cache the
previous design would have held (positions × LLM width × 4 bytes, computed from the manifest, not measured).

    python bench/head_stage.py --size tiny --clips 256 --repeats 3        # 256 vs 1024 clips, tiny backbone
    python bench/head_stage.py --device cuda --backbone exp/c2ser/stage2/final --ssl-dim 768 --clips 2000

Corpus: the toy tone corpus of ``c2ser.testing`` (4 emotions, cached SSL features), one epoch, Gen-SER head at
the tiny recipe's width (``recipes/c2ser/conf/head_tiny.yaml``), conditioning = LLM states.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, load_average, parser  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# a fresh interpreter per measurement: ru_maxrss of its one child = the command's peak RSS
CHILD = ("import resource, subprocess, sys, time, json; t = time.time(); r = subprocess.run(sys.argv[1:]); "
         "print(json.dumps({'rc': r.returncode, 'wall_s': time.time() - t, "
         "'peak_rss_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))")


def measure(cmd: list[str], env: dict) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, *cmd], env=env, capture_output=True, text=True, cwd=REPO)
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if res["rc"] != 0:
        raise SystemExit(f"train-head failed:\n{proc.stderr[-3000:]}")
    return res


def cache_mib(manifest: Path, backbone: Path, feature_dir: Path) -> float:
    """MiB of float32 conditioning the previous in-memory design held for this manifest."""
    from c2ser.checkpoint import load_model
    from c2ser.models.processor import C2SERProcessor
    from c2ser.prompts import GEN_SER_PROMPT
    from c2ser.training.data import ManifestDataset, read_rows

    model = load_model(backbone)
    proc = C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, model.cfg.whisper.long_audio)
    ds = ManifestDataset(read_rows(manifest), proc, str(feature_dir), model.cfg.ssl.enabled)
    prompt = len(model.tokenizer(GEN_SER_PROMPT, add_special_tokens=False)["input_ids"])
    ssl = 10 if model.cfg.ssl.enabled else 0
    positions = sum(prompt + ssl + (f + 7) // 8 + 2 for f in ds.frames)
    return positions * model.llm.get_input_embeddings().embedding_dim * 4 / 2 ** 20


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=256, help="training clips of the small corpus (the large: 4x)")
    p.add_argument("--backbone", help="a C2SER checkpoint to use instead of the tiny random backbone")
    p.add_argument("--ssl-dim", type=int, default=48, help="SSL feature width of the toy corpus (the backbone's)")
    p.add_argument("--batch-size", type=int, default=16)
    p.set_defaults(repeats=3)
    args = p.parse_args()
    if args.size != "tiny" and not args.backbone:
        raise SystemExit(f"--size {args.size}: pass --backbone (a checkpoint of that size); only tiny is built here")
    import torch

    from c2ser.checkpoint import save_checkpoint
    from c2ser.models.build import build_model
    from c2ser.testing import build_tiny_models, make_toy_corpus, tiny_model_config

    tmp = Path(tempfile.mkdtemp(prefix="bench_head_stage_"))
    if args.backbone:
        backbone = Path(args.backbone)
    else:
        torch.manual_seed(0)
        backbone = save_checkpoint(build_model(tiny_model_config(build_tiny_models(tmp / "models"))), tmp / "bb")
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", DS_ACCELERATOR="cpu")
    if not args.device.startswith("cuda"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    sizes = {n: make_toy_corpus(tmp / f"corpus{n}", per_class=n // 4, ssl_dim=args.ssl_dim)
             for n in (args.clips, 4 * args.clips)}
    samples = {n: [] for n in sizes}
    for _ in range(args.repeats):  # alternate: a shared machine's load hits both sizes alike
        for n, corpus in sizes.items():
            out = tmp / f"out{n}"
            subprocess.run(["rm", "-rf", str(out)])
            cmd = [sys.executable, "-m", "c2ser.cli", "train-head", "--config", "recipes/c2ser/conf/head.yaml",
                   "--config", "recipes/c2ser/conf/head_tiny.yaml", f"backbone={backbone}",
                   f"train_manifest={corpus['train']}", f"feature_dir={corpus['features']}",
                   "labels=[neutral,happy,sad,angry]", "corpus=synthetic", "epochs=1",
                   f"batch_size={args.batch_size}", "save_every=0", f"output_dir={out}"]
            samples[n].append(measure(cmd, env))
    rows = []
    for n, corpus in sizes.items():
        rss = statistics.median(s["peak_rss_mib"] for s in samples[n])
        wall = statistics.median(s["wall_s"] for s in samples[n])
        rows.append([n, f"{rss:.0f}", f"{wall:.1f}", f"{cache_mib(corpus['train'], backbone, corpus['features']):.1f}"])
    small, large = rows
    ratio = float(large[1]) / float(small[1])
    emit(args, f"Head stage (train-head, 1 epoch, {args.device}, backbone "
         f"{'tiny random' if not args.backbone else args.backbone}), median of {args.repeats}; load {load_average()}",
         ["training clips", "peak RSS (MiB)", "wall (s)", "in-memory cache of the previous design (MiB, computed)"],
         rows, rss_ratio_large_over_small=round(ratio, 3))
    print(f"\npeak RSS ratio {large[0]} / {small[0]} clips: {ratio:.3f}")


if __name__ == "__main__":
    main()
