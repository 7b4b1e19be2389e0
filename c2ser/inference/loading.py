"""Loads a model for inference from our checkpoint directory or the official ``C2SER_llm.pt``, and turns audio
files into model items (waveform + optional precomputed Emotion2Vec-S features).

``checkpoint`` is either a c2ser checkpoint directory (``exp/stage2/...``) or ``official:<path/to/C2SER_llm.pt>``
(then ``qwen2_dir`` names the local Qwen2-7B directory; Whisper dims are Whisper-medium's).
SSL features: online with ``ssl_checkpoint`` (Emotion2Vec-S), or ``<ssl_features>/<stem>.npy`` per file.
Devices: ``"auto"`` (the commands' default) is CUDA when available, else CPU (:func:`resolve_device`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from c2ser.audio import SAMPLE_RATE, load_audio
from c2ser.models.processor import C2SERProcessor
from c2ser.models.whisper_encoder import MAX_SECONDS  # the Whisper encoder's window


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` (or None) → ``"cuda"`` when a GPU is usable, else ``"cpu"``; anything else is returned as is."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_for_inference(checkpoint: str, ssl_checkpoint: str | None = None, device: str = "auto",
                       overrides: list[str] | tuple = (), qwen2_dir: str | None = None):
    """Return ``(model, processor)`` in eval mode on ``device`` (``"auto"``: CUDA when available)."""
    overrides = list(overrides)
    if ssl_checkpoint:
        overrides.append(f"ssl.checkpoint={ssl_checkpoint}")
    if checkpoint.startswith("official:"):
        from c2ser.inference.official import load_official, official_model_config

        if not qwen2_dir:
            raise ValueError("official checkpoint: give the local Qwen2-7B directory (--qwen2-dir)")
        cfg = official_model_config(qwen2_dir, ssl_checkpoint=ssl_checkpoint)
        if overrides:
            from omegaconf import OmegaConf

            from c2ser.config import from_dict, to_dict
            from c2ser.models.config import ModelConfig
            data = OmegaConf.merge(OmegaConf.create(to_dict(cfg)), OmegaConf.from_dotlist(overrides))
            cfg = from_dict(ModelConfig, OmegaConf.to_container(data))
        model = load_official(checkpoint[len("official:"):], cfg)
    else:
        from c2ser.checkpoint import load_model

        model = load_model(checkpoint, overrides)
    model = model.to(resolve_device(device)).eval()
    return model, C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, model.cfg.whisper.long_audio)


def needs_ssl_features(model) -> bool:
    """True when the model uses SSL tokens but cannot compute them itself."""
    return model.cfg.ssl.enabled and model.ssl_encoder is None


def audio_item(path: str | Path, model, ssl_features: str | Path | None = None) -> dict:
    """Read one file into an item for :meth:`C2SERProcessor.collate` (no prompt); one-line errors naming the file.

    A clip over 30 s is an error with ``whisper.long_audio=error``; with ``crop`` the item has ``cropped: True``
    (only its first 30 s reach the Whisper encoder) so callers can say so. The item's ``key`` is the file stem, as
    a manifest key: cached SSL features are ``<ssl_features>/<stem>.npy`` and a Gen-SER head seeds the clip's noise
    with it, so ``c2ser predict`` and ``c2ser eval`` give a clip the same answer when its manifest key is its stem.
    """
    path = Path(path)
    wav = load_audio(str(path))
    seconds = len(wav) / SAMPLE_RATE
    if seconds > MAX_SECONDS and model.cfg.whisper.long_audio == "error":
        raise ValueError(f"{path}: {seconds:.1f} s is longer than the encoder's {MAX_SECONDS:g} s "
                         "(--long-audio crop keeps the first 30 s)")
    item = {"wav": wav, "key": path.stem, "cropped": seconds > MAX_SECONDS}
    if needs_ssl_features(model):
        if ssl_features is None:
            raise ValueError(f"{path}: this model needs Emotion2Vec-S features: pass --ssl-checkpoint "
                             "(computed online) or --ssl-features DIR (<DIR>/<file stem>.npy)")
        f = Path(ssl_features) / f"{path.stem}.npy"
        if not f.is_file():
            raise FileNotFoundError(f"{path}: no SSL features at {f}")
        from c2ser.safe_io import load_features_npy

        ssl = load_features_npy(f, expected_shape=(model.cfg.ssl.num_tokens, model.cfg.ssl.dim))
        item["ssl"] = torch.from_numpy(ssl)
    return item
