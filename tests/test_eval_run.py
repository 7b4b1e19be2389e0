"""``c2ser eval`` end to end on a tiny checkpoint: deterministic, resumable without duplicates, report written."""
import json

import pytest
import torch

from c2ser.checkpoint import save_checkpoint
from c2ser.cli import main
from c2ser.evaluation.predictions import read_predictions
from c2ser.models.build import build_model
from c2ser.testing import make_toy_corpus, tiny_model_config


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model(tiny_model_config(tiny_models)), root / "ckpt")
    return ckpt, make_toy_corpus(root / "corpus", per_class=3)


def _eval(ckpt, corpus, out, *extra):
    return main(["eval", "--checkpoint", str(ckpt), "--manifest", str(corpus["train"]), "--corpus", "synthetic",
                 "--feature-dir", str(corpus["features"]), "--out", str(out), "--max-new-tokens", "8", *extra])


def test_two_runs_give_identical_predictions_and_a_report(setup, tmp_path):
    ckpt, corpus = setup
    assert _eval(ckpt, corpus, tmp_path / "a") == 0
    assert _eval(ckpt, corpus, tmp_path / "b") == 0
    a, b = read_predictions(tmp_path / "a" / "predictions.jsonl"), read_predictions(tmp_path / "b" / "predictions.jsonl")
    assert len(a) == 12 and [r["prediction"] for r in a] == [r["prediction"] for r in b]
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["n"] == 12 and res["decoding"]["preset"] == "greedy" and (tmp_path / "a" / "confusion.png").exists()


def test_interrupted_run_resumes_without_duplicates(setup, tmp_path):
    ckpt, corpus = setup
    out = tmp_path / "r"
    assert _eval(ckpt, corpus, out, "--limit", "5") == 0  # "interrupted" after 5 clips
    first = read_predictions(out / "predictions.jsonl")
    assert len(first) == 5
    assert _eval(ckpt, corpus, out) == 0
    rows = read_predictions(out / "predictions.jsonl")
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12 and rows[:5] == first


def test_several_seeds_write_a_stability_report(setup, tmp_path):
    ckpt, corpus = setup
    assert _eval(ckpt, corpus, tmp_path / "s", "--decoding", "sample", "--seeds", "0,1", "--limit", "4") == 0
    st = json.loads((tmp_path / "s" / "stability.json").read_text())
    assert st["runs"] == 2 and 0.0 <= st["flip_rate"] <= 1.0
