"""Loading Emotion2Vec-S / emotion2vec weights without fairseq, treating checkpoints as untrusted input.

Accepted: the official fairseq ``checkpoint.pt`` (``{"cfg": ..., "model": state_dict, ...}``), a FunASR model
directory (``model.pt`` + ``config.yaml``), or a bare state dict. Files are read with
:func:`c2ser.safe_io.load_torch_file` (``weights_only=True`` plus the few numpy / argparse / omegaconf types that
fairseq bookkeeping holds); a file that asks for anything else is refused with one line, nothing in it runs.

The encoder config is read from ``cfg.model`` / ``model_conf`` when present and checked against (or, without a
config, inferred from) the tensor shapes. Decoder (pre-training), ``_ema`` and classifier (``proj``) keys are
dropped and reported; a missing encoder key is an error naming the file.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

from c2ser.encoders.emotion2vec import Emotion2VecConfig, Emotion2VecS
from c2ser.safe_io import load_torch_file

AUDIO = "modality_encoders.AUDIO."


def _state_dict(obj, path) -> dict:
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: no state dict found (expected a fairseq/FunASR emotion2vec checkpoint)")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _count(sd: dict, prefix: str) -> int:
    idx = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"(\d+)\.", k)] if m}
    return max(idx) + 1 if idx else 0


def config_from(sd: dict, model_cfg: dict | None, path) -> Emotion2VecConfig:
    """Encoder config inferred from the tensor shapes, refined and checked by ``cfg.model`` when present."""
    try:
        extra = sd[AUDIO + "extra_tokens"]
        pos = sd[AUDIO + "relative_positional_encoder.1.0.weight"]
        scale = sd[AUDIO + "alibi_scale"]
        fc1 = sd["blocks.0.mlp.fc1.weight"]
    except KeyError as e:
        raise ValueError(f"{path}: missing encoder key {e.args[0]}") from None
    d = extra.shape[2]
    n_conv = _count(sd, AUDIO + "local_encoder.conv_layers.")
    kernels = [sd[f"{AUDIO}local_encoder.conv_layers.{i}.0.weight"].shape[2] for i in range(n_conv)]
    default = Emotion2VecConfig.conv_spec
    pos_depth = len([k for k in sd if re.fullmatch(re.escape(AUDIO) + r"relative_positional_encoder\.\d+\.0\.weight", k)])
    cfg = Emotion2VecConfig(
        embed_dim=d, depth=_count(sd, "blocks."), prenet_depth=_count(sd, AUDIO + "context_encoder.blocks."),
        num_heads=scale.shape[-3], mlp_ratio=fc1.shape[0] / d, num_extra_tokens=extra.shape[1],
        conv_channels=sd[AUDIO + "local_encoder.conv_layers.0.0.weight"].shape[0],
        conv_spec=default if tuple(k for k, _ in default) == tuple(kernels) else tuple((k, k // 2 or 1) for k in kernels),
        conv_pos_width=pos.shape[2] * pos_depth, conv_pos_groups=d // pos.shape[1], conv_pos_depth=pos_depth,
        alibi_per_layer=scale.dim() == 5 and scale.shape[0] > 1)
    if model_cfg:
        audio = (model_cfg.get("modalities") or {}).get("audio") or {}
        cfg.norm_eps = float(model_cfg.get("norm_eps") or cfg.norm_eps)
        if audio.get("feature_encoder_spec"):
            cfg.conv_spec = tuple((k, s) for _, k, s in eval_spec(audio["feature_encoder_spec"]))
        for key, value in (("embed_dim", d), ("depth", cfg.depth), ("num_heads", cfg.num_heads)):
            if model_cfg.get(key) is not None and int(model_cfg[key]) != value:
                raise ValueError(f"{path}: cfg.model.{key}={model_cfg[key]} but the weights say {value}")
    return cfg


def eval_spec(spec: str) -> list[tuple[int, int, int]]:
    """Parse fairseq's ``feature_encoder_spec`` ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + ...") without eval()."""
    out = []
    for part in spec.split("+"):
        m = re.fullmatch(r"\s*\[\s*\((\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)\s*\]\s*(?:\*\s*(\d+))?\s*", part)
        if not m:
            raise ValueError(f"cannot parse feature_encoder_spec part {part!r}")
        out += [(int(m[1]), int(m[2]), int(m[3]))] * int(m[4] or 1)
    return out


def load_emotion2vec(path: str | Path, normalize: bool = False, verbose: bool = True) -> Emotion2VecS:
    """Load a fairseq ``checkpoint.pt``, a FunASR directory or a state dict into :class:`Emotion2VecS`."""
    path = Path(path)
    model_cfg = None
    if path.is_dir():
        from omegaconf import OmegaConf

        if not (path / "model.pt").is_file():
            raise FileNotFoundError(f"{path}: FunASR directory without model.pt")
        if (path / "config.yaml").is_file():
            model_cfg = OmegaConf.to_container(OmegaConf.load(path / "config.yaml")).get("model_conf")
        path = path / "model.pt"
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: Emotion2Vec-S checkpoint not found")
    obj = load_torch_file(path)
    cfg = obj.get("cfg") if isinstance(obj, dict) else None
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):  # some fairseq versions save the OmegaConf object itself
        cfg = OmegaConf.to_container(cfg, resolve=False)
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        model_cfg = cfg["model"] or model_cfg
    sd = _state_dict(obj, path)
    cfg = config_from(sd, model_cfg, path)
    cfg.normalize = normalize
    model = Emotion2VecS(cfg)
    own = model.state_dict()
    keep, dropped = {}, []
    for k, v in sd.items():
        if k in own:
            if k == AUDIO + "alibi_scale" and v.dim() == 4:
                v = v.unsqueeze(0)
            keep[k] = v.float()
        else:
            dropped.append(k)
    missing = [k for k in own if k not in keep]
    if missing:
        raise ValueError(f"{path}: {len(missing)} encoder keys missing, e.g. {missing[:3]}")
    bad = [k for k in keep if keep[k].shape != own[k].shape]
    if bad:
        raise ValueError(f"{path}: shape mismatch for {bad[:3]} (e.g. {tuple(keep[bad[0]].shape)} vs "
                         f"{tuple(own[bad[0]].shape)})")
    model.load_state_dict(keep, strict=True)
    if dropped and verbose:
        kinds = sorted({"decoder" if ".decoder." in k else "_ema" if "_ema" in k else "proj" if k.startswith("proj.")
                        else "other" for k in dropped})
        print(f"{path}: dropped {len(dropped)} non-encoder keys ({', '.join(kinds)})", file=sys.stderr)
    model.dropped_keys = dropped
    return model.eval()
