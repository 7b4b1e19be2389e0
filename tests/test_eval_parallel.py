"""Data-parallel ``c2ser eval`` (accelerate launch, 2 CPU processes over gloo): process 0 gathers every answer and
writes the same predictions file, in the same order, and the same metrics as one process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from c2ser.checkpoint import save_checkpoint
from c2ser.cli import main
from c2ser.evaluation.predictions import read_predictions
from c2ser.models.build import build_model
from c2ser.testing import make_toy_corpus, tiny_model_config

ROOT = Path(__file__).resolve().parents[1]


def _args(ckpt, corpus, out):
    return ["eval", "--checkpoint", str(ckpt), "--manifest", str(corpus["train"]), "--corpus", "synthetic",
            "--feature-dir", str(corpus["features"]), "--out", str(out), "--max-new-tokens", "6"]


def test_two_processes_write_what_one_process_writes(tiny_models, tmp_path):
    torch.manual_seed(0)
    m = build_model(tiny_model_config(tiny_models)).eval()
    with torch.no_grad():  # answers that differ between clips, so a misplaced row would show
        for name, p in m.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    ckpt = save_checkpoint(m, tmp_path / "ckpt")
    corpus = make_toy_corpus(tmp_path / "corpus", per_class=5)  # 20 clips → 2 batches of ≤ 16
    assert main(_args(ckpt, corpus, tmp_path / "one")) == 0

    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--main_process_port", "0", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    r = subprocess.run(launch + ["-m", "c2ser.cli", *_args(ckpt, corpus, tmp_path / "two")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "c2ser eval: 2 processes (MULTI_CPU, gloo backend)" in r.stderr  # really distributed
    assert r.stdout.count("synthetic [implicit] n=20") == 1  # one report, by process 0

    one = read_predictions(tmp_path / "one" / "predictions.jsonl")
    two = read_predictions(tmp_path / "two" / "predictions.jsonl")
    assert len(one) == 20 and len({p["prediction"] for p in one}) > 1
    assert two == one  # same rows, same order
    res1 = json.loads((tmp_path / "one" / "results.json").read_text())
    res2 = json.loads((tmp_path / "two" / "results.json").read_text())
    for k in ("n", "WA", "UA", "macro_F1", "unparsed_rate", "confusion"):
        assert res2[k] == res1[k], k
    assert (tmp_path / "two" / "predictions.fingerprint.json").read_text() == \
        (tmp_path / "one" / "predictions.fingerprint.json").read_text().replace(str(tmp_path / "one"), str(tmp_path / "two"))
