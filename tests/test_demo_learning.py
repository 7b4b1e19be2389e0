"""The demo's training recipe still learns (CI guard): with the demo's own stage-1 configs (recipes/c2ser/conf +
recipes/tiny/conf overlay), a short run on a toy corpus lowers the training loss and its validation answers beat
chance. Short: a few dozen updates of the tiny models, one process."""
import json
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from c2ser.testing import make_toy_corpus

from conftest import REPO, recipe_env

CONF = REPO / "recipes" / "c2ser" / "conf"
STEPS = 200


def test_demo_stage1_loss_falls_and_validation_beats_chance(tiny_models, tmp_path):
    corpus = make_toy_corpus(tmp_path / "toy", per_class=12, seed=0)
    out = tmp_path / "stage1"
    cmd = [sys.executable, "-m", "c2ser.cli", "train", "--config", str(CONF / "model.yaml"),
           "--config", str(CONF / "stage1.yaml"), "--config", str(CONF / "tiny.yaml"),
           "--config", str(REPO / "recipes" / "tiny" / "conf" / "demo_stage1.yaml"),
           f"data.train_manifest={corpus['train']}", f"data.valid_manifest={corpus['valid']}",
           f"data.feature_dir={corpus['features']}", f"model.whisper.name_or_path={tiny_models['whisper']}",
           f"model.llm.name_or_path={tiny_models['llm']}", f"max_steps={STEPS}", "max_epochs=1000", "data.max_batch_size=8",
           "optim.warmup_steps=5", "log_every=1", "seed=0", "task=implicit", f"output_dir={out}"]
    proc = subprocess.run(cmd, cwd=REPO, env=recipe_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(losses) == STEPS
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)
    result = OmegaConf.to_container(OmegaConf.load(out / "final" / "config.yaml"))["result"]
    n_valid = len((Path(corpus["valid"])).read_text().splitlines())
    assert n_valid == 16
    assert result["valid_accuracy"] > 0.25 + 1 / n_valid, result  # chance is 1/4 (4 balanced classes)
