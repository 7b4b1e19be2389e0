"""The output-head stage on a frozen tiny backbone: trains, saves, and evaluates through ``c2ser eval``."""
import json

import pytest
import torch

from c2ser.checkpoint import save_checkpoint
from c2ser.cli import main
from c2ser.evaluation.predictions import read_predictions
from c2ser.models.build import build_model
from c2ser.testing import make_toy_corpus, tiny_model_config
from c2ser.training.head_stage import HeadStageConfig, load_head, train_head_stage


@pytest.mark.parametrize("kind", ["gen_ser", "ce"])
def test_head_stage_trains_saves_and_evaluates(tiny_models, tmp_path, kind):
    torch.manual_seed(0)
    backbone = save_checkpoint(build_model(tiny_model_config(tiny_models)), tmp_path / "backbone")
    corpus = make_toy_corpus(tmp_path / "corpus", per_class=4)
    cfg = HeadStageConfig(backbone=str(backbone), kind=kind, train_manifest=str(corpus["train"]),
                          valid_manifest=str(corpus["valid"]), feature_dir=str(corpus["features"]),
                          labels=["neutral", "happy", "sad", "angry"], conditioning="adapter", corpus="synthetic", epochs=25, batch_size=8, lr=2e-3, warmup=5,
                          output_dir=str(tmp_path / "head"))
    cfg.gen_ser.d_model, cfg.gen_ser.layers, cfg.gen_ser.heads, cfg.gen_ser.ffn = 32, 1, 2, 64
    cfg.gen_ser.code_dim, cfg.gen_ser.token_dim, cfg.ce.hidden = 64, 16, 32
    final = train_head_stage(cfg, progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "head" / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 25 * 2 and sum(losses[-5:]) < sum(losses[:5])  # the head's loss decreases
    head, loaded = load_head(final)
    assert loaded.kind == kind and loaded.backbone == str(backbone)
    assert main(["eval", "--checkpoint", str(final), "--manifest", str(corpus["valid"]), "--corpus", "synthetic",
                 "--feature-dir", str(corpus["features"]), "--mode", "gen-ser", "--out", str(tmp_path / "ev")]) == 0
    rows = read_predictions(tmp_path / "ev" / "predictions.jsonl")
    assert len(rows) == 4 and all(r["label"] in ("neutral", "happy", "sad", "angry") for r in rows)
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-3 for r in rows)  # per-class confidences
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["n"] == 4 and res["unparsed_rate"] == 0.0  # a head always yields a valid label
