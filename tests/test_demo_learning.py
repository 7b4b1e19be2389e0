"""The demo's training recipe still learns (CI guard), on speech, with the demo's own stage configs.

Stage 1 then stage 2, each with the configs recipes/tiny/run.sh merges (recipes/c2ser/conf/{model,stageN,tiny}.yaml
+ recipes/tiny/conf/demo_stageN.yaml: learning rates, schedules, batch caps, fp32); only the epoch counts, the paths,
the seed and the validation schedule (once, at the end of stage 2) are set here. The data are the demo's own kind:
espeak-ng clips from c2ser/data/synthetic.py (4 emotions, English; 16 training clips per emotion; validation 8 per
emotion from held-out voices and held-out sentences), style bins and chain-of-thought targets computed as
data_prep/cot_labels.py computes them (per-speaker μ ± σ), Emotion2Vec features from a tiny random encoder (as at
``--size tiny``).

The bar: stage 2's greedy answers on the 32 validation clips. A random guesser over the 4 classes gets
X ~ Binomial(32, 1/4) of them right: P(X ≥ 15) = 0.0060 < 1 % while P(X ≥ 14) = 0.0159, so at least 15 of 32
correct answers are required (the test recomputes the tail with math.comb).
"""
import json
import math
import shutil

import pytest
import torch
from omegaconf import OmegaConf

from c2ser.audio import load_audio
from c2ser.cli import main
from c2ser.data.cot import add_bins, measure, targets
from c2ser.data.manifest import write_manifest
from c2ser.data.synthetic import build_synthetic_corpus
from c2ser.encoders.emotion2vec_loading import load_emotion2vec
from c2ser.features import extract_features
from c2ser.testing import build_tiny_emotion2vec
from c2ser.training.data import read_rows

from conftest import REPO
from deps import missing

CONF, DEMO = REPO / "recipes" / "c2ser" / "conf", REPO / "recipes" / "tiny" / "conf"
FOUR = ("neutral", "happy", "sad", "angry")
PER_CLASS, VALID_PER_CLASS = 16, 8
EPOCHS = {"stage1": 60, "stage2": 30}


def chance_tail(n: int, k: int, p: float = 0.25) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p): how often a random guesser gets at least k of n right."""
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread, as recipes/tiny/run.sh runs (OMP_NUM_THREADS=1): on a busy machine, 2 threads waiting on
    each other made a tiny update 100× slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(one_thread, tmp_path_factory):
    absent = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if absent:
        missing(" and ".join(absent), "not on PATH")
    root = tmp_path_factory.mktemp("demo_learning")
    paths = build_synthetic_corpus(root / "syn", emotions=FOUR, per_class=PER_CLASS, valid_per_class=VALID_PER_CLASS,
                                   test_per_class=0, langs=("en",), workers=2, progress=False)
    for split in ("train", "valid"):  # data_prep/cot_labels.py --group-by speaker, in process
        rows = read_rows(paths[split])
        for r in rows:
            r["style"] = measure(load_audio(r["audio"]), r["text"], r["language"])
        add_bins(rows, "speaker")
        for r in rows:
            r["explicit_target"], r["implicit_target"] = targets(r)
        write_manifest(rows, root / f"{split}.jsonl")
    e2v = load_emotion2vec(build_tiny_emotion2vec(root / "e2v.pt"), verbose=False)
    extract_features(read_rows(root / "train.jsonl") + read_rows(root / "valid.jsonl"), e2v, root / "features",
                     progress=False)
    return root


def _train(stage, corpus, tiny_models, out, *extra):
    return main(["train", "--config", str(CONF / "model.yaml"), "--config", str(CONF / f"{stage}.yaml"),
                 "--config", str(CONF / "tiny.yaml"), "--config", str(DEMO / f"demo_{stage}.yaml"),
                 f"data.train_manifest={corpus / 'train.jsonl'}", f"data.feature_dir={corpus / 'features'}",
                 f"model.whisper.name_or_path={tiny_models['whisper']}", f"model.llm.name_or_path={tiny_models['llm']}",
                 f"max_epochs={EPOCHS[stage]}", "valid_every=0", "save_every=100000", "log_every=1", "seed=0",
                 f"output_dir={out}", *extra])


def test_demo_stages_learn_emotion_from_speech(one_thread, corpus, tiny_models, tmp_path):
    n_valid = len(read_rows(corpus / "valid.jsonl"))
    assert n_valid == 4 * VALID_PER_CLASS
    bar = next(k for k in range(n_valid + 1) if chance_tail(n_valid, k) < 0.01)
    assert bar == 15 and chance_tail(n_valid, bar - 1) >= 0.01  # the docstring's numbers

    assert _train("stage1", corpus, tiny_models, tmp_path / "stage1") == 0
    losses = [json.loads(line)["loss"] for line in (tmp_path / "stage1" / "log.jsonl").read_text().splitlines()]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, (first, last)

    assert _train("stage2", corpus, tiny_models, tmp_path / "stage2", f"init_from={tmp_path / 'stage1' / 'final'}",
                  f"data.valid_manifest={corpus / 'valid.jsonl'}") == 0
    result = OmegaConf.to_container(OmegaConf.load(tmp_path / "stage2" / "final" / "config.yaml"))["result"]
    correct = round(result["valid_accuracy"] * n_valid)
    assert correct >= bar, f"{correct}/{n_valid} validation clips right; a random guesser gets {bar} in 1 % of runs"
