"""Benchmark: what each output layer costs and gives on the same C2SER backbone.

Gen-SER head (1, 2, 4, 8 sampling steps), the CE head, implicit autoregressive decoding and explicit-CoT
autoregressive decoding: per-clip latency (batch of 1, median over clips), throughput (clips/s, batches of 16)
and UA on a test manifest. Heads run on the LLM prefill of ``[prompt][BOS speech EOS]`` (no decoding).

    bash recipes/tiny/run.sh && python bench/heads.py --size tiny --exp exp/tiny     # trained tiny system + UA
    python bench/heads.py --device cuda --size full     # Qwen2-7B-architecture backbone, random weights: cost only
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import build_c2ser, parser, table  # noqa: E402


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--exp", default="exp/tiny", help="tiny: the demo's experiment directory")
    p.add_argument("--latency-clips", type=int, default=8)
    args = p.parse_args()
    from c2ser.checkpoint import load_model
    from c2ser.evaluation.metrics import ser_metrics
    from c2ser.evaluation.parse import parse_emotion
    from c2ser.heads.factory import HeadConfig, build_head
    from c2ser.labels import EMOTIONS
    from c2ser.models.processor import C2SERProcessor, to_device
    from c2ser.testing import make_toy_corpus
    from c2ser.training.data import ManifestDataset, collate, read_rows
    from c2ser.training.head_stage import load_head

    tmp = tempfile.TemporaryDirectory()
    if args.size == "tiny":
        exp = Path(args.exp)
        if not (exp / "head_gen_ser" / "final").is_dir():
            raise SystemExit(f"{exp}: run the tiny recipe first (bash recipes/tiny/run.sh --exp {exp})")
        model = load_model(exp / "head_gen_ser" / "final").to(args.device)
        heads = {"gen_ser": load_head(exp / "head_gen_ser" / "final")[0], "ce": load_head(exp / "head_ce" / "final")[0]}
        rows, feats, labels = read_rows(exp / "data" / "test.jsonl"), exp / "features", load_head(exp / "head_ce" / "final")[1].labels
    else:  # cost only: random weights at full size
        model = build_c2ser("full", args.device, tmp.name).eval()
        model.cfg.ssl.dim = 768
        corpus = make_toy_corpus(Path(tmp.name) / "c", per_class=8, ssl_dim=768)
        rows, feats, labels = read_rows(corpus["train"]), corpus["features"], list(EMOTIONS)
        dim = model.llm.config.hidden_size
        heads = {k: build_head(HeadConfig(kind=k), labels, dim).to(args.device).eval() for k in ("gen_ser", "ce")}
    heads = {k: h.to(args.device).eval() for k, h in heads.items()}
    model.eval()
    proc = C2SERProcessor(model.tokenizer)
    ds = ManifestDataset(rows, proc, str(feats), model.cfg.ssl.enabled)
    items = [ds[i] for i in range(len(ds))]
    refs = [r["emotion"] for r in rows]
    classes = sorted(set(refs), key=EMOTIONS.index)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def heads_fn(kind, steps):
        def f(batch_items):
            b = to_device(collate(proc, batch_items, "gen-ser", with_targets=False), args.device)
            h, m = model.prefix_hidden_states(b)
            kw = {"steps": steps, "keys": [it["key"] for it in batch_items]} if kind == "gen_ser" else {}
            pred, _ = heads[kind].predict(h.float(), m, **kw)
            return [labels[i] for i in pred.tolist()]
        return f

    def ar_fn(mode, max_new):
        def f(batch_items):
            b = to_device(collate(proc, batch_items, mode, with_targets=False), args.device)
            return [parse_emotion(t).label for t in model.generate(b, max_new_tokens=max_new)]
        return f

    systems = [(f"Gen-SER, {n} step{'s' if n > 1 else ''}", heads_fn("gen_ser", n)) for n in (1, 2, 4, 8)]
    systems += [("CE head", heads_fn("ce", None)), ("implicit AR decoding", ar_fn("implicit", 16)),
                ("explicit-CoT AR decoding", ar_fn("explicit", 96))]
    out = []
    with torch.no_grad():
        for name, fn in systems:
            fn(items[:1])  # warm-up
            lat = []
            for it in items[: args.latency_clips]:
                sync()
                t = time.perf_counter()
                fn([it])
                sync()
                lat.append(time.perf_counter() - t)
            sync()
            t = time.perf_counter()
            preds = [x for j in range(0, len(items), 16) for x in fn(items[j: j + 16])]
            sync()
            dt = time.perf_counter() - t
            ua = ser_metrics(refs, preds, classes)["UA"] if args.size == "tiny" else float("nan")
            out.append([name, f"{1000 * statistics.median(lat):.1f}", f"{len(items) / dt:.1f}",
                        f"{100 * ua:.1f}" if args.size == "tiny" else "–"])
    print(f"\nOutput layers, size={args.size}, device={args.device}, {len(items)} clips "
          f"(latency: median over {args.latency_clips} single clips)\n")
    print(table(["output layer", "latency per clip (ms)", "clips/s (batch 16)", "UA %"], out))


if __name__ == "__main__":
    main()
