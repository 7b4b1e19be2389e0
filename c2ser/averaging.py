"""Checkpoint averaging (WeNet's ``average_model.py``, ESPnet's ``average_nbest_models``): the mean of the trained
weights of several checkpoints of one run, e.g. the ends of its last N epochs.

A c2ser checkpoint stores only what trained (``model.safetensors``, ``lora/adapter_model.safetensors``,
``llm/model.safetensors``: c2ser/checkpoint.py); averaging reads those files, checks that every checkpoint has the
same tensors, and takes their element-wise mean in float64, cast back to each tensor's own dtype. LoRA's A and B
matrices are averaged separately, as every averaging tool does for any weight (late in a run they move little, so
the mean of the products is close to the product of the means).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from c2ser.atomic import is_write_failure, write_error
from c2ser.checkpoint import commit_directory, read_safetensors

WEIGHT_FILES = ("model.safetensors", "lora/adapter_model.safetensors", "llm/model.safetensors")


def read_trained(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The trained tensors of one checkpoint directory, by weight file (relative path)."""
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path}: not a c2ser checkpoint (no config.yaml)")
    return {rel: read_safetensors(path / rel) for rel in WEIGHT_FILES if (path / rel).is_file()}


def average_trained(paths: list[str | Path]) -> dict[str, dict[str, torch.Tensor]]:
    """The element-wise mean of the checkpoints' trained tensors; a checkpoint whose files, tensor names, shapes or
    dtypes differ from the first one's is a one-line error naming it."""
    if not paths:
        raise ValueError("no checkpoints to average")
    first = read_trained(paths[0])
    sums = {rel: {k: v.double() for k, v in t.items()} for rel, t in first.items()}
    for p in paths[1:]:
        other = read_trained(p)
        if other.keys() != first.keys():
            raise ValueError(f"{p}: weight files {sorted(other)} differ from {paths[0]}'s {sorted(first)}")
        for rel, tensors in other.items():
            ref = first[rel]
            if tensors.keys() != ref.keys():
                extra = sorted(set(tensors) ^ set(ref))[:3]
                raise ValueError(f"{Path(p) / rel}: tensors differ from {Path(paths[0]) / rel}'s, e.g. {extra}")
            for k, v in tensors.items():
                if v.shape != ref[k].shape or v.dtype != ref[k].dtype:
                    raise ValueError(f"{Path(p) / rel}: {k} is {v.dtype} {tuple(v.shape)}, "
                                     f"{ref[k].dtype} {tuple(ref[k].shape)} in {paths[0]}")
                sums[rel][k] += v.double()
    n = len(paths)
    return {rel: {k: (s / n).to(first[rel][k].dtype) for k, s in t.items()} for rel, t in sums.items()}


def as_model_state(averaged: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Averaged weight files as one model state dict (the keys ``C2SERModel.state_dict()`` uses), as
    c2ser.checkpoint.load_weights maps them."""
    state = dict(averaged.get("model.safetensors", {}))
    for k, v in averaged.get("lora/adapter_model.safetensors", {}).items():
        state["llm." + k.replace(".lora_A.", ".lora_A.default.").replace(".lora_B.", ".lora_B.default.")] = v
    state.update({"llm." + k: v for k, v in averaged.get("llm/model.safetensors", {}).items()})
    return state


def save_average(paths: list[str | Path], out: str | Path) -> Path:
    """Write the average of ``paths`` as a checkpoint directory ``out`` (atomically): the last checkpoint's
    config.yaml and LoRA config, with ``averaged_from`` listing the inputs."""
    averaged = average_trained(paths)
    out, last = Path(out), Path(paths[-1])
    tmp = out.with_name(out.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for rel, tensors in averaged.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / rel)
        if (last / "lora" / "adapter_config.json").is_file():
            shutil.copy(last / "lora" / "adapter_config.json", tmp / "lora" / "adapter_config.json")
        cfg = OmegaConf.load(last / "config.yaml")
        cfg.averaged_from = [str(Path(p).resolve()) for p in paths]
        OmegaConf.save(cfg, tmp / "config.yaml")
        commit_directory(tmp, out)
    except Exception as e:  # a full disk or read-only folder: one line naming ``out``, no half-written folder left
        shutil.rmtree(tmp, ignore_errors=True)
        if is_write_failure(e, tmp):
            raise write_error(out, e) from None
        raise
    return out
