"""The training loop end to end on tiny models: resume equality, frozen parts, 2-process DeepSpeed ZeRO-2."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = Path(__file__).parent / "helpers" / "train_worker.py"
REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", DS_ACCELERATOR="cpu", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
               TORCH_EXTENSIONS_DIR=str(REPO / ".torch_extensions"))
    env.pop("WORLD_SIZE", None)
    return env


def _run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def models_json(tiny_models, tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "models.json"
    p.write_text(json.dumps({k: str(v) for k, v in tiny_models.items()}))
    return p


def _weights(final: Path) -> dict:
    w = load_file(final / "model.safetensors")
    w.update({"lora." + k: v for k, v in load_file(final / "lora" / "adapter_model.safetensors").items()})
    return w


def _mean_of(dirs: list[Path]) -> dict:
    """The element-wise mean of checkpoints' weights, computed here with torch (not c2ser/averaging.py)."""
    ws = [_weights(d) for d in dirs]
    return {k: (sum(w[k].double() for w in ws) / len(ws)).to(ws[0][k].dtype) for k in ws[0]}


def _assert_final_is_the_mean_of_the_last_epochs(out: Path, epochs: list[int]):
    from omegaconf import OmegaConf

    kept = sorted((out / "epochs").iterdir(), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in kept] == [f"epoch-{e}" for e in epochs]
    final, mean, last = _weights(out / "final"), _mean_of(kept), _weights(kept[-1])
    assert final.keys() == mean.keys()
    for k in final:
        assert torch.equal(final[k], mean[k]), k
    assert any(not torch.equal(final[k], last[k]) for k in final)  # the mean is not the last epoch's end
    assert list(OmegaConf.load(out / "final" / "config.yaml").result.averaged_epochs) == epochs


def test_killed_and_resumed_run_ends_with_the_same_weights(models_json, tmp_path):
    """Checkpoint averaging on (the last 3 of 4 epochs): a run stopped after update 7 (its last state at update 6)
    resumes from state-6 to the uninterrupted run's epoch ends and final (averaged) weights."""
    corpus = tmp_path / "corpus"
    avg = ["average_last_epochs=3"]
    _run([sys.executable, str(WORKER), str(tmp_path / "full"), str(models_json), str(corpus), "-", *avg], tmp_path)
    _run([sys.executable, str(WORKER), str(tmp_path / "resumed"), str(models_json), str(corpus), "7", *avg], tmp_path)
    assert (tmp_path / "resumed" / "state-6").is_dir() and not (tmp_path / "resumed" / "final").exists()
    proc = _run([sys.executable, str(WORKER), str(tmp_path / "resumed"), str(models_json), str(corpus), "-", *avg],
                tmp_path)
    assert "resumed from" in proc.stdout + proc.stderr
    a, b = _weights(tmp_path / "full" / "final"), _weights(tmp_path / "resumed" / "final")
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert (a[k] == b[k]).all(), k
    _assert_final_is_the_mean_of_the_last_epochs(tmp_path / "full", [2, 3, 4])
    _assert_final_is_the_mean_of_the_last_epochs(tmp_path / "resumed", [2, 3, 4])
    log = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert {r["explicit"] for r in log} == {True, False}  # stage-2 schedule mixed both tasks
    # constant schedule with a 3-update warm-up: 1/3, 2/3, then the base lr, as applied by AdamW
    assert [r["lr_applied"] for r in log[:4]] == pytest.approx([2e-3 / 3, 4e-3 / 3, 2e-3, 2e-3])


def test_frozen_parameters_do_not_change(models_json, tmp_path, tiny_models):
    """Policy adapter_lora: the Whisper encoder and the LLM base weights stay bit-identical."""
    import torch

    from c2ser.checkpoint import load_model
    from c2ser.models.build import build_model
    from c2ser.testing import tiny_model_config

    _run([sys.executable, str(WORKER), str(tmp_path / "run"), str(models_json), str(tmp_path / "corpus"), "-",
          "model.trainable=adapter_lora", "max_epochs=1"], tmp_path)
    stored = load_file(tmp_path / "run" / "final" / "model.safetensors")
    assert not any(k.startswith("whisper.") for k in stored)
    torch.manual_seed(0)
    base = build_model(tiny_model_config(tiny_models))
    trained = load_model(tmp_path / "run" / "final")
    base_sd, new_sd = base.state_dict(), trained.state_dict()
    changed = [k for k in base_sd if not torch.equal(base_sd[k], new_sd[k])]
    assert changed and all(k.startswith(("downsampler", "adapter", "projection", "speech_markers")) or "lora_" in k
                           for k in changed)
    assert any("lora_" in k for k in changed)


def _official_warmup_lr(base, step, warmup):
    """WarmupLR of the official recipe, written out independently of c2ser.training.schedules."""
    return base * min(step / warmup, (warmup / step) ** 0.5)


# The recipe's own launch configs (bf16 included), at 2 processes on CPU (gloo). ds_zero2.yaml runs in the recipe
# rehearsal (tests/test_recipe_rehearsal.py), which checks the applied lr against the schedule too.
LAUNCH = {
    "ds_zero3": ["--config_file", "recipes/accelerate/ds_zero3.yaml"],
    "ddp_bf16": ["--config_file", "recipes/accelerate/ddp.yaml"],
}


@pytest.mark.parametrize("launch", list(LAUNCH))
def test_two_process_run_with_the_recipe_launch_configs(models_json, tmp_path, launch):
    """bf16 under DeepSpeed ZeRO-2/3 and DDP autocast; the lr AdamW really applied follows the warm-up schedule
    (DeepSpeed steps inside ``acc.backward``: the lr must be set before it)."""
    out = tmp_path / "run"
    env = {"ACCELERATE_USE_CPU": "true"} if launch.startswith("ddp") else {}
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", *LAUNCH[launch], "--num_processes", "2",
         "--main_process_port", "0", str(WORKER), str(out), str(models_json), str(tmp_path / "corpus"), "-",
         "max_epochs=12", "optim.scheduler=warmup_inverse_sqrt", "optim.warmup_steps=4", "optim.lr=2e-3",
         "average_last_epochs=2"],
        cwd=REPO, env={**_env(), **env}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    kind = "DistributedType.MULTI_CPU" if launch.startswith("ddp") else "DistributedType.DEEPSPEED"
    for r in ranks:
        assert r["distributed_type"] == kind and r["num_processes"] == 2
        assert r["backend"] == "gloo"
    if launch != "ds_zero3":  # ZeRO-3 ranks hold shards, not replicas
        assert ranks[0]["checksum"] == ranks[1]["checksum"]  # replicas identical after the run
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, len(log) + 1)) and len(log) >= 6
    for r in log:
        assert r["lr_applied"] == pytest.approx(_official_warmup_lr(2e-3, r["step"], 4), rel=1e-6), r
    losses = [r["loss"] for r in log]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    # the final weights: the mean of the last 2 epochs' ends (under ZeRO-3 loaded into the gathered parameters)
    _assert_final_is_the_mean_of_the_last_epochs(out, [11, 12])


def test_killed_and_resumed_run_with_augmentation_ends_with_the_same_weights(models_json, tmp_path):
    """data.augment on (noise, reverberation, level, pitch and telephone band drawn per seed/epoch/key; Emotion2Vec-S
    online on the augmented wave; keep_clean: each clip also clean in every epoch): a run stopped after update 4
    resumes from state-3 to the uninterrupted run's weights."""
    from c2ser.testing import build_tiny_emotion2vec

    e2v = build_tiny_emotion2vec(tmp_path / "e2v.pt")
    corpus = tmp_path / "corpus"
    common = ["max_epochs=2", f"model.ssl.checkpoint={e2v}", "data.feature_dir=null"]
    aug = ["data.augment.enabled=true", "data.augment.noise_prob=0.8", "data.augment.reverb_prob=0.5",
           "data.augment.keep_clean=true", "data.augment.pitch_prob=0.5", "data.augment.telephone_prob=0.5"]
    worker = [sys.executable, str(WORKER)]
    _run([*worker, str(tmp_path / "full"), str(models_json), str(corpus), "-", *common, *aug], tmp_path)
    _run([*worker, str(tmp_path / "resumed"), str(models_json), str(corpus), "4", *common, *aug], tmp_path)
    assert (tmp_path / "resumed" / "state-3").is_dir() and not (tmp_path / "resumed" / "final").exists()
    proc = _run([*worker, str(tmp_path / "resumed"), str(models_json), str(corpus), "-", *common, *aug], tmp_path)
    log = proc.stdout + proc.stderr
    assert "resumed from" in log and "augmentation on" in log
    n = sum(1 for _ in open(corpus / "train.jsonl"))
    assert f"each epoch has the {n} clips augmented and clean ({2 * n} items)" in log, log[-3000:]
    assert f"pitch shifts: {n} of {n} clips may be shifted" in log   # the toy tones carry their pitch and bin
    assert "telephone band on 50 % of the clips" in log
    a, b = _weights(tmp_path / "full" / "final"), _weights(tmp_path / "resumed" / "final")
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert (a[k] == b[k]).all(), k
