"""Every shipped recipe config loads into its typed schema; scripts parse; accelerate configs point at files."""
import subprocess
from pathlib import Path

import pytest
import yaml

from c2ser.config import load_config
from c2ser.training.config import TrainConfig
from c2ser.training.head_stage import HeadStageConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


SIZES = {"full": [], "tiny": ["c2ser/conf/tiny.yaml"], "demo": ["c2ser/conf/tiny.yaml", "tiny/conf/demo_{stage}.yaml"]}


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("stage,task", [("stage1", "explicit"), ("stage2", "distill")])
def test_stage_configs_load_at_every_size(size, stage, task):
    """The recipe's configs in the order run.sh merges them: model, stage, then the size overlay(s)."""
    files = [RECIPES / "c2ser/conf/model.yaml", RECIPES / f"c2ser/conf/{stage}.yaml"]
    files += [RECIPES / f.format(stage=stage) for f in SIZES[size]]
    full = load_config(TrainConfig, files[:2], ["data.train_manifest=x.jsonl"])
    cfg = load_config(TrainConfig, files, ["data.train_manifest=x.jsonl"])
    assert cfg.task == task and cfg.model.lora.enabled
    # a size changes widths and step counts only: the stage's task, data filters and eos stay the full recipe's
    assert (cfg.data.max_duration, cfg.data.check_audio, cfg.model.llm.eos_token) == \
        (full.data.max_duration, full.data.check_audio, full.model.llm.eos_token)
    if size == "tiny":  # the CI rehearsal keeps the GPU path's precision (DeepSpeed casts to bf16 anyway)
        assert cfg.model.llm.dtype == "bfloat16"


def test_full_size_config_is_the_official_setting():
    conf = RECIPES / "c2ser" / "conf"
    cfg = load_config(TrainConfig, [conf / "model.yaml", conf / "stage1.yaml"], ["data.train_manifest=x"])
    assert (cfg.model.lora.r, cfg.model.lora.alpha, cfg.model.trainable) == (8, 32, "adapter_encoder_lora")
    assert (cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.grad_clip, cfg.optim.grad_accum) == (5e-5, 8000, 5.0, 4)
    assert (cfg.data.max_frames_in_batch, cfg.data.max_tokens_in_batch) == (3900, 1900)
    assert cfg.model.whisper.name_or_path == "medium" and cfg.model.llm.dtype == "bfloat16"


@pytest.mark.parametrize("overlays", [[], ["c2ser/conf/head_tiny.yaml"], ["c2ser/conf/head_tiny.yaml", "tiny/conf/head.yaml"]])
def test_head_configs_load(overlays):
    files = [RECIPES / "c2ser/conf/head.yaml"] + [RECIPES / f for f in overlays]
    cfg = load_config(HeadStageConfig, files, ["backbone=b", "train_manifest=t"])
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


@pytest.mark.parametrize("stage", ["stage1", "stage2"])
def test_demo_augment_overlay_turns_on_augmentation_with_online_emotion2vec(stage):
    """recipes/tiny/run.sh --augment 1 (demo_augment_{stage}.yaml): stage 2 trains augmented, with the seed's tiny
    Emotion2Vec-S online (its path follows the run's feature directory) and the volume bins per speaker; stage 1 is
    the plain one, stage 2 runs 32 epochs instead of 16 with milder noise and reverberation (all chosen on
    validation); nothing else of the demo changes."""
    files = [RECIPES / "c2ser/conf/model.yaml", RECIPES / f"c2ser/conf/{stage}.yaml", RECIPES / "c2ser/conf/tiny.yaml",
             RECIPES / f"tiny/conf/demo_{stage}.yaml"]
    over = ["data.train_manifest=x.jsonl", "data.feature_dir=exp/t/seed0/features"]
    plain = load_config(TrainConfig, files, over)
    cfg = load_config(TrainConfig, files + [RECIPES / f"tiny/conf/demo_augment_{stage}.yaml"], over)
    assert not plain.data.augment.enabled and plain.model.ssl.checkpoint is None
    if stage == "stage1":
        assert cfg == plain
        return
    assert cfg.data.augment.enabled and cfg.data.augment.volume_group_by == "speaker"
    # the fourteenth search's stage 2 (docs/demo.md): the seventh's milder noise and reverberation
    assert (cfg.data.augment.noise_prob, cfg.data.augment.snr_db, cfg.data.augment.reverb_prob) == (0.6, [10.0, 30.0],
                                                                                                     0.1)
    assert cfg.model.ssl.checkpoint == "exp/t/seed0/features/../models/emotion2vec-tiny-random.pt"
    assert (plain.max_epochs, cfg.max_epochs) == (16, 32)
    cfg.data.augment, cfg.model.ssl.checkpoint, cfg.max_epochs = plain.data.augment, None, plain.max_epochs
    assert cfg == plain


def test_demo_head_augment_overlay_loads():
    files = [RECIPES / "c2ser/conf/head.yaml", RECIPES / "c2ser/conf/head_tiny.yaml", RECIPES / "tiny/conf/head.yaml"]
    plain = load_config(HeadStageConfig, files, ["backbone=b", "train_manifest=t"])
    cfg = load_config(HeadStageConfig, files + [RECIPES / "tiny/conf/head_augment.yaml"],
                      ["backbone=b", "train_manifest=t"])
    assert cfg.augment.enabled and cfg.augment.volume_group_by == "speaker" and not plain.augment.enabled
    cfg.augment = plain.augment
    assert cfg == plain


def test_demo_stage_12_alone_keeps_the_seeds_times(tmp_path):
    """`run.sh --stage 12` (aggregation only) must not enter the seeds' loop: it once overwrote each seed's
    wall.json and cpu_times.txt with a zero-second run. The aggregation itself fails here (no results), after the loop."""
    for s in (0, 1):
        (tmp_path / f"seed{s}").mkdir()
        (tmp_path / f"seed{s}/wall.json").write_text('{"wall_s": 1234, "stages": "0-12"}')
        (tmp_path / f"seed{s}/cpu_times.txt").write_text("1m0s 2m0s\n3m0s 4m0s\n")
    proc = subprocess.run(["bash", str(RECIPES / "tiny/run.sh"), "--seeds", "0,1", "--stage", "12", "--stop_stage", "12",
                           "--exp", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert "== stage 12 (demo)" in proc.stdout, proc.stdout + proc.stderr
    for s in (0, 1):
        assert (tmp_path / f"seed{s}/wall.json").read_text() == '{"wall_s": 1234, "stages": "0-12"}'
        assert (tmp_path / f"seed{s}/cpu_times.txt").read_text() == "1m0s 2m0s\n3m0s 4m0s\n"
