"""Run by tests/test_recipe_rehearsal.py under ``accelerate launch``: a recipe training run again, from the
``train`` section of its checkpoint's config.yaml (the run's exact resolved settings), into OUT_DIR (where the test
put a saved ``state-N``: the run resumes from it). Then, on each rank, every frozen parameter of the trained
engine's model is compared with a fresh load of the base (in the dtype the engine holds it).

usage: resume_worker.py CONFIG_YAML OUT_DIR
Writes OUT_DIR/frozen_rank{R}.json: {"frozen": number of frozen tensors, "changed": names of those that differ}.
"""
import json
import sys
from pathlib import Path

import torch

from c2ser.config import load_config
from c2ser.models.build import build_model
from c2ser.training import loop
from c2ser.training.config import TrainConfig


def main():
    config, out = Path(sys.argv[1]), Path(sys.argv[2])
    # no validation at the end: it decodes, and changes no weight
    cfg = load_config(TrainConfig, config, [f"output_dir={out}", "data.valid_manifest=null"], section="train")
    captured = {}
    real_prepare = loop.Accelerator.prepare

    def prepare(self, *args):
        captured["acc"] = self
        return real_prepare(self, *args)

    loop.Accelerator.prepare = prepare
    loop.train(cfg)
    acc = captured["acc"]
    trained = acc.unwrap_model(acc._models[0])
    fresh = dict(build_model(cfg.model).named_parameters())
    frozen = [(n, p) for n, p in trained.named_parameters() if not p.requires_grad]
    changed = [n for n, p in frozen if not torch.equal(p.detach().cpu(), fresh[n].detach().to(p.dtype))]
    (out / f"frozen_rank{acc.process_index}.json").write_text(json.dumps({"frozen": len(frozen), "changed": changed}))


if __name__ == "__main__":
    main()
