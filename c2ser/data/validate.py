"""Per-row checks of a manifest before a batch job (eval, train, validate-manifest) uses it.

:func:`validate_rows` returns ``(kept, rejects)``: a bad row never stops the job, it becomes a reject
``{key, source, reason}`` whose ``reason`` is one line starting with the file (audio, .npy or manifest) at fault.
Checks: required fields, label in the allowed set, audio readable / finite / at least 25 ms
(:func:`c2ser.audio.load_audio`), longer than ``max_seconds`` (rejected with ``long_audio="error"``, kept and
marked ``cropped: true`` with ``"crop"``), cached SSL features present / readable / of the expected shape / finite,
and optionally the manifest's ``duration`` and ``sample_rate`` against the file.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from c2ser.audio import SAMPLE_RATE, AudioError, load_audio
from c2ser.data.manifest import REQUIRED, Rejects, read_manifest
from c2ser.labels import EMOTIONS
from c2ser.models.whisper_encoder import MAX_SECONDS  # the Whisper encoder's window

TARGET_FIELDS = {"explicit": ("explicit_target",), "implicit": ("implicit_target",),
                 "distill": ("explicit_target", "implicit_target")}


def check_ssl_file(f: Path, shape: tuple[int, int] | None) -> str | None:
    """Why the cached features at ``f`` are unusable (one line naming ``f``), or None."""
    from c2ser.safe_io import load_features_npy

    if not f.is_file():
        return f"{f}: no cached Emotion2Vec-S features (run c2ser extract-features)"
    try:
        load_features_npy(f, shape)
    except ValueError as e:
        return str(e)
    return None


def _check_row(r: dict, required, classes, feature_dir, ssl_shape, check_audio, long_audio, max_seconds,
               check_metadata) -> tuple[str | None, bool]:
    """(reason or None, cropped)."""
    where = r.get("audio") or f"row {r.get('key', '?')!r}"
    missing = [f for f in required if r.get(f) in (None, "")]
    if missing:
        return f"{where}: missing field {', '.join(missing)} (clip {r.get('key', '?')!r})", False
    if "duration" in required and not (isinstance(r["duration"], (int, float)) and r["duration"] > 0):
        return f"{where}: duration must be a positive number, got {r['duration']!r}", False
    if classes is not None and r.get("emotion") is not None and r["emotion"] not in classes:
        return f"{where}: label {r['emotion']!r} is not in the label set ({', '.join(classes)})", False
    cropped = False
    if check_audio:
        try:
            wav = load_audio(r["audio"], channel=r.get("channel"), start=r.get("start"), end=r.get("end"))
        except AudioError as e:
            return str(e), False
        seconds = len(wav) / SAMPLE_RATE
        if seconds > max_seconds:
            if long_audio == "error":
                return (f"{where}: {seconds:.1f} s is longer than the encoder's {max_seconds:g} s "
                        "(long_audio=error; use crop to keep the first 30 s)"), False
            cropped = True
        if check_metadata:
            reason = _check_metadata(r, seconds)
            if reason:
                return f"{where}: {reason}", False
    if feature_dir is not None and r.get("key"):
        reason = check_ssl_file(Path(feature_dir) / f"{r['key']}.npy", ssl_shape)
        if reason:
            return reason, False
    return None, cropped


def _check_metadata(r: dict, seconds: float) -> str | None:
    d = r.get("duration")
    if isinstance(d, (int, float)) and abs(d - seconds) > max(0.05, 0.01 * seconds):
        return f"manifest duration {d:g} s but the audio lasts {seconds:.3f} s"
    sr = r.get("sample_rate")
    if sr and Path(r["audio"]).suffix.lower() in (".wav", ".flac", ".ogg"):
        import soundfile as sf

        file_sr = sf.info(r["audio"]).samplerate
        if file_sr != sr:
            return f"manifest sample_rate {sr} but the file is {file_sr} Hz"
    return None


def validate_rows(rows: list[dict], required=REQUIRED, classes=EMOTIONS, feature_dir: str | Path | None = None,
                  ssl_shape: tuple[int, int] | None = None, check_audio: bool = True, long_audio: str = "crop",
                  max_seconds: float = MAX_SECONDS, check_metadata: bool = False, progress: bool = True,
                  desc: str = "check clips") -> tuple[list[dict], list[dict]]:
    """``(kept, rejects)``; kept rows longer than ``max_seconds`` are copies with ``cropped: True``."""
    kept, rejects = [], []
    for r in tqdm(rows, disable=not progress or not check_audio, desc=desc, file=sys.stderr):
        reason, cropped = _check_row(r, required, classes, feature_dir, ssl_shape, check_audio, long_audio,
                                     max_seconds, check_metadata)
        if reason:
            rejects.append({"key": r.get("key"), "source": str(r.get("audio") or ""), "reason": reason})
        else:
            kept.append(dict(r, cropped=True) if cropped else r)
    return kept, rejects


def report(kept: list[dict], rejects: list[dict], path: str | Path, prog: str, printed: int = 0) -> None:
    """Write ``rejects.jsonl`` at ``path``; one stderr line per reject (skipping the first ``printed``, already
    shown) and per cropped clip, then the kept/rejected counts."""
    for x in rejects[printed:]:
        print(f"{prog}: rejected: {x['reason']}", file=sys.stderr)
    for r in kept:
        if r.get("cropped"):
            print(f"{prog}: warning: {r['audio']}: longer than {MAX_SECONDS:g} s, only the first "
                  f"{MAX_SECONDS:g} s are used (cropped)", file=sys.stderr)
    out = Rejects(path)
    out.items = list(rejects)
    out.write()
    print(f"{prog}: kept {len(kept)}, rejected {len(rejects)} of {len(kept) + len(rejects)} clips"
          + (f" (reasons in {path})" if rejects else ""), file=sys.stderr)


def validate_training_rows(cfg) -> list[dict]:
    """The rows of ``cfg.data.train_manifest`` to train on (``cfg`` is a TrainConfig): duplicates and bad rows go to
    ``<output_dir>/rejects.jsonl``; refuses (ValueError) when more than ``cfg.data.max_reject_fraction`` of the
    manifest's rows are rejected."""
    dups: list[dict] = []
    rows = read_manifest(cfg.data.train_manifest, dups)
    ssl = cfg.model.ssl
    shape = (ssl.num_tokens, ssl.dim) if ssl.enabled and cfg.data.feature_dir else None
    kept, rejects = validate_rows(rows, REQUIRED + TARGET_FIELDS[cfg.task], EMOTIONS,
                                  cfg.data.feature_dir if ssl.enabled else None, shape,
                                  check_audio=cfg.data.check_audio, long_audio=cfg.model.whisper.long_audio)
    report(kept, dups + rejects, Path(cfg.output_dir) / "rejects.jsonl", "c2ser train", printed=len(dups))
    total = len(kept) + len(dups) + len(rejects)
    limit = cfg.data.max_reject_fraction
    if not kept or len(dups) + len(rejects) > limit * total:
        raise ValueError(f"{cfg.data.train_manifest}: {len(dups) + len(rejects)} of {total} rows rejected, more than "
                         f"data.max_reject_fraction={limit:g} (reasons in {Path(cfg.output_dir) / 'rejects.jsonl'})")
    return kept
