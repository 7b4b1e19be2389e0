"""Model checkpoints: only what trained, in safetensors, plus the resolved config; saved atomically.

Layout of a checkpoint directory::

    config.yaml          resolved ModelConfig (section ``model``) and, for training runs, the run config
    model.safetensors    trained non-LLM weights (downsampler, adapter, projection, speech markers, encoder if trained)
    lora/                peft adapter (adapter_config.json + adapter_model.safetensors), if LoRA is on
    llm/                 the full LLM (save_pretrained), only when the policy trains the base LLM

Base weights (Whisper, LLM) are re-loaded from the paths in the config. :func:`load_model` rebuilds the model.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from c2ser.config import from_dict, to_dict
from c2ser.models.c2ser import C2SERModel
from c2ser.models.config import TRAINABLE_POLICIES, ModelConfig

_LINK_PREFIXES = ("downsampler.", "adapter.", "projection.", "speech_markers.")
_PATH_KEYS = (("whisper", "name_or_path"), ("llm", "name_or_path"), ("ssl", "checkpoint"))


def _absolute_paths(model_cfg: dict) -> dict:
    """Local model paths made absolute, so a checkpoint loads from any working directory (names/hub ids kept)."""
    for section, key in _PATH_KEYS:
        value = model_cfg[section][key]
        if value and Path(value).expanduser().exists():
            model_cfg[section][key] = str(Path(value).expanduser().resolve())
    return model_cfg


def _resolve_paths(model_cfg: dict, checkpoint_dir: Path) -> dict:
    """Relative model paths are taken relative to the checkpoint directory when they exist there."""
    for section, key in _PATH_KEYS:
        value = model_cfg[section][key]
        if value and not Path(value).is_absolute() and (checkpoint_dir / value).exists():
            model_cfg[section][key] = str((checkpoint_dir / value).resolve())
    return model_cfg


def _saved_prefixes(policy: str) -> tuple[str, ...]:
    parts = TRAINABLE_POLICIES[policy]
    return _LINK_PREFIXES + (("whisper.",) if "encoder" in parts else ())


def trained_state(model: C2SERModel, state_dict: dict | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Split a (possibly gathered, e.g. ZeRO-3) full state dict into the parts a checkpoint stores."""
    sd = state_dict if state_dict is not None else model.state_dict()
    parts = TRAINABLE_POLICIES[model.cfg.trainable]
    prefixes = _saved_prefixes(model.cfg.trainable)
    out = {"model": {k: v for k, v in sd.items() if k.startswith(prefixes)}, "lora": {}, "llm": {}}
    if model.cfg.lora.enabled and ("lora" in parts or "llm" in parts):
        out["lora"] = {k[len("llm."):]: v for k, v in sd.items() if k.startswith("llm.") and "lora_" in k}
    if "llm" in parts:
        seen: set[int] = set()  # tied weights (e.g. lm_head = embed_tokens) are stored once
        for k, v in sd.items():
            if k.startswith("llm.") and "lora_" not in k and v.data_ptr() not in seen:
                seen.add(v.data_ptr())
                out["llm"][k[len("llm."):]] = v
    return out


def save_checkpoint(model: C2SERModel, path: str | Path, state_dict: dict | None = None,
                    extra_config: dict | None = None) -> Path:
    """Write the checkpoint into ``path`` atomically (a temporary directory renamed into place); a full disk or
    read-only folder is one :class:`c2ser.atomic.WriteError` line naming ``path`` (the temporary folder removed)."""
    from c2ser.atomic import is_write_failure, write_error

    tmp = Path(path).with_name(Path(path).name + ".tmp")
    try:
        return _save_checkpoint(model, path, state_dict, extra_config)
    except Exception as e:
        if not is_write_failure(e, tmp):
            raise
        err = write_error(path, e)
        shutil.rmtree(tmp, ignore_errors=True)
        raise err from None


def _save_checkpoint(model: C2SERModel, path: str | Path, state_dict: dict | None = None,
                     extra_config: dict | None = None) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    st = trained_state(model, state_dict)
    save_file({k: v.detach().contiguous().cpu() for k, v in st["model"].items()}, tmp / "model.safetensors")
    if st["lora"]:  # a standard peft adapter directory (PeftModel.from_pretrained(base, "lora/") reads it)
        import json

        (tmp / "lora").mkdir()
        prefix = "base_model.model."
        save_file({k.replace(".default.", "."): v.detach().contiguous().cpu() for k, v in st["lora"].items()},
                  tmp / "lora" / "adapter_model.safetensors")
        peft_cfg = model.llm.peft_config["default"].to_dict()
        peft_cfg = {k: (sorted(v) if isinstance(v, set) else v) for k, v in peft_cfg.items()}
        (tmp / "lora" / "adapter_config.json").write_text(json.dumps(peft_cfg, indent=1, default=str))
        assert all(k.startswith(prefix) for k in st["lora"]), "unexpected LoRA key layout"
    if st["llm"]:
        (tmp / "llm").mkdir()
        save_file({k: v.detach().contiguous().cpu() for k, v in st["llm"].items()}, tmp / "llm" / "model.safetensors")
    OmegaConf.save(OmegaConf.create({"model": _absolute_paths(to_dict(model.cfg)), **(extra_config or {})}),
                   tmp / "config.yaml")
    commit_directory(tmp, path)
    return path


def commit_directory(tmp: Path, path: Path) -> None:
    """Put the fully written folder ``tmp`` at ``path``; an existing ``path`` is first moved to ``path.old``, removed
    once the new one is in place (a kill in between leaves the old one beside, never a half-written ``path``)."""
    if path.exists():
        old = path.with_name(path.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def load_model_config(path: str | Path, overrides: list[str] | tuple = ()) -> ModelConfig:
    path = Path(path)
    cfg_file = path / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path}: not a c2ser checkpoint (no config.yaml)")
    data = OmegaConf.load(cfg_file).get("model")
    if data is None:
        raise ValueError(f"{cfg_file}: no 'model' section")
    if overrides:
        data = OmegaConf.merge(data, OmegaConf.from_dotlist(list(overrides)))
    return from_dict(ModelConfig, _resolve_paths(OmegaConf.to_container(data), path))


def read_safetensors(f: Path) -> dict[str, torch.Tensor]:
    """``load_file`` with a one-line error naming the file (missing, truncated or not safetensors)."""
    if not f.is_file():
        raise FileNotFoundError(f"{f}: checkpoint weights not found")
    try:
        return load_file(f)
    except Exception as e:  # SafetensorError, OSError...: the file, not the code, is at fault
        raise ValueError(f"{f}: corrupt or unreadable safetensors file ({str(e).splitlines()[0]})") from None


def load_weights(model: C2SERModel, path: str | Path) -> None:
    """Load a checkpoint's trained weights into a model built with the same config; fail on any key mismatch."""
    path = Path(path)
    weights = read_safetensors(path / "model.safetensors")
    own = model.state_dict()
    bad = [k for k in weights if k not in own or own[k].shape != weights[k].shape]
    missing = [k for k in own if k.startswith(_saved_prefixes(model.cfg.trainable)) and k not in weights]
    if bad or missing:
        raise ValueError(f"{path}: checkpoint does not fit the model (unexpected/mis-shaped {bad[:3]}, "
                         f"missing {missing[:3]})")
    for sub, prefix in (("lora", "llm."), ("llm", "llm.")):
        f = path / sub / ("adapter_model.safetensors" if sub == "lora" else "model.safetensors")
        if f.is_file():
            extra = {prefix + (k.replace(".lora_A.", ".lora_A.default.").replace(".lora_B.", ".lora_B.default.")
                               if sub == "lora" else k): v for k, v in read_safetensors(f).items()}
            unknown = [k for k in extra if k not in own]
            if unknown:
                raise ValueError(f"{f}: keys not in the model, e.g. {unknown[:3]}")
            weights.update(extra)
    model.load_state_dict(weights, strict=False)


def load_model(path: str | Path, overrides: list[str] | tuple = ()) -> C2SERModel:
    """Rebuild a model from a checkpoint directory (base weights from the config's paths)."""
    from c2ser.models.build import build_model

    model = build_model(load_model_config(path, overrides))
    load_weights(model, path)
    return model.eval()
