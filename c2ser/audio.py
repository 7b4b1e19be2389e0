"""Audio input: any file → float32 mono waveform at 16 kHz.

soundfile reads wav/flac/ogg (and mp3 with libsndfile ≥ 1.1); anything else (mp4, m4a, …) goes through ffmpeg.
Channels are averaged *before* resampling (as C2SER's extraction did) unless one channel is selected
(``channel`` is 1-indexed, EmoBox convention). Resampling uses soxr (high quality).
Every problem is an :class:`AudioError` whose one-line message names the file: missing, a directory, unreadable,
no samples, NaN/Inf samples, or shorter than ``MIN_SECONDS`` (25 ms: the shortest clip both encoders accept).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 16000
MIN_SECONDS = 0.025  # Emotion2Vec-S's receptive field (400 samples); Whisper's log-mel needs 320
_SOUNDFILE_EXT = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}


class AudioError(ValueError):
    """An audio file that cannot be read or is unusable (one-line message naming the file)."""


def resample(wav: np.ndarray, sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    if sr == target_sr:
        return np.ascontiguousarray(wav, dtype=np.float32)
    return soxr.resample(np.asarray(wav, dtype=np.float32), sr, target_sr, quality="HQ").astype(np.float32)


def _read_ffmpeg(path: Path, sr: int, channel: int | None) -> np.ndarray:
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"{path}: needs ffmpeg to decode this format, and ffmpeg is not installed")
    pan = ["-af", f"pan=mono|c0=c{channel - 1}"] if channel else ["-ac", "1"]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vn", *pan, "-ar", str(sr), "-f", "f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"{path}: ffmpeg could not decode it ({msg[-1] if msg else 'unknown error'})")
    return np.frombuffer(proc.stdout, dtype=np.float32).copy()


def load_audio(path: str | Path, sr: int = SAMPLE_RATE, channel: int | None = None,
               start: float | None = None, end: float | None = None, min_seconds: float = MIN_SECONDS) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sr`` Hz, optionally one channel (1-indexed) and a [start, end) span in s."""
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.suffix.lower() in _SOUNDFILE_EXT:
        try:
            data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile's messages are one line
            raise AudioError(f"{path}: unreadable audio ({e})") from None
        if channel is not None:
            if not 1 <= channel <= data.shape[1]:
                raise AudioError(f"{path}: channel {channel} requested but the file has {data.shape[1]}")
            data = data[:, channel - 1]
        else:
            data = data.mean(axis=1)
        wav = resample(data, file_sr, sr)
    else:
        wav = _read_ffmpeg(path, sr, channel)
    if start is not None or end is not None:
        a = int(round((start or 0.0) * sr))
        b = len(wav) if end is None else int(round(end * sr))
        wav = wav[a:b]
    if wav.size == 0:
        raise AudioError(f"{path}: contains no audio samples")
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if wav.size < min_seconds * sr:
        raise AudioError(f"{path}: {1000 * wav.size / sr:.0f} ms of audio is too short "
                         f"(at least {1000 * min_seconds:g} ms needed)")
    return wav
