"""Benchmark: what each output layer costs and gives on the same C2SER backbone.

Gen-SER head (1, 2, 4, 8 sampling steps), the CE head, implicit autoregressive decoding and explicit-CoT
autoregressive decoding: per-clip latency (batch of 1, median over clips), throughput (clips/s, batches of 16)
and UA on a test manifest. Heads run on the LLM prefill of ``[prompt][BOS speech EOS]`` (no decoding).

    bash recipes/tiny/run.sh && python bench/heads.py --size tiny --exp exp/tiny     # trained tiny system + UA
    python bench/heads.py --size tiny --random          # tiny backbone, random weights: cost only
    python bench/heads.py --size small --repeats 2 --latency-clips 4   # Qwen2-0.5B dims, random weights, bf16
    python bench/heads.py --device cuda --size full     # Qwen2-7B-architecture backbone, random weights: cost only

With random weights no answer stops early, so AR decoding runs exactly ``--implicit-tokens`` (10: "The emotion of
this speech is happy." + end token) or ``--explicit-tokens`` (96, a typical chain-of-thought answer) steps.
Latency: one clip at a time, median over ``--latency-clips`` clips; throughput: batches of 16, median of
``--repeats`` passes; the systems are measured in alternation (a shared machine's load hits all alike).
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

from _common import bench_model_config, build_c2ser, dtype_name, emit, load_average, parser  # noqa: E402


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--exp", default="exp/tiny", help="tiny: the demo's experiment directory")
    p.add_argument("--latency-clips", type=int, default=8)
    p.add_argument("--random", action="store_true", help="tiny: random weights instead of the trained demo system")
    p.add_argument("--steps", default="1,2,4,8", help="Gen-SER sampling steps to measure")
    p.add_argument("--implicit-tokens", type=int, default=10)
    p.add_argument("--explicit-tokens", type=int, default=96)
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

    load_before = load_average()
    tmp = tempfile.TemporaryDirectory()
    trained = args.size == "tiny" and not args.random
    if trained:
        exp = Path(args.exp)
        if not (exp / "head_gen_ser" / "final").is_dir():
            raise SystemExit(f"{exp}: run the tiny recipe first (bash recipes/tiny/run.sh --exp {exp}), or --random")
        model = load_model(exp / "head_gen_ser" / "final").to(args.device)
        heads = {"gen_ser": load_head(exp / "head_gen_ser" / "final")[0], "ce": load_head(exp / "head_ce" / "final")[0]}
        rows, feats, labels = read_rows(exp / "data" / "test.jsonl"), exp / "features", load_head(exp / "head_ce" / "final")[1].labels
    else:  # cost only: random weights
        model = build_c2ser(args.size, args.device, tmp.name).eval()
        corpus = make_toy_corpus(Path(tmp.name) / "c", per_class=8, ssl_dim=model.cfg.ssl.dim)
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

    steps = [int(n) for n in args.steps.split(",")]
    systems = {f"Gen-SER, {n} step{'s' if n > 1 else ''}": heads_fn("gen_ser", n) for n in steps}
    systems.update({"CE head": heads_fn("ce", None),
                    f"implicit AR decoding ({args.implicit_tokens} tokens max)": ar_fn("implicit", args.implicit_tokens),
                    f"explicit-CoT AR decoding ({args.explicit_tokens} tokens max)": ar_fn("explicit", args.explicit_tokens)})

    def timed(fn, batch):
        sync()
        t = time.perf_counter()
        out = fn(batch)
        sync()
        return time.perf_counter() - t, out

    lat = {k: [] for k in systems}
    thr = {k: [] for k in systems}
    preds = {}
    with torch.no_grad():
        for fn in systems.values():
            fn(items[:1])  # warm-up
        for it in items[: args.latency_clips]:  # in alternation
            for name, fn in systems.items():
                lat[name].append(timed(fn, [it])[0])
        for _ in range(args.repeats):
            for name, fn in systems.items():
                t, out = 0.0, []
                for j in range(0, len(items), 16):
                    dt, o = timed(fn, items[j: j + 16])
                    t, out = t + dt, out + o
                thr[name].append(t)
                preds[name] = out
    lat = {k: statistics.median(v) for k, v in lat.items()}
    thr = {k: len(items) / statistics.median(v) for k, v in thr.items()}
    out = []
    for name in systems:
        ua = f"{100 * ser_metrics(refs, preds[name], classes)['UA']:.1f}" if trained else "–"
        out.append([name, f"{1000 * lat[name]:.1f}", f"{thr[name]:.1f}", ua])
    names = list(systems)
    g1, imp, exp_ = names[0], names[-2], names[-1]
    ratios = {"latency_implicit_over_gen_ser": lat[imp] / lat[g1], "latency_explicit_over_gen_ser": lat[exp_] / lat[g1],
              "throughput_gen_ser_over_implicit": thr[g1] / thr[imp],
              "throughput_gen_ser_over_explicit": thr[g1] / thr[exp_]}
    dtype = dtype_name(bench_model_config(args.size, args.device)["dtype"])
    title = (f"Output layers, size={args.size}{'' if trained else ' (random weights)'}, device={args.device}, {dtype}, "
             f"{len(items)} clips (latency: median over {args.latency_clips} single clips; clips/s: median of "
             f"{args.repeats} passes in batches of 16; in alternation); load average before {load_before}, after "
             f"{load_average()}")
    emit(args, title, ["output layer", "latency per clip (ms)", "clips/s (batch 16)", "UA %"], out, dtype=dtype,
         **ratios)
    print(f"\n{g1} vs implicit: {ratios['latency_implicit_over_gen_ser']:.1f}× lower latency, "
          f"{ratios['throughput_gen_ser_over_implicit']:.1f}× clips/s; vs explicit: "
          f"{ratios['latency_explicit_over_gen_ser']:.1f}× lower latency, "
          f"{ratios['throughput_gen_ser_over_explicit']:.1f}× clips/s")


if __name__ == "__main__":
    main()
