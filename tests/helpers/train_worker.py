"""Run by the training tests (under ``accelerate launch`` or plain python): train the tiny model on the toy corpus.

usage: train_worker.py OUT_DIR MODELS_JSON CORPUS_DIR [stop_after_step] [key=value ...]
Each process writes ``rank{R}.json``: distributed type, process count, backend and a checksum of its weights.
"""
import json
import sys
from pathlib import Path

import torch

from omegaconf import OmegaConf

from c2ser.config import from_dict, to_dict
from c2ser.testing import make_toy_corpus, tiny_model_config
from c2ser.training.config import DataConfig, OptimConfig, TrainConfig
from c2ser.training import loop


def main():
    out, models, corpus = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3])
    stop = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    c = make_toy_corpus(corpus)
    cfg = TrainConfig(model=tiny_model_config(models),
                      data=DataConfig(train_manifest=str(c["train"]), feature_dir=str(c["features"]),
                                      max_frames_in_batch=800, max_tokens_in_batch=800),
                      optim=OptimConfig(lr=2e-3, warmup_steps=3, grad_accum=2, scheduler="constant"),
                      task="distill", output_dir=str(out), max_epochs=4, seed=5, save_every=3, log_every=1)
    cfg.model.adapter.dropout = 0.1  # dropout on: resume must restore the RNG
    cfg = from_dict(TrainConfig, OmegaConf.merge(to_dict(cfg), OmegaConf.from_dotlist(sys.argv[5:])))
    captured = {}
    real_prepare = loop.Accelerator.prepare

    def prepare(self, *args):
        captured["acc"] = self
        captured["backend"] = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
        return real_prepare(self, *args)

    loop.Accelerator.prepare = prepare
    loop.train(cfg, stop_after_step=stop)
    acc = captured["acc"]
    model = acc.unwrap_model(acc._models[0])
    info = {"distributed_type": str(acc.distributed_type), "num_processes": acc.num_processes,
            "backend": captured["backend"],
            "checksum": {n: float(p.detach().double().sum()) for n, p in model.named_parameters() if p.requires_grad}}
    (out / f"rank{acc.process_index}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main()
