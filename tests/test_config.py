"""Typed configs: YAML files merged in order, key=value overrides, clear errors."""
import pytest

from c2ser.config import ConfigError, from_dict, load_config, to_dict
from c2ser.training.config import TrainConfig


def test_yaml_files_merge_in_order_then_overrides(tmp_path):
    a = tmp_path / "model.yaml"
    a.write_text("model:\n  lora:\n    r: 16\n  llm:\n    dtype: float32\n")
    b = tmp_path / "stage.yaml"
    b.write_text("task: distill\nmodel:\n  lora:\n    r: 4\noptim:\n  lr: 1.0e-4\n")
    cfg = load_config(TrainConfig, [a, b], ["optim.grad_accum=2", "data.train_manifest=x.jsonl"])
    assert cfg.model.lora.r == 4 and cfg.model.llm.dtype == "float32" and cfg.task == "distill"
    assert cfg.optim.lr == 1e-4 and cfg.optim.grad_accum == 2 and cfg.optim.warmup_steps == 8000
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_bad_configs_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  lrr: 1\n")
    with pytest.raises(ConfigError, match="bad.yaml: Key 'lrr' not in 'OptimConfig'"):
        load_config(TrainConfig, bad)
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(TrainConfig, tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="Value 'many'"):
        load_config(TrainConfig, None, ["optim.grad_accum=many"])
    with pytest.raises(ValueError, match="task='stage9'"):
        load_config(TrainConfig, None, ["task=stage9", "data.train_manifest=x"])
    with pytest.raises(ConfigError, match="missing mandatory value: train_manifest"):
        load_config(TrainConfig)
