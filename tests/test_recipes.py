"""Every shipped recipe config loads into its typed schema; scripts parse; accelerate configs point at files."""
import subprocess
from pathlib import Path

import pytest
import yaml

from c2ser.config import load_config
from c2ser.training.config import TrainConfig
from c2ser.training.head_stage import HeadStageConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize("recipe", ["tiny", "c2ser"])
@pytest.mark.parametrize("stage,task", [("stage1", "explicit"), ("stage2", "distill")])
def test_stage_configs_load(recipe, stage, task):
    conf = RECIPES / recipe / "conf"
    cfg = load_config(TrainConfig, [conf / "model.yaml", conf / f"{stage}.yaml"], ["data.train_manifest=x.jsonl"])
    assert cfg.task == task and cfg.model.lora.enabled


def test_full_size_config_is_the_official_setting():
    conf = RECIPES / "c2ser" / "conf"
    cfg = load_config(TrainConfig, [conf / "model.yaml", conf / "stage1.yaml"], ["data.train_manifest=x"])
    assert (cfg.model.lora.r, cfg.model.lora.alpha, cfg.model.trainable) == (8, 32, "adapter_encoder_lora")
    assert (cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.grad_clip, cfg.optim.grad_accum) == (5e-5, 8000, 5.0, 4)
    assert (cfg.data.max_frames_in_batch, cfg.data.max_tokens_in_batch) == (3900, 1900)
    assert cfg.model.whisper.name_or_path == "medium" and cfg.model.llm.dtype == "bfloat16"


@pytest.mark.parametrize("recipe", ["tiny", "c2ser"])
def test_head_configs_load(recipe):
    cfg = load_config(HeadStageConfig, RECIPES / recipe / "conf" / "head.yaml", ["backbone=b", "train_manifest=t"])
    assert cfg.kind == "gen_ser"


@pytest.mark.parametrize("script", ["tiny/run.sh", "c2ser/run.sh"])
def test_run_scripts_parse(script):
    subprocess.run(["bash", "-n", str(RECIPES / script)], check=True)


def test_accelerate_configs_point_at_deepspeed_files():
    for f in (RECIPES / "accelerate").glob("*.yaml"):
        cfg = yaml.safe_load(f.read_text())
        ds = (cfg.get("deepspeed_config") or {}).get("deepspeed_config_file")
        if ds:
            assert (RECIPES.parent / ds).is_file(), f
