"""How true the pitch-shift augmentation is to its target: the pitch moved by the asked semitones, the pace kept.

    python eval/pitch_shift_check.py --manifest exp/tiny_augment/seed0/data/synthetic/train.cot.jsonl
        [--clips 20] [--step 20] [--semitones 2.5] [--n-fft 2048 1024 512]

Takes clips 0, step, 2·step, ... of the manifest, shifts each by ± ``--semitones`` with
:func:`c2ser.data.augment.shift_pitch` at each phase-vocoder frame size, and measures the original and the shifted clip
with the chain-of-thought measures (:func:`c2ser.data.cot.measure`: YIN pitch, syllables per second of speech).
Prints, per frame size, the error of the measured shift (semitones) and the ratio of the measured speaking rates:
a frame that smears syllables into the pauses makes the speech read slower, which could move a clip's pace bin.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from c2ser.audio import load_audio  # noqa: E402
from c2ser.data.augment import shift_pitch  # noqa: E402
from c2ser.data.cot import measure  # noqa: E402
from c2ser.data.manifest import read_manifest  # noqa: E402


def check(rows: list[dict], semitones: float, n_fft: int) -> dict[str, float]:
    errors, ratios, seconds = [], [], 0.0
    for r in rows:
        wav = load_audio(r["audio"], channel=r.get("channel"), start=r.get("start"), end=r.get("end"))
        before = measure(wav, r.get("text") or "", r.get("language") or "en")
        for st in (-semitones, semitones):
            t = time.perf_counter()
            shifted = shift_pitch(wav, st, n_fft=n_fft)
            seconds += time.perf_counter() - t
            after = measure(shifted, r.get("text") or "", r.get("language") or "en")
            errors.append(12 * np.log2(after["pitch_hz"] / before["pitch_hz"]) - st)
            ratios.append(after["rate"] / before["rate"])
    return {"pitch_err_mean": float(np.mean(np.abs(errors))), "pitch_err_max": float(np.max(np.abs(errors))),
            "rate_ratio_mean": float(np.mean(ratios)), "rate_ratio_min": float(np.min(ratios)),
            "rate_ratio_max": float(np.max(ratios)), "ms_per_shift": 1000 * seconds / len(errors)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--step", type=int, default=20)
    ap.add_argument("--semitones", type=float, default=2.5)
    ap.add_argument("--n-fft", type=int, nargs="+", default=[2048, 1024, 512])
    args = ap.parse_args(argv)
    rows = read_manifest(args.manifest)[: args.clips * args.step: args.step]
    if not rows:
        raise SystemExit(f"{args.manifest}: no clips")
    print(f"{len(rows)} clips of {args.manifest}, shifted by ±{args.semitones:g} semitones\n")
    print("| frame (n_fft) | mean abs pitch error (st) | max | rate ratio mean | min | max | ms per shift |")
    print("|---|---|---|---|---|---|---|")
    for n_fft in args.n_fft:
        c = check(rows, args.semitones, n_fft)
        print(f"| {n_fft} | {c['pitch_err_mean']:.2f} | {c['pitch_err_max']:.2f} | {c['rate_ratio_mean']:.3f} | "
              f"{c['rate_ratio_min']:.3f} | {c['rate_ratio_max']:.3f} | {c['ms_per_shift']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
