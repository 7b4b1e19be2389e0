"""Waveform augmentation (``c2ser train``, ``data.augment``) and evaluation conditions (``c2ser eval --condition``).

One module for both, on 16 kHz float32 waveforms, before the log-mel and before Emotion2Vec-S (both encoders hear
the same audio):

- **additive noise** at a signal-to-noise ratio where SNR = mean power of the whole clip / mean power of the added
  noise (the noise is cut or tiled to the clip's length): files of a noise directory (wav/flac/mp3, searched
  recursively: MUSAN's ``noise/``, ``music/`` layout works as is), generated coloured noise (white; pink, power
  ∝ 1/f; brown, power ∝ 1/f², shaped in the frequency domain) or babble (the sum of 3–6 other clips of the
  manifest, each at unit power);
- **reverberation** with a synthetic room impulse response: a unit direct path followed by Gaussian noise whose
  amplitude decays by 60 dB over the asked RT60 (Polack's statistical model of a diffuse late field), tail energy
  = RT60 / 0.5 s times the direct path's (a bigger reverberation time, a more reverberant room); the output is cut
  to the clip's length and brought back to its mean power;
- **level**: the clip's loudness (measured as :mod:`c2ser.data.cot` measures it: pyloudnorm integrated LUFS, RMS
  dBFS under 0.4 s) is set to its stored ``style.loudness_lufs`` plus a gain drawn in ``gain_db`` *bounded so the
  loudness stays in the clip's volume bin* (low / medium / high at μ ± σ, recomputed from the training rows,
  per ``volume_group_by`` like ``cot_labels.py --group-by``) with ``volume_margin_db`` to spare from each edge.
  After noise, reverberation or a pitch shift the loudness is set back the same way (gain 0 when no gain is drawn):
  the volume word of the chain-of-thought target stays true of what the model hears;
- **pitch** (off by default, ``pitch_prob``): a pitch shift that keeps the duration and the syllables' timing
  (librosa's phase vocoder with 32 ms frames, then soxr), by a number of semitones drawn in ``pitch_semitones``
  *bounded so the clip's stored mean pitch stays in its pitch bin* (μ ± σ of ``style.pitch_hz``, per
  ``volume_group_by`` like the volume bins) with ``pitch_margin_st`` to spare. The shifted clip is then measured
  again as the labels were (:func:`c2ser.data.cot.measure`: YIN pitch, syllables per second of speech) and the shift
  is undone when its pitch or pace falls outside the target's bin: the pitch and pace words of the target stay true
  of what the model hears (a phase vocoder can move the measured pitch a little off the asked shift and blur
  pauses). No speed change: the target describes the pace;
- **telephone**: 300–3400 Hz band at 8 kHz (6th-order Butterworth band-pass, zero phase) and back to
  16 kHz, at the clip's mean power; an evaluation condition, and in training (off by default, ``telephone_prob``)
  applied after the noise (a phone line carries the room and its noise), before the level is set back.

Randomness comes from a generator seeded by (seed, epoch, clip key) in training and by (condition, clip key) in
evaluation (:func:`key_rng`, never the global RNG): a clip's augmentation does not depend on the batch, the order,
the worker or a resume.

Why hand-written reverberation: ``pyroomacoustics`` 0.10 installs here (numpy/scipy only), but its image-source room
takes 0.09 s per impulse response at RT60 = 0.3 s, 0.76 s at 0.6 s and 4.9 s at 1.0 s on this (loaded) CPU, against
< 1 ms for ours, and its measured decay (T30) is 15 % and 22 % longer than the Sabine RT60 it is given at 0.6 and
1.0 s (``python bench/augment.py --pyroomacoustics``, docs/benchmarks.md); ``audiomentations`` 0.43 requires
``soxr<1.0`` (we pin 1.1) and simulates rooms with pyroomacoustics; ``torch-audiomentations`` 0.12 pulls
``torchaudio``, ``julius`` and ``torch-pitch-shift`` and convolves with impulse-response *files* only. The
statistical model above is a few lines of numpy with an exact decay.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import librosa
import numpy as np
import pyloudnorm
import soxr
from scipy.signal import butter, fftconvolve, sosfiltfilt

from c2ser.audio import SAMPLE_RATE, AudioError, load_audio
from c2ser.data.cot import measure, style_stats

NOISE_KINDS = ("white", "pink", "brown", "babble")
NOISE_EXT = (".wav", ".flac", ".mp3")
BINS = ("low", "medium", "high")
MAX_RT60 = 3.0
TAIL_ENERGY_PER_SECOND = 2.0   # tail energy / direct energy = RT60 / 0.5 s
TELEPHONE_BAND = (300.0, 3400.0)
# the pitch shift's phase-vocoder frame (32 ms at 16 kHz): librosa's default 2048 (128 ms) smears syllables into the
# pauses, which the demo's speaking-rate measure then read as 7 % slower speech on average (up to 13 %); at 512 the
# rate reads 0.6 % slower on average and the pitch moves closer to the asked shift (eval/pitch_shift_check.py on
# 20 of the demo's training clips; docs/demo.md, the tenth search)
PITCH_N_FFT = 512
CONDITION_FORMS = ("clean | noise:KIND:SNR_DB (KIND = white, pink, brown, babble) | reverb:RT60_S (0 < RT60 ≤ 3) | "
                   "telephone; several joined with + are applied in order, e.g. reverb:0.6+noise:babble:10")


def key_rng(*parts) -> np.random.Generator:
    """A generator seeded from ``parts`` (e.g. seed, epoch, key): the same parts, the same draws, in any process."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def mean_power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def fit_length(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``x`` cut (at a random offset) or tiled to ``n`` samples."""
    if len(x) < n:
        x = np.tile(x, -(-n // len(x)))
    start = int(rng.integers(0, len(x) - n + 1))
    return x[start: start + n]


def coloured_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (power ∝ 1/f) or brown (power ∝ 1/f²) Gaussian noise, ``n`` samples, zero mean."""
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    exponent = {"pink": 0.5, "brown": 1.0}.get(kind)
    if exponent is None:
        raise ValueError(f"unknown noise colour {kind!r} (white, pink or brown)")
    spec = np.fft.rfft(white)
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec[0] = 0.0
    spec[1:] /= f[1:] ** exponent
    return np.fft.irfft(spec, n)


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` + ``noise`` scaled so that mean power(clean) / mean power(scaled noise) = ``snr_db``."""
    if len(noise) != len(clean):
        raise ValueError(f"noise has {len(noise)} samples, the clip {len(clean)}")
    ps, pn = mean_power(clean), mean_power(noise)
    if ps == 0.0 or pn == 0.0:
        return clean.astype(np.float32)
    scale = np.sqrt(ps / (pn * 10 ** (snr_db / 10)))
    return (clean + scale * noise).astype(np.float32)


def synthetic_rir(rt60: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A room impulse response: unit direct path, then a Gaussian tail decaying 60 dB per ``rt60`` seconds, with
    energy ``TAIL_ENERGY_PER_SECOND · rt60`` (1.5 × RT60 long: the tail ends 90 dB down)."""
    if not 0.0 < rt60 <= MAX_RT60:
        raise ValueError(f"RT60 {rt60} s: expected 0 < RT60 ≤ {MAX_RT60:g}")
    n = max(2, int(round(1.5 * rt60 * sr)))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * 10 ** (-3.0 * t / rt60)   # amplitude: -60 dB at t = rt60
    tail[0] = 0.0
    tail *= np.sqrt(TAIL_ENERGY_PER_SECOND * rt60 / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def reverberate(wav: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """``wav`` convolved with :func:`synthetic_rir`, cut to its length, at its mean power."""
    y = fftconvolve(wav.astype(np.float64), synthetic_rir(rt60, rng))[: len(wav)]
    return _at_power(y, mean_power(wav))


def telephone(wav: np.ndarray) -> np.ndarray:
    """The 300–3400 Hz band at 8 kHz, back at 16 kHz, at the clip's mean power and length."""
    narrow = soxr.resample(wav.astype(np.float32), SAMPLE_RATE, 8000, quality="HQ").astype(np.float64)
    sos = butter(6, TELEPHONE_BAND, btype="bandpass", fs=8000, output="sos")
    narrow = sosfiltfilt(sos, narrow, padlen=min(3 * (2 * len(sos) + 1), len(narrow) - 1))
    wide = soxr.resample(narrow.astype(np.float32), 8000, SAMPLE_RATE, quality="HQ").astype(np.float64)
    wide = np.pad(wide, (0, max(0, len(wav) - len(wide))))[: len(wav)]
    return _at_power(wide, mean_power(wav))


def _at_power(y: np.ndarray, power: float) -> np.ndarray:
    p = mean_power(y)
    return (y * np.sqrt(power / p) if p > 0 else y).astype(np.float32)


# ---- level ----------------------------------------------------------------------------------------------------
_METERS: dict[int, pyloudnorm.Meter] = {}


def loudness_lufs(wav: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Loudness as :func:`c2ser.data.cot.measure` measures it: integrated LUFS, RMS dBFS for short or silent clips."""
    loud = float("-inf")
    if len(wav) >= int(0.4 * sr) + 1:
        meter = _METERS.setdefault(sr, pyloudnorm.Meter(sr))
        loud = float(meter.integrated_loudness(wav.astype(np.float64)))
    if not np.isfinite(loud):
        loud = float(20 * np.log10(np.sqrt(mean_power(wav)) + 1e-10))
    return loud


def bin_interval(volume_bin: str, mu: float, sd: float) -> tuple[float, float]:
    """The interval of a low / medium / high bin at μ ± σ (as :mod:`c2ser.data.cot` bins a style measure)."""
    return {"low": (-np.inf, mu - sd), "medium": (mu - sd, mu + sd), "high": (mu + sd, np.inf)}[volume_bin]


def gain_bounds(loudness: float, volume_bin: str, mu: float, sd: float, gain_db: tuple[float, float],
                margin_db: float = 0.5) -> tuple[float, float]:
    """The gains (dB) in ``gain_db`` that keep ``loudness`` + gain inside its bin, ``margin_db`` from each edge;
    (0, 0) when the clip is already within the margin of an edge or outside its bin."""
    lo_edge, hi_edge = bin_interval(volume_bin, mu, sd)
    lo = max(gain_db[0], lo_edge + margin_db - loudness)
    hi = min(gain_db[1], hi_edge - margin_db - loudness)
    return (float(lo), float(hi)) if lo <= 0.0 <= hi else (0.0, 0.0)


def set_loudness(wav: np.ndarray, target_lufs: float) -> np.ndarray:
    return (wav * 10 ** ((target_lufs - loudness_lufs(wav)) / 20)).astype(np.float32)


# ---- pitch ----------------------------------------------------------------------------------------------------
def semitone_bounds(pitch_hz: float, pitch_bin: str, mu: float, sd: float, semitones: tuple[float, float],
                    margin_st: float = 0.25) -> tuple[float, float]:
    """The shifts (semitones) in ``semitones`` that keep ``pitch_hz`` × 2^(shift/12) inside its bin at μ ± σ,
    ``margin_st`` from each edge; (0, 0) when the pitch is already within the margin of an edge or outside its bin."""
    lo_edge, hi_edge = bin_interval(pitch_bin, mu, sd)
    lo, hi = float(semitones[0]), float(semitones[1])
    if lo_edge > 0.0:
        lo = max(lo, 12.0 * np.log2(lo_edge / pitch_hz) + margin_st)
    if np.isfinite(hi_edge):
        hi = min(hi, 12.0 * np.log2(hi_edge / pitch_hz) - margin_st) if hi_edge > 0.0 else -np.inf
    return (float(lo), float(hi)) if lo <= 0.0 <= hi else (0.0, 0.0)


def shift_pitch(wav: np.ndarray, semitones: float, sr: int = SAMPLE_RATE, n_fft: int = PITCH_N_FFT) -> np.ndarray:
    """``wav`` a number of semitones higher (lower when negative), same length (no speed change)."""
    if semitones == 0.0 or len(wav) < n_fft:   # shorter than one analysis frame: unchanged
        return wav
    y = librosa.effects.pitch_shift(wav.astype(np.float32), sr=sr, n_steps=semitones, res_type="soxr_hq",
                                    n_fft=n_fft)
    return np.pad(y, (0, max(0, len(wav) - len(y))))[: len(wav)].astype(np.float32)


# ---- noise sources ------------------------------------------------------------------------------------------
class _WaveCache:
    """Decoded clips by (path, channel, start, end), the most recent ``size`` kept."""

    def __init__(self, size: int = 256):
        self.size, self.items = size, OrderedDict()

    def get(self, row: dict) -> np.ndarray:
        k = (row["audio"], row.get("channel"), row.get("start"), row.get("end"))
        if k in self.items:
            self.items.move_to_end(k)
            return self.items[k]
        wav = load_audio(row["audio"], channel=row.get("channel"), start=row.get("start"), end=row.get("end"))
        self.items[k] = wav
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return wav


class BabblePool:
    """Babble from other clips of a manifest: ``speakers`` clips (not the clip itself), each at unit power."""

    def __init__(self, rows: list[dict], speakers: tuple[int, int] = (3, 6)):
        self.rows = sorted((r for r in rows if r.get("key") and r.get("audio")), key=lambda r: r["key"])
        self.speakers, self.cache = speakers, _WaveCache()

    def __call__(self, n: int, key: str, rng: np.random.Generator) -> np.ndarray:
        if not any(r["key"] != key for r in self.rows[:2]):
            raise ValueError("babble noise needs other clips in the manifest: it has none besides " + repr(key))
        k = int(rng.integers(self.speakers[0], self.speakers[1] + 1))
        picked = rng.choice(len(self.rows), size=min(k + 1, len(self.rows)), replace=False)
        out = np.zeros(n)
        for i in [i for i in picked if self.rows[i]["key"] != key][:k]:
            try:
                w = self.cache.get(self.rows[i]).astype(np.float64)
            except AudioError:  # an unreadable clip adds nothing (the evaluation rejects it by itself)
                continue
            p = mean_power(w)
            if p > 0:
                out += fit_length(w / np.sqrt(p), n, rng)
        return out


def noise_files(noise_dir: str | Path) -> list[Path]:
    """Every wav/flac/mp3 under ``noise_dir`` (recursively), sorted; an empty or missing directory is an error."""
    d = Path(noise_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: noise directory not found (data.augment.noise_dir)")
    files = sorted(f for f in d.rglob("*") if f.suffix.lower() in NOISE_EXT and f.is_file())
    if not files:
        raise ValueError(f"{d}: no noise files ({', '.join(NOISE_EXT)}) in it or below (data.augment.noise_dir)")
    return files


# ---- training augmentation ------------------------------------------------------------------------------------
class Augmenter:
    """``data.augment`` of ``c2ser train``: ``augmenter(wav, row, epoch)`` → the clip as the model hears it this
    epoch (pitch, reverberation, noise, telephone band, then the level; see the module docstring); ``rows`` = the
    training rows (babble, volume and pitch bins); ``cfg`` = :class:`c2ser.training.config.AugmentConfig`."""

    def __init__(self, cfg, rows: list[dict], seed: int):
        self.cfg, self.seed = cfg, seed
        self.files = noise_files(cfg.noise_dir) if cfg.noise_dir else []
        self.file_cache = _WaveCache(64)
        self.babble = BabblePool(rows, tuple(cfg.babble_speakers))
        stats = style_stats(rows, cfg.volume_group_by)
        self.bounds, self.unbounded = {}, 0   # key → gain range (dB); clips whose stored bin disagrees: no gain
        self.pitch_bounds = {}                # key → pitch shift range (semitones); absent: no shift
        self.style_bins = {}                  # key → [(field, low edge, high edge)] a shifted clip must stay within
        for r in rows:
            st = r.get("style") or {}
            loud, vbin = st.get("loudness_lufs"), st.get("volume_bin")
            per = stats["groups"].get(r.get(cfg.volume_group_by), stats["global"]) if cfg.volume_group_by \
                else stats["global"]
            f0, pbin = st.get("pitch_hz"), st.get("pitch_bin")
            if isinstance(f0, (int, float)) and np.isfinite(f0) and f0 > 0 and pbin in BINS:
                lo_edge, hi_edge = bin_interval(pbin, *per["pitch_hz"])
                if lo_edge <= f0 <= hi_edge:
                    self.pitch_bounds[r["key"]] = semitone_bounds(f0, pbin, *per["pitch_hz"],
                                                                  tuple(cfg.pitch_semitones), cfg.pitch_margin_st)
                    self.style_bins[r["key"]] = [("pitch_hz", lo_edge, hi_edge)]
                    rate, pace = st.get("rate"), st.get("pace_bin")
                    if isinstance(rate, (int, float)) and np.isfinite(rate) and pace in BINS:
                        self.style_bins[r["key"]].append(("rate", *bin_interval(pace, *per["rate"])))
            mu, sd = per["loudness_lufs"]
            if isinstance(loud, (int, float)) and np.isfinite(loud) and vbin in BINS:
                lo_edge, hi_edge = bin_interval(vbin, mu, sd)
                if lo_edge <= loud <= hi_edge:
                    self.bounds[r["key"]] = gain_bounds(loud, vbin, mu, sd, tuple(cfg.gain_db), cfg.volume_margin_db)
                    continue
            self.unbounded += 1

    def noise(self, n: int, key: str, rng: np.random.Generator) -> np.ndarray:
        if self.files:
            f = self.files[int(rng.integers(len(self.files)))]
            return fit_length(self.file_cache.get({"audio": str(f)}).astype(np.float64), n, rng)
        kind = self.cfg.noise_kinds[int(rng.integers(len(self.cfg.noise_kinds)))]
        return self.babble(n, key, rng) if kind == "babble" else coloured_noise(kind, n, rng)

    def pitch_shift(self, key: str, epoch: int) -> float:
        """The semitones clip ``key`` is shifted by this epoch (0 = none), from its own generator: with
        ``pitch_prob`` 0 every other draw is what it was before pitch shifts existed."""
        if self.cfg.pitch_prob == 0.0 or key not in self.pitch_bounds:
            return 0.0
        rng = key_rng("pitch", self.seed, epoch, key)
        if rng.random() >= self.cfg.pitch_prob:
            return 0.0
        lo, hi = self.pitch_bounds[key]
        return float(rng.uniform(lo, hi)) if hi > lo else 0.0

    def phone(self, key: str, epoch: int) -> bool:
        """Whether clip ``key`` goes through the telephone band this epoch, from its own generator (as the pitch)."""
        return self.cfg.telephone_prob > 0.0 and \
            key_rng("telephone", self.seed, epoch, key).random() < self.cfg.telephone_prob

    def keeps_style(self, shifted: np.ndarray, row: dict) -> bool:
        """Whether a pitch-shifted clip, measured again as the labels were, keeps the target's pitch and pace bins."""
        m = measure(shifted, row.get("text") or "", row.get("language") or "en")
        return all(np.isfinite(m[f]) and lo <= m[f] <= hi for f, lo, hi in self.style_bins.get(row["key"], []))

    def __call__(self, wav: np.ndarray, row: dict, epoch: int) -> np.ndarray:
        cfg, key = self.cfg, row["key"]
        rng = key_rng("augment", self.seed, epoch, key)
        noisy, reverb, gain = (rng.random() < p for p in (cfg.noise_prob, cfg.reverb_prob, cfg.gain_prob))
        semitones, phone = self.pitch_shift(key, epoch), self.phone(key, epoch)
        if not (noisy or reverb or gain or semitones or phone):
            return wav
        stored = (row.get("style") or {}).get("loudness_lufs")
        level = float(stored) if key in self.bounds else loudness_lufs(wav)
        out = shift_pitch(wav, semitones)
        if semitones and not self.keeps_style(out, row):
            out = wav
        if reverb:
            out = reverberate(out, float(rng.uniform(*cfg.rt60)), rng)
        if noisy:
            out = mix_at_snr(out, self.noise(len(out), key, rng), float(rng.uniform(*cfg.snr_db)))
        if phone:
            out = telephone(out)
        lo, hi = self.bounds.get(key, (0.0, 0.0))
        return set_loudness(out, level + (float(rng.uniform(lo, hi)) if gain else 0.0))


# ---- evaluation conditions ------------------------------------------------------------------------------------
def parse_condition(spec: str) -> list[tuple]:
    """``spec`` → steps [("noise", kind, snr) | ("reverb", rt60) | ("telephone",)] ([] for clean); a bad spec is
    a one-line ValueError listing the valid forms."""
    def bad(why: str):
        return ValueError(f"--condition {spec!r}: {why}; valid forms: {CONDITION_FORMS}")

    if not isinstance(spec, str) or not spec.strip():
        raise bad("empty")
    if spec == "clean":
        return []
    steps = []
    for part in spec.split("+"):
        name, *args = part.split(":")
        try:
            values = [float(a) for a in args[1:]] if name == "noise" else [float(a) for a in args]
        except ValueError:
            raise bad(f"{part!r} has a value that is not a number") from None
        if not all(np.isfinite(v) for v in values):
            raise bad(f"{part!r} has a value that is not finite")
        if name == "noise" and len(args) == 2 and args[0] in NOISE_KINDS:
            steps.append(("noise", args[0], values[0]))
        elif name == "noise":
            raise bad(f"{part!r} is not noise:KIND:SNR_DB with KIND one of {', '.join(NOISE_KINDS)}")
        elif name == "reverb" and len(values) == 1 and 0.0 < values[0] <= MAX_RT60:
            steps.append(("reverb", values[0]))
        elif name == "reverb":
            raise bad(f"{part!r} is not reverb:RT60_S with 0 < RT60 ≤ {MAX_RT60:g} s")
        elif name == "telephone" and not args:
            steps.append(("telephone",))
        else:
            raise bad(f"unknown condition {part!r}")
    return steps


def condition_snr(spec: str) -> float | None:
    """The SNR of a one-step noise condition (None otherwise): the x axis of a robustness plot."""
    steps = parse_condition(spec)
    return steps[0][2] if len(steps) == 1 and steps[0][0] == "noise" else None


class Condition:
    """An evaluation condition: ``condition(wav, row, epoch)`` → the degraded clip, drawn per (spec, clip key);
    ``rows`` = the whole manifest (babble comes from its other clips)."""

    def __init__(self, spec: str, rows: list[dict] = ()):
        self.spec, self.steps = spec, parse_condition(spec)
        self.babble = BabblePool(list(rows)) if any(s[:2] == ("noise", "babble") for s in self.steps) else None

    @property
    def clean(self) -> bool:
        return not self.steps

    def __call__(self, wav: np.ndarray, row: dict, epoch: int = 0) -> np.ndarray:
        rng = key_rng("condition", self.spec, row["key"])
        out = wav
        for step in self.steps:
            if step[0] == "noise":
                kind, n = step[1], len(out)
                noise = self.babble(n, row["key"], rng) if kind == "babble" else coloured_noise(kind, n, rng)
                out = mix_at_snr(out, noise, step[2])
            elif step[0] == "reverb":
                out = reverberate(out, step[1], rng)
            else:
                out = telephone(out)
        return out
