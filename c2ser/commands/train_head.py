"""``c2ser train-head --config HEAD.yaml [key=value ...]``: the output-head stage (Gen-SER or CE baseline).

One process, or data-parallel under ``accelerate launch [--config_file recipes/accelerate/ds_zero2.yaml]
--num_processes N -m c2ser.cli train-head …`` (see ``c2ser/training/head_stage.py``)."""
from __future__ import annotations

import os


def add_arguments(p):
    p.add_argument("--config", action="append", default=[], help="YAML head-stage config(s), merged in order")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. kind=ce backbone=exp/stage2/final")


def run(args):
    from c2ser.config import load_config
    from c2ser.training.head_stage import HeadStageConfig, train_head_stage

    cfg = load_config(HeadStageConfig, args.config or None, args.overrides)
    final = train_head_stage(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"head checkpoint: {final}")
