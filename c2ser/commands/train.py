"""``c2ser train --config CONF.yaml [key=value ...]``: one training stage (run it under ``accelerate launch``)."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("--config", required=True, action="append",
                   help="YAML training config(s), merged in order (see recipes/*/conf)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=1e-4 model.lora.r=16")


def run(args):
    from c2ser.config import load_config
    from c2ser.training.config import TrainConfig
    from c2ser.training.loop import train

    cfg = load_config(TrainConfig, args.config, args.overrides)
    final = train(cfg)
    print(f"checkpoint: {final}")
