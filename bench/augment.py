"""Benchmark: a training epoch with augmentation (Emotion2Vec-S online on the augmented wave) vs clean clips with
cached Emotion2Vec-S features.

Same clips, same batches, same model; each pass is what ``c2ser train`` does per batch: the dataset's items
(decode → [augment] → log-mel → [cached SSL features]), ``collate``, forward (Emotion2Vec-S online inside
``speech_from_batch`` when augmenting), backward, AdamW. Both passes are timed in alternation (median of
``--repeats``); also reported: the augmentation alone and Emotion2Vec-S alone per clip, and the ratio.

    python bench/augment.py --device cpu --size tiny [--clips 32] [--repeats 3] [--pitch-prob 0.5] \
        [--telephone-prob 0.2]
    python bench/augment.py --device cpu --size small --clips 8 --repeats 1
    python bench/augment.py --pyroomacoustics      # the reverberation alternative: time and decay per RT60

At ``small`` the model takes 512-d SSL tokens (the Whisper-base width) while Emotion2Vec-S is full width (768-d):
the online encoder runs at full width and its tokens are cut to 512 (the cost is the full encoder's).
Augmentation settings: ``AugmentConfig`` defaults (noise 60 %, reverberation 30 %, gain 50 % of the clips;
coloured noise and babble of the other clips); ``--pitch-prob`` adds pitch shifts, ``--telephone-prob`` the
telephone band (both off by default, as in training).
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (bench_model_config, build_c2ser, build_emotion2vec_checkpoint, dtype_name, emit,  # noqa: E402
                     interleaved_medians, load_average, parser)


class _Cut(torch.nn.Module):
    """Emotion2Vec-S whose utterance tokens are cut to the model's SSL width (``small``)."""

    def __init__(self, enc, dim: int):
        super().__init__()
        self.enc, self.dim = enc, dim

    def utterance_features(self, wavs, mode="tokens"):
        return self.enc.utterance_features(wavs, mode=mode)[..., : self.dim]


def make_corpus(root: Path, n: int, ssl_dim: int, seed: int = 0) -> list[dict]:
    """``n`` clips of 1.5–12 s (the training benchmark's spread) as wav files with measured loudness, volume bins
    and cached SSL features."""
    from c2ser.data.augment import loudness_lufs
    from c2ser.data.cot import add_bins

    rng = np.random.default_rng(seed)
    (root / "feats").mkdir(parents=True)
    rows = []
    for i in range(n):
        sec = float(rng.choice([1.5, 2, 3, 4, 6, 9, 12], p=[.2, .2, .2, .15, .1, .1, .05]))
        t = np.arange(int(sec * 16000)) / 16000
        amp, f0 = rng.uniform(0.05, 0.5), rng.uniform(90, 300)
        wav = (amp * np.sin(2 * np.pi * f0 * t) * (1 + np.sin(2 * np.pi * 4 * t))
               + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
        key = f"clip{i}"
        sf.write(root / f"{key}.wav", wav, 16000)
        np.save(root / "feats" / f"{key}.npy", rng.standard_normal((10, ssl_dim)).astype(np.float32))
        rows.append({"key": key, "audio": str(root / f"{key}.wav"), "duration": sec, "emotion": "happy",
                     "style": {"loudness_lufs": loudness_lufs(wav), "pitch_hz": float(f0), "rate": 4.0},
                     "explicit_target": "The speaker says, at a medium pace with a medium pitch and a medium voice: "
                                        "\"hello\". From these cues, the emotion is happy.",
                     "implicit_target": "The emotion of this speech is happy."})
    add_bins(rows)
    return rows


def epoch(model, proc, ds, batches, opt, device, online: bool) -> None:
    from c2ser.models.processor import to_device
    from c2ser.training.data import collate

    model.ssl_encoder = online
    for b in batches:
        batch = to_device(collate(proc, [ds[i] for i in b], "explicit"), device)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            loss = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad()


def bench_training(args) -> None:
    from c2ser.data.augment import Augmenter
    from c2ser.encoders.emotion2vec import Emotion2VecS
    from c2ser.models.processor import C2SERProcessor
    from c2ser.training.config import AugmentConfig
    from c2ser.training.data import ManifestDataset
    from c2ser.training.sampler import DynamicBatchSampler

    load_before = load_average()
    torch.manual_seed(0)
    dtype = bench_model_config(args.size, args.device)["dtype"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_c2ser(args.size, args.device, tmp / "m", gradient_checkpointing=args.size != "tiny").train()
        e2v_path, _ = build_emotion2vec_checkpoint(args.size, tmp / "e2v.pt")
        e2v = Emotion2VecS.from_pretrained(str(e2v_path)).eval().requires_grad_(False).to(args.device, dtype)
        online = _Cut(e2v, model.cfg.ssl.dim)
        proc = C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, "crop")
        rows = make_corpus(tmp / "clips", args.clips, model.cfg.ssl.dim)
        aug = Augmenter(AugmentConfig(enabled=True, pitch_prob=args.pitch_prob, telephone_prob=args.telephone_prob),
                        rows, seed=0)
        clean_ds = ManifestDataset(rows, proc, str(tmp / "clips" / "feats"), True)
        aug_ds = ManifestDataset(rows, proc, None, True, wave_transform=aug)
        batches = DynamicBatchSampler(clean_ds.frames, clean_ds.tokens, 3900, 1900, 64, seed=0).all_batches(0)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        n_epoch = [0]

        def augmented():
            aug_ds.epoch = n_epoch[0] = n_epoch[0] + 1   # a new draw each pass, as each training epoch
            epoch(model, proc, aug_ds, batches, opt, args.device, online)

        med = interleaved_medians({"clean clips, cached features": lambda: epoch(model, proc, clean_ds, batches, opt,
                                                                                 args.device, None),
                                   "augmented, Emotion2Vec-S online": augmented}, args.repeats, args.device)
        # the two extra costs alone, per clip
        from c2ser.audio import load_audio

        wavs = [load_audio(r["audio"]) for r in rows]
        t = time.perf_counter()
        for w, r in zip(wavs, rows):
            aug(w, r, 0)
        aug_ms = 1000 * (time.perf_counter() - t) / len(rows)
        with torch.no_grad():
            t = time.perf_counter()
            for w in wavs:
                online.utterance_features([w])
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            e2v_ms = 1000 * (time.perf_counter() - t) / len(rows)
    audio_s = sum(r["duration"] for r in rows)
    (c_name, c), (a_name, a) = med.items()
    emit(args, f"{args.clips} clips (1.5–12 s, {audio_s:.0f} s of audio), {len(batches)} batches, size={args.size}, "
         f"device={args.device}, {dtype_name(dtype)}, pitch_prob={args.pitch_prob:g}, "
         f"telephone_prob={args.telephone_prob:g}, median of {args.repeats} epochs each, in alternation; "
         f"load average before {load_before}, after {load_average()}",
         ["training epoch", "s per epoch", "ms per clip", "audio s per s"],
         [[name, f"{v:.2f}", f"{1000 * v / args.clips:.0f}", f"{audio_s / v:.1f}"] for name, v in med.items()],
         ratio=a / c, pitch_prob=args.pitch_prob, telephone_prob=args.telephone_prob, augment_ms_per_clip=aug_ms,
         emotion2vec_ms_per_clip=e2v_ms)
    print(f"\naugmented + online / clean + cached: {a / c:.2f}× the time per epoch; per clip alone: augmentation "
          f"{aug_ms:.1f} ms, Emotion2Vec-S {e2v_ms:.1f} ms")


def bench_reverberation(args) -> None:
    """pyroomacoustics' image-source room (Sabine absorption for the asked RT60) vs our synthetic impulse response:
    time per impulse response and the RT60 measured on it (Schroeder decay, -5 to -35 dB)."""
    from c2ser.data.augment import key_rng, synthetic_rir

    def t30(h):
        e = np.cumsum((np.asarray(h, float) ** 2)[::-1])[::-1]
        edc = 10 * np.log10(e / e[0] + 1e-300)
        t = np.arange(len(h)) / 16000
        fit = (edc <= -5) & (edc >= -35)
        return -60 / np.polyfit(t[fit], edc[fit], 1)[0]

    try:
        import pyroomacoustics as pra
    except ImportError:
        pra = None
        print("pyroomacoustics is not installed (pip install pyroomacoustics): only ours is timed")

    def room(rt60):
        dims = [6.0, 5.0, 3.0]
        absorption, max_order = pra.inverse_sabine(rt60, dims)
        r = pra.ShoeBox(dims, fs=16000, materials=pra.Material(absorption), max_order=max_order)
        r.add_source([2.0, 3.1, 1.5])
        r.add_microphone([4.0, 2.0, 1.2])
        r.compute_rir()
        return r.rir[0][0]

    rows = []
    for rt60 in (0.3, 0.6, 1.0):
        fns = {"ours": lambda: synthetic_rir(rt60, key_rng(rt60))}
        if pra is not None:
            fns["pyroomacoustics"] = lambda: room(rt60)
        for name, fn in fns.items():
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                h = fn()
                times.append(time.perf_counter() - t)
            rows.append([name, f"{rt60:g}", f"{1000 * statistics.median(times):.1f}", f"{t30(h):.3f}"])
    emit(args, f"Room impulse responses, 16 kHz, median of {args.repeats}; load average {load_average()}",
         ["generator", "asked RT60 (s)", "ms per impulse response", "measured RT60 (s)"], rows)


def main():
    ap = parser(__doc__.splitlines()[0])
    ap.set_defaults(repeats=3)
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--pitch-prob", type=float, default=0.0, help="data.augment.pitch_prob (pitch shifts; 0: off)")
    ap.add_argument("--telephone-prob", type=float, default=0.0,
                    help="data.augment.telephone_prob (the telephone band; 0: off)")
    ap.add_argument("--pyroomacoustics", action="store_true", help="time the reverberation alternatives instead")
    args = ap.parse_args()
    if args.pyroomacoustics:
        bench_reverberation(args)
    else:
        bench_training(args)


if __name__ == "__main__":
    main()
