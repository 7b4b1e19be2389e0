"""The output-head stage on a frozen tiny backbone: trains, saves, and evaluates through ``c2ser eval``."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from c2ser.checkpoint import save_checkpoint
from c2ser.cli import main
from c2ser.evaluation.predictions import fingerprint_path, read_predictions
from c2ser.models.build import build_model
from c2ser.testing import build_tiny_emotion2vec, make_toy_corpus, tiny_model_config
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
    if kind == "gen_ser":  # the loading flags reach the head's backbone: Emotion2Vec-S online, no cached features
        e2v = build_tiny_emotion2vec(tmp_path / "e2v.pt")
        assert main(["eval", "--checkpoint", str(final), "--manifest", str(corpus["valid"]), "--corpus", "synthetic",
                     "--ssl-checkpoint", str(e2v), "--mode", "gen-ser", "--out", str(tmp_path / "ev_online")]) == 0
        online = read_predictions(tmp_path / "ev_online" / "predictions.jsonl")
        assert sorted(r["key"] for r in online) == sorted(r["key"] for r in rows)


def _barely_trained_gen_ser(tiny_models, tmp_path):
    """(head checkpoint, toy corpus): one epoch on 8 clips, so each answer depends on the sampler's noise."""
    torch.manual_seed(0)
    backbone = save_checkpoint(build_model(tiny_model_config(tiny_models)), tmp_path / "backbone")
    corpus = make_toy_corpus(tmp_path / "corpus", per_class=2)
    cfg = HeadStageConfig(backbone=str(backbone), kind="gen_ser", train_manifest=str(corpus["train"]),
                          feature_dir=str(corpus["features"]), labels=["neutral", "happy", "sad", "angry"],
                          conditioning="adapter", corpus="synthetic", epochs=1, batch_size=8, lr=1e-3, warmup=1,
                          output_dir=str(tmp_path / "head"))  # barely trained: the answer depends on the noise
    cfg.gen_ser.d_model, cfg.gen_ser.layers, cfg.gen_ser.heads, cfg.gen_ser.ffn = 32, 1, 2, 64
    cfg.gen_ser.code_dim, cfg.gen_ser.token_dim = 64, 16
    final = train_head_stage(cfg, progress=False)
    return final, corpus


def test_gen_ser_eval_answers_do_not_depend_on_batch_order_or_resume(tiny_models, tmp_path):
    """``c2ser eval --mode gen-ser``: whole manifest, reversed manifest, one clip alone, and a resumed run (half
    the predictions already written) give the same label and scores for every clip."""
    final, corpus = _barely_trained_gen_ser(tiny_models, tmp_path)
    manifest = corpus["train"]
    lines = manifest.read_text().splitlines(keepends=True)

    def run(name, text=None, prefill=None):
        m = manifest if text is None else tmp_path / f"{name}.jsonl"
        if text is not None:
            m.write_text(text)
        out = tmp_path / name
        if prefill is not None:
            out.mkdir()
            (out / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in prefill))
            # an interrupted run of the same evaluation: its fingerprint is there too
            shutil.copy(fingerprint_path(tmp_path / "full" / "predictions.jsonl"),
                        fingerprint_path(out / "predictions.jsonl"))
        assert main(["eval", "--checkpoint", str(final), "--manifest", str(m), "--corpus", "synthetic",
                     "--feature-dir", str(corpus["features"]), "--mode", "gen-ser", "--out", str(out)]) == 0
        return {r["key"]: (r["label"], r["scores"]) for r in read_predictions(out / "predictions.jsonl")}

    full = run("full")
    assert len(full) == len(lines) == 8
    reverse = run("reverse", "".join(lines[::-1]))
    alone = run("alone", lines[5])
    half = [r for r in read_predictions(tmp_path / "full" / "predictions.jsonl")][:4]
    resumed = run("resumed", prefill=half)
    assert reverse == full and resumed == full
    assert list(alone.items()) == [list(full.items())[5]]
    spread = {k: max(s.values()) for k, (_, s) in full.items()}
    assert max(spread.values()) < 0.99  # not saturated: the scores carry the sampler's noise


def test_gen_ser_predict_on_the_files_gives_eval_answers(tiny_models, tmp_path, capsys):
    """``c2ser predict --mode gen-ser`` on a clip whose manifest key is its file stem (the toy corpus, the demo's
    synthetic corpus) draws the same noise as ``c2ser eval``: same label, same scores."""
    final, corpus = _barely_trained_gen_ser(tiny_models, tmp_path)
    assert main(["eval", "--checkpoint", str(final), "--manifest", str(corpus["train"]), "--corpus", "synthetic",
                 "--feature-dir", str(corpus["features"]), "--mode", "gen-ser", "--out", str(tmp_path / "ev")]) == 0
    evaluated = {r["key"]: r for r in read_predictions(tmp_path / "ev" / "predictions.jsonl")}
    wavs = sorted((tmp_path / "corpus" / "wav").glob("toy-train-*.wav"))
    capsys.readouterr()
    assert main(["predict", *map(str, wavs), "--checkpoint", str(final), "--mode", "gen-ser",
                 "--ssl-features", str(corpus["features"]), "--batch-size", "3", "--json"]) == 0
    predicted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(predicted) == len(evaluated) == 8
    for p in predicted:
        e = evaluated[Path(p["file"]).stem]
        assert p["emotion"] == e["label"]
        assert p["scores"] == pytest.approx(e["scores"], abs=1e-4)
    assert max(max(r["scores"].values()) for r in evaluated.values()) < 0.99  # the noise matters to the scores
    # Emotion2Vec-S online (no cached features): predict's adapter conditioning computes them as eval's does
    e2v = build_tiny_emotion2vec(tmp_path / "e2v.pt")
    assert main(["eval", "--checkpoint", str(final), "--manifest", str(corpus["train"]), "--corpus", "synthetic",
                 "--ssl-checkpoint", str(e2v), "--mode", "gen-ser", "--out", str(tmp_path / "ev_online")]) == 0
    online = {r["key"]: r for r in read_predictions(tmp_path / "ev_online" / "predictions.jsonl")}
    capsys.readouterr()
    assert main(["predict", *map(str, wavs), "--checkpoint", str(final), "--mode", "gen-ser",
                 "--ssl-checkpoint", str(e2v), "--batch-size", "3", "--json"]) == 0
    predicted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(predicted) == 8 and any(online[k]["scores"] != evaluated[k]["scores"] for k in online)
    for p in predicted:
        e = online[Path(p["file"]).stem]
        assert p["emotion"] == e["label"] and p["scores"] == pytest.approx(e["scores"], abs=1e-4)


# ---- the accelerate head stage: resume, data parallelism, joint LoRA ----------------------------------------------

REPO = Path(__file__).resolve().parents[1]
LABELS = ["neutral", "happy", "sad", "angry"]
TINY_HEAD = {"gen_ser.d_model": 32, "gen_ser.layers": 1, "gen_ser.heads": 2, "gen_ser.ffn": 64,
             "gen_ser.code_dim": 64, "gen_ser.token_dim": 16, "ce.hidden": 32, "ce.dropout": 0.0}


@pytest.fixture(scope="module")
def stage_setup(tiny_models, tmp_path_factory):
    """(backbone checkpoint, toy corpus with 8 training and 4 validation clips) shared by the tests below."""
    tmp = tmp_path_factory.mktemp("head_stage")
    torch.manual_seed(0)
    backbone = save_checkpoint(build_model(tiny_model_config(tiny_models)), tmp / "backbone")
    return backbone, make_toy_corpus(tmp / "corpus", per_class=2)


def _overrides(setup, out, **kw) -> list[str]:
    backbone, corpus = setup
    base = {"backbone": backbone, "train_manifest": corpus["train"], "valid_manifest": corpus["valid"],
            "feature_dir": corpus["features"], "labels": "[" + ",".join(LABELS) + "]", "corpus": "synthetic",
            "conditioning": "adapter", "epochs": 3, "batch_size": 2, "lr": 2e-3, "warmup": 2, "output_dir": out,
            **TINY_HEAD, **kw}
    return [f"{k}={v}" for k, v in base.items()]


def _config(setup, out, **kw) -> HeadStageConfig:
    from c2ser.config import load_config

    return load_config(HeadStageConfig, None, _overrides(setup, out, **kw))


def _head_weights(final: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(final / "head" / "head.safetensors")


def test_killed_head_run_resumes_to_the_same_weights(stage_setup, tmp_path):
    """Stop after update 5 (last state at update 4), start again: it resumes from state-4 and ends with the
    weights of the uninterrupted run (EMA included, kept in the training state)."""
    kw = {"save_every": 2, "ema": 0.9, "kind": "gen_ser", "epochs": 2}  # 2 epochs x 4 batches = 8 updates
    full = train_head_stage(_config(stage_setup, tmp_path / "full", **kw), progress=False)
    out = tmp_path / "resumed"
    train_head_stage(_config(stage_setup, out, **kw), progress=False, stop_after_step=5)
    assert (out / "state-4").is_dir() and not (out / "final").exists()
    resumed = train_head_stage(_config(stage_setup, out, **kw), progress=False)
    a, b = _head_weights(full), _head_weights(resumed)
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # update 5 ran twice; on resume the log was cut back to state-4's update
    full_steps = [json.loads(line) for line in (full.parent / "log.jsonl").read_text().splitlines()]
    assert [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()] == \
        [r["loss"] for r in full_steps]


def _train_head_on_two_processes(setup, out, **kw) -> str:
    """``c2ser train-head`` under ``accelerate launch``, 2 CPU processes (gloo, fp32) on a free port; its output."""
    env = dict(os.environ, ACCELERATE_USE_CPU="true", PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1",
               DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--main_process_port", "0", "-m", "c2ser.cli", "train-head", *_overrides(setup, out, **kw)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_one_and_two_processes_give_the_same_head(stage_setup, tmp_path):
    """Same global batch (1 process x 2 accumulated batches = 2 processes x 1 batch), same data order and same
    Gen-SER noise (seeded per global batch): 2 DDP processes (gloo, fp32) end with the 1-process head. (Under
    DeepSpeed bf16 the backbone's states and the stored head weights are rounded to bf16, so equality holds only to
    bf16 precision; the recipe rehearsal runs that path with 2 processes.)"""
    one = train_head_stage(_config(stage_setup, tmp_path / "one", grad_accum=2), progress=False)
    out = _train_head_on_two_processes(stage_setup, tmp_path / "two")
    assert "data-parallel over 2 processes" in out and out.count("head checkpoint:") == 1  # the main process writes
    a, b = _head_weights(one), _head_weights(tmp_path / "two" / "final")
    assert a.keys() == b.keys()
    # attention key biases excepted: softmax ignores a bias added to every key, so their gradient is pure rounding
    # noise, which Adam normalises up to lr-sized steps; every other weight agrees to float rounding
    for w in (a, b):
        for k in [k for k in w if k.endswith("in_proj_bias")]:
            q, _, v = w[k].chunk(3)
            w[k] = torch.cat([q, v])
    diffs = {k: float((a[k] - b[k]).abs().max()) for k in a}
    assert max(diffs.values()) < 2e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:8]
    la = [json.loads(x)["loss"] for x in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert len(la) == len(lb) == 6 and la == pytest.approx(lb, rel=1e-4) and la[0] != la[-1]
    launch = OmegaConf.load(tmp_path / "two" / "final" / "head" / "config.yaml").launch
    assert launch.num_processes == 2 and launch.distributed_type == "MULTI_CPU"
    res = OmegaConf.load(tmp_path / "two" / "final" / "head" / "config.yaml").result
    assert res.valid_clips == 4  # every validation clip once, over both processes


def test_joint_lora_trains_lora_keeps_the_rest_and_still_answers_in_text(stage_setup, tmp_path):
    """train_backbone=lora + LM loss: the LoRA changes, every other backbone weight is bit-identical, the counts are
    head + LoRA, and the saved checkpoint answers in --mode gen-ser and --mode implicit."""
    from c2ser.checkpoint import load_model

    backbone, corpus = stage_setup
    final = train_head_stage(_config(stage_setup, tmp_path / "joint", kind="ce", conditioning="llm",
                                     train_backbone="lora", lm_loss_weight=0.5, backbone_lr=1e-2, epochs=1),
                             progress=False)
    before, after = load_model(backbone).state_dict(), load_model(final).state_dict()
    assert before.keys() == after.keys()
    lora = [k for k in before if "lora_" in k]
    assert lora and all(not torch.equal(before[k], after[k]) for k in lora if "lora_B" in k)
    assert all(torch.equal(before[k], after[k]) for k in before if "lora_" not in k)
    head, cfg = load_head(final)
    n_head = sum(p.numel() for p in head.parameters())
    n_lora = sum(before[k].numel() for k in lora)
    counts = OmegaConf.load(final / "head" / "config.yaml").parameters
    assert counts.head == n_head and counts.backbone_trainable == n_lora and counts.trainable == n_head + n_lora
    log = [json.loads(x) for x in (tmp_path / "joint" / "log.jsonl").read_text().splitlines()]
    assert all(r["loss"] == pytest.approx(r["ce"] + 0.5 * r["lm"], rel=1e-5) for r in log)
    for mode in ("gen-ser", "implicit"):
        assert main(["eval", "--checkpoint", str(final), "--manifest", str(corpus["valid"]), "--corpus", "synthetic",
                     "--feature-dir", str(corpus["features"]), "--mode", mode, "--max-new-tokens", "8",
                     "--out", str(tmp_path / f"ev_{mode}")]) == 0
        rows = read_predictions(tmp_path / f"ev_{mode}" / "predictions.jsonl")
        assert len(rows) == 4 and all(r["mode"] == mode for r in rows), mode


def test_joint_tuning_overlay_loads_over_the_recipe_head_configs():
    from c2ser.config import load_config

    conf = REPO / "recipes" / "c2ser" / "conf"
    cfg = load_config(HeadStageConfig, [conf / "head.yaml", conf / "head_tiny.yaml", conf / "head_lora.yaml"],
                      ["backbone=b", "train_manifest=t"])
    assert (cfg.train_backbone, cfg.lm_loss_weight, cfg.backbone_lr, cfg.lr) == ("lora", 0.5, 2e-5, 1e-3)
    with pytest.raises(ValueError, match="train_backbone"):
        load_config(HeadStageConfig, [conf / "head.yaml"], ["backbone=b", "train_manifest=t", "lm_loss_weight=1"])


def _online_backbone(stage_setup, tiny_models, tmp_path) -> tuple:
    """The stage setup with a backbone that runs a tiny Emotion2Vec-S checkpoint online (augmentation needs it)."""
    from c2ser.models.config import SSLConfig

    e2v = build_tiny_emotion2vec(tmp_path / "e2v.pt")
    torch.manual_seed(0)
    online = save_checkpoint(build_model(tiny_model_config(tiny_models, ssl=SSLConfig(dim=48, checkpoint=str(e2v)))),
                             tmp_path / "backbone_online")
    return online, stage_setup[1]


def test_augmented_head_is_the_same_on_one_and_two_processes(stage_setup, tiny_models, tmp_path):
    """With augmentation on (every clip noised, half of them reverberated, babble from other training clips; with
    keep_clean, one epoch of each clip augmented and clean: as many clips as 2 epochs without), 2 DDP processes end
    with the 1-process head: each clip's degradation depends on (seed, epoch, key) only, not on which process loads
    it or which clips share its shard."""
    setup = _online_backbone(stage_setup, tiny_models, tmp_path)
    kw = {"kind": "ce", "epochs": 1, "augment.enabled": "true", "augment.noise_prob": 1.0, "augment.keep_clean": "true",
          "augment.reverb_prob": 0.5, "augment.noise_kinds": "[babble,white]"}
    one = train_head_stage(_config(setup, tmp_path / "one", grad_accum=2, **kw), progress=False)
    _train_head_on_two_processes(setup, tmp_path / "two", **kw)
    a, b = _head_weights(one), _head_weights(tmp_path / "two" / "final")
    assert a.keys() == b.keys() and len(a) > 2
    # the pooling score's bias excepted: softmax over time ignores a bias added to every frame's score, so its
    # gradient is rounding noise that Adam normalises up to lr-sized steps (as the key biases above)
    diffs = {k: float((a[k] - b[k]).abs().max()) for k in a if k != "attn_score.bias"}
    assert max(diffs.values()) < 2e-5, sorted(diffs.items(), key=lambda kv: -kv[1])[:8]
    la = [json.loads(x)["loss"] for x in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    assert len(la) == len(lb) == 4 and la == pytest.approx(lb, rel=1e-4)
    augment = OmegaConf.load(tmp_path / "two" / "final" / "head" / "config.yaml").head_stage.augment
    assert augment.enabled is True and augment.keep_clean is True


def test_head_stage_with_augmentation_resumes_exactly_and_needs_online_emotion2vec(stage_setup, tiny_models, tmp_path):
    """augment.enabled: the head trains on degraded clips (drawn per seed, epoch, key; Emotion2Vec-S online), so it
    ends with other weights than on the clean clips, and a killed run resumes to the uninterrupted run's weights. A
    backbone without an Emotion2Vec-S checkpoint (cached clean features only) is refused, naming the setting."""
    with pytest.raises(ValueError, match="model.ssl.checkpoint"):
        train_head_stage(_config(stage_setup, tmp_path / "refused", **{"augment.enabled": "true"}), progress=False)

    setup = _online_backbone(stage_setup, tiny_models, tmp_path)
    kw = {"save_every": 2, "kind": "ce", "epochs": 2, "augment.enabled": "true", "augment.noise_prob": 1.0,
          "augment.reverb_prob": 0.5}
    full = train_head_stage(_config(setup, tmp_path / "full", **kw), progress=False)
    # the same run on the clean clips, Emotion2Vec-S online too (no cached features): only the augmentation differs
    clean = train_head_stage(_config(setup, tmp_path / "clean", **{**kw, "augment.enabled": "false",
                                                                 "feature_dir": "null"}), progress=False)
    out = tmp_path / "resumed"
    train_head_stage(_config(setup, out, **kw), progress=False, stop_after_step=5)
    assert (out / "state-4").is_dir() and not (out / "final").exists()
    resumed = train_head_stage(_config(setup, out, **kw), progress=False)
    a, b, c = _head_weights(full), _head_weights(resumed), _head_weights(clean)
    assert a.keys() == b.keys() == c.keys() and len(a) > 2
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the degraded clips changed what the head learnt
    assert OmegaConf.load(full / "head" / "config.yaml").head_stage.augment.enabled is True
