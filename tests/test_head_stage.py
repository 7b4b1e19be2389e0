"""The output-head stage on a frozen tiny backbone: trains, saves, and evaluates through ``c2ser eval``."""
import json
import shutil
from pathlib import Path

import pytest
import torch

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
