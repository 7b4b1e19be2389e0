"""Benchmark: batched evaluation vs one clip at a time (same greedy decoding) and vs the official protocol.

Same clips, same model, same max_new_tokens, measured in alternation in one run:
(a) ours, length-bucketed batches of ≤ 16, greedy; (b) one clip at a time, greedy (the batching gain alone);
(c) the official release's protocol: one clip at a time, 4-beam sampling among the top-2 tokens (``official``).
With ``--processes 1,2`` it times instead ``accelerate launch -m c2ser.cli eval`` on a saved checkpoint of ``--size``
with 1 and 2 processes (data-parallel evaluation; CPU processes use gloo).

    python bench/evaluation.py --device cpu --size tiny
    python bench/evaluation.py --device cpu --size small --repeats 3
    python bench/evaluation.py --device cpu --size tiny --processes 1,2 --parallel-clips 1536
    python bench/evaluation.py --device cpu --size small --processes 1,2 --parallel-clips 64
    python bench/evaluation.py --device cuda --size full
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import (bench_model_config, build_c2ser, build_whisper_checkpoint, dtype_name, emit,  # noqa: E402
                     interleaved_medians, load_average, model_config, parser, random_llm)


class _Sink:  # a PredictionWriter that keeps nothing (every run decodes every clip)
    done_keys: set = set()

    def write(self, row):
        """Keep nothing."""


def saved_checkpoint(size: str, device: str, tmp: Path) -> tuple[Path, int]:
    """(a c2ser checkpoint directory that ``c2ser eval`` loads, its SSL width) at a benchmark size, random weights.
    Above tiny the LLM is saved as an HF directory (its Qwen2Config, the tiny test tokenizer) that the checkpoint
    names as its base model, as a real one names Qwen2-7B-Instruct."""
    import shutil

    import torch

    from c2ser.checkpoint import save_checkpoint
    from c2ser.models.build import build_model, load_tokenizer
    from c2ser.testing import build_tiny_models, tiny_model_config

    models = build_tiny_models(tmp / "models")
    torch.manual_seed(0)
    if size == "tiny":
        return save_checkpoint(build_model(tiny_model_config(models)), tmp / "ckpt"), 48
    tok = load_tokenizer(tiny_model_config(models).llm)
    random_llm(size, "cpu", tok).save_pretrained(tmp / "llm")
    tok.save_pretrained(tmp / "llm")
    cfg = model_config(size, device)
    cfg.llm.name_or_path = str(tmp / "llm")
    cfg.whisper.name_or_path = str(build_whisper_checkpoint(size, tmp / "whisper.pt"))
    ckpt = save_checkpoint(build_model(cfg), tmp / "ckpt")
    shutil.rmtree(tmp / "models", ignore_errors=True)
    return ckpt, cfg.ssl.dim


def parallel_eval(args) -> list[list]:
    """clips/s of ``c2ser eval`` (greedy, a saved checkpoint of ``--size``) with 1, 2, … processes. Whole commands
    are timed, so the per-clip cost is (time for all the clips − time for half of them) / the other half: start-up
    cancels."""
    from c2ser.testing import make_toy_corpus

    tmp = Path(tempfile.mkdtemp())
    ckpt, ssl_dim = saved_checkpoint(args.size, args.device, tmp)
    corpus = make_toy_corpus(tmp / "c", per_class=args.parallel_clips // 4, ssl_dim=ssl_dim)
    env = {**os.environ, "ACCELERATE_USE_CPU": "true" if args.device == "cpu" else "false",
           "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    for n in [int(x) for x in args.processes.split(",")]:
        walls = {}
        for limit in (args.parallel_clips // 2, args.parallel_clips):
            launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(n),
                      "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
            launch += ["--multi_gpu"] if n > 1 else []
            cmd = launch + ["-m", "c2ser.cli", "eval", "--checkpoint", str(ckpt), "--manifest", str(corpus["train"]),
                            "--corpus", "synthetic", "--feature-dir", str(corpus["features"]),
                            "--max-new-tokens", str(args.max_new_tokens), "--limit", str(limit), "--overwrite",
                            "--out", str(tmp / f"out{n}-{limit}")]
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            walls[limit] = time.perf_counter() - t
        half = args.parallel_clips - args.parallel_clips // 2
        per_clip = (walls[args.parallel_clips] - walls[args.parallel_clips // 2]) / half
        rows.append([n, walls[args.parallel_clips], 1 / per_clip])
    base = rows[0][2]  # scaling from the unrounded clips/s
    return [[n, f"{wall:.1f}", f"{rate:.2f}", f"{rate / base:.2f}×"] for n, wall, rate in rows]


def emilia_durations(path: Path, n: int) -> list[float]:
    """Clip durations following Emo-Emilia: the shared manifest has no durations or audio, so each is estimated
    from its transcript (Chinese 4.5 characters/s, English 2.7 words/s; 1–30 s)."""
    import json

    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[:n]:
        r = json.loads(line)
        text = r.get("text") or ""
        zh = sum("\u4e00" <= c <= "\u9fff" for c in text)
        sec = zh / 4.5 if zh > len(text) / 3 else len(text.split()) / 2.7
        out.append(min(30.0, max(1.0, sec)))
    return out


def make_corpus(root: Path, durations: list[float], ssl_dim: int) -> dict:
    """Noise clips of the given durations, random cached SSL tokens and a manifest (4 emotions in turn)."""
    import json

    import numpy as np
    import soundfile as sf

    (root / "wav").mkdir(parents=True, exist_ok=True)
    (root / "ssl").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, d in enumerate(durations):
        key, emo = f"clip{i:05d}", ("neutral", "happy", "sad", "angry")[i % 4]
        sf.write(root / "wav" / f"{key}.wav", (0.1 * rng.standard_normal(int(d * 16000))).astype(np.float32), 16000)
        np.save(root / "ssl" / f"{key}.npy", rng.standard_normal((10, ssl_dim)).astype(np.float32))
        rows.append({"key": key, "audio": str(root / "wav" / f"{key}.wav"), "duration": round(d, 4), "emotion": emo,
                     "implicit_target": "", "explicit_target": ""})
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"train": root / "test.jsonl", "features": root / "ssl"}


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--max-new-tokens", type=int, default=12,
                   help="random weights never stop early: every clip decodes this many tokens (an implicit "
                        "answer, 'The emotion of this speech is happy.<eos>', is ~10)")
    p.add_argument("--processes", help="also time `accelerate launch -m c2ser.cli eval` with these process counts")
    p.add_argument("--parallel-clips", type=int, default=48)
    p.add_argument("--durations", help="an Emo-Emilia manifest: --clips clips with its (estimated) durations")
    p.add_argument("--batched-only", action="store_true", help="time only ours (batched greedy): large runs")
    args = p.parse_args()
    if args.processes:  # data-parallel `c2ser eval` only (whole commands, a saved checkpoint of --size)
        rows = parallel_eval(args)
        emit(args, f"`accelerate launch -m c2ser.cli eval`, {args.size} checkpoint (random weights), "
             f"{args.parallel_clips} clips, greedy, "
             f"{args.max_new_tokens} new tokens; clips/s from the time difference between {args.parallel_clips} and "
             f"{args.parallel_clips // 2} clips (start-up cancels); load average {load_average()}",
             ["processes", f"wall time for {args.parallel_clips} clips (s)", "clips/s (eval phase)", "scaling"], rows)
        return
    import torch

    from c2ser.evaluation.inference import predict_manifest
    from c2ser.models.processor import C2SERProcessor
    from c2ser.testing import make_toy_corpus
    from c2ser.training.data import read_rows

    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_c2ser(args.size, args.device, tmp).eval()
        if args.durations and Path(args.durations).is_file():
            durations = emilia_durations(Path(args.durations), args.clips)
            corpus = make_corpus(Path(tmp) / "c", durations, model.cfg.ssl.dim)
            clips = f"{len(durations)} clips with Emo-Emilia's durations ({sum(durations) / len(durations):.1f} s mean)"
        else:
            corpus = make_toy_corpus(Path(tmp) / "c", per_class=args.clips // 4, ssl_dim=model.cfg.ssl.dim)
            clips = f"{4 * (args.clips // 4)} clips (0.6–1.6 s)"
        rows = read_rows(corpus["train"])
        proc = C2SERProcessor(model.tokenizer)

        def run(preset, batch):
            return lambda: predict_manifest(model, proc, rows, _Sink(), "implicit", str(corpus["features"]),
                                            decoding=preset, max_new_tokens=args.max_new_tokens,
                                            max_batch_size=batch, progress=False)

        systems = {"batched": run("greedy", 16)}
        if not args.batched_only:
            systems.update(single=run("greedy", 1), official=run("official", 1))
        with torch.no_grad():
            t = interleaved_medians(systems, args.repeats, args.device)
    n = len(rows)
    dtype = dtype_name(bench_model_config(args.size, args.device)["dtype"])
    if args.batched_only:
        emit(args, f"Evaluation throughput, size={args.size}, device={args.device}, {dtype}, {clips}, "
             f"{args.max_new_tokens} new tokens, median of {args.repeats}; load average {load_average()}",
             ["protocol", "clips/s"], [["ours: batched (≤ 16), greedy", f"{n / t['batched']:.2f}"]], dtype=dtype,
             clips_per_s=n / t["batched"])
        return
    title = (f"Evaluation, size={args.size}, device={args.device}, {dtype}, {clips}, "
             f"{args.max_new_tokens} new tokens, median of {args.repeats} (interleaved); load average before "
             f"{load_before}, after {load_average()}")
    rows_out = [["official: one clip at a time, 4-beam sampling", f"{n / t['official']:.2f}", "1.0×", "–"],
                ["one clip at a time, greedy", f"{n / t['single']:.2f}", f"{t['official'] / t['single']:.2f}×", "1.0×"],
                ["ours: batched (≤ 16), greedy", f"{n / t['batched']:.2f}", f"{t['official'] / t['batched']:.2f}×",
                 f"{t['single'] / t['batched']:.2f}×"]]
    emit(args, title, ["protocol", "clips/s", "vs official (b)", "vs one clip greedy (a)"], rows_out,
         dtype=dtype, ratio_a=t["single"] / t["batched"], ratio_b=t["official"] / t["batched"])


if __name__ == "__main__":
    main()
