"""Checkpoint averaging (c2ser/averaging.py, `c2ser average`) on hand-written checkpoint folders: values, dtypes,
the LoRA files, and one-line errors for checkpoints that do not match. Averaging inside training (the last N epochs,
kill/resume, 2 processes under ZeRO-3 and DDP) is tested in tests/test_training_loop.py."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file

from c2ser.averaging import as_model_state, average_trained

REPO = Path(__file__).resolve().parents[1]


def _ckpt(d: Path, adapter: list[float], lora_a: list[float], dtype=torch.float32, extra: dict | None = None) -> Path:
    (d / "lora").mkdir(parents=True)
    save_file({"adapter.w": torch.tensor(adapter, dtype=dtype), **(extra or {})}, d / "model.safetensors")
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.tensor([lora_a])},
              d / "lora" / "adapter_model.safetensors")
    (d / "lora" / "adapter_config.json").write_text(json.dumps({"r": 1}))
    OmegaConf.save(OmegaConf.create({"model": {"name": d.name}}), d / "config.yaml")
    return d


def test_the_mean_of_three_checkpoints_by_hand(tmp_path):
    dirs = [_ckpt(tmp_path / "a", [1, 2], [0, 3]), _ckpt(tmp_path / "b", [3, 6], [3, 3]),
            _ckpt(tmp_path / "c", [5, 1], [6, 0])]
    avg = average_trained(dirs)
    assert avg["model.safetensors"]["adapter.w"].tolist() == [3.0, 3.0]
    assert avg["lora/adapter_model.safetensors"]["base_model.model.layers.0.q_proj.lora_A.weight"].tolist() == [[3, 2]]
    state = as_model_state(avg)  # the model's own key names, as load_weights maps them
    assert set(state) == {"adapter.w", "llm.base_model.model.layers.0.q_proj.lora_A.default.weight"}


def test_bf16_weights_are_averaged_in_float64_and_stay_bf16(tmp_path):
    a = _ckpt(tmp_path / "a", [1.0, 256.0], [0], dtype=torch.bfloat16)
    b = _ckpt(tmp_path / "b", [1.0078125, 258.0], [0], dtype=torch.bfloat16)  # one bf16 step above 1 and 256
    w = average_trained([a, b])["model.safetensors"]["adapter.w"]
    assert w.dtype == torch.bfloat16
    # both means (1.00390625, 257) are half a bf16 step: they round to the even neighbour (1.0, 256.0)
    assert w.tolist() == [1.0, 256.0]


def test_checkpoints_that_do_not_match_are_named(tmp_path):
    a = _ckpt(tmp_path / "a", [1, 2], [0])
    with pytest.raises(ValueError, match=r"b/model.safetensors: tensors differ .*adapter.v"):
        average_trained([a, _ckpt(tmp_path / "b", [1, 2], [0], extra={"adapter.v": torch.zeros(1)})])
    with pytest.raises(ValueError, match=r"c/model.safetensors: adapter.w is torch.float32 \(3,\)"):
        average_trained([a, _ckpt(tmp_path / "c", [1, 2, 3], [0])])
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="d: not a c2ser checkpoint"):
        average_trained([a, tmp_path / "d"])
    with pytest.raises(ValueError, match="no checkpoints"):
        average_trained([])


def test_the_command_writes_a_checkpoint_folder(tmp_path):
    dirs = [_ckpt(tmp_path / "a", [1, 2], [0, 3]), _ckpt(tmp_path / "b", [3, 6], [3, 3])]
    out = tmp_path / "avg"
    proc = subprocess.run([sys.executable, "-m", "c2ser.cli", "average", *map(str, dirs), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert load_file(out / "model.safetensors")["adapter.w"].tolist() == [2.0, 4.0]
    assert (out / "lora" / "adapter_config.json").read_text() == json.dumps({"r": 1})
    cfg = OmegaConf.load(out / "config.yaml")
    assert cfg.model.name == "b" and list(cfg.averaged_from) == [str(d.resolve()) for d in dirs]
    bad = subprocess.run([sys.executable, "-m", "c2ser.cli", "average", str(dirs[0]), str(tmp_path), "--out",
                          str(tmp_path / "x")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "not a c2ser checkpoint" in bad.stderr
    assert not (tmp_path / "x").exists()
