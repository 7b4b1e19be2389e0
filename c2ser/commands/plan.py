"""``c2ser plan --config CONF.yaml [--config ...] --gpus N --zero S --gpu-gb G [key=value ...]``: per-GPU training
memory of a config (parameters, gradients, optimizer states, activations at the batch caps) and whether it fits.
Nothing is loaded: the model is built on the ``meta`` device (see :mod:`c2ser.memory_plan`)."""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("--config", required=True, action="append",
                   help="YAML training config(s), merged in order (as for c2ser train)")
    p.add_argument("--gpus", type=int, default=1, help="data-parallel processes (GPUs), all nodes together")
    p.add_argument("--zero", type=int, default=2, choices=(0, 1, 2, 3),
                   help="DeepSpeed ZeRO stage (0 = nothing partitioned); the recipe uses 2")
    p.add_argument("--gpu-gb", type=float, default=80.0, help="memory of one GPU in GiB")
    p.add_argument("overrides", nargs="*",
                   help="key=value overrides, e.g. model.lora.r=16 data.max_tokens_in_batch=1200")


def run(args):
    from c2ser.config import load_config
    from c2ser.memory_plan import format_plan, plan
    from c2ser.training.config import TrainConfig

    # the plan reads no data: a placeholder manifest unless one is given
    cfg = load_config(TrainConfig, args.config, ["data.train_manifest=unused", *args.overrides])
    print(format_plan(plan(cfg, args.gpus, args.zero, args.gpu_gb), " + ".join(args.config)))
