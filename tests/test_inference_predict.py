"""c2ser predict: batched predictions equal model.generate per clip; bad files are reported, others still run."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from c2ser.inference.loading import load_for_inference
from c2ser.inference.predict import label_word_scores, predict_files
from c2ser.prompts import IMPLICIT_PROMPT
from inference_fixtures import make_checkpoint_and_clips


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    ckpt, feats, clips = make_checkpoint_and_clips(tiny_models, root)
    model, proc = load_for_inference(str(ckpt))
    return model, proc, ckpt, feats, clips, root


def _single(model, proc, clip, feats):
    from c2ser.audio import load_audio
    batch = proc.collate([dict(wav=load_audio(str(clip)), ssl=np.load(feats / f"{clip.stem}.npy"),
                               prompt=IMPLICIT_PROMPT)])
    return model.generate(batch, max_new_tokens=12)[0]


def test_batched_predictions_equal_single_clip_generation(setup):
    model, proc, _, feats, clips, _ = setup
    preds = predict_files(model, proc, [str(c) for c in clips], "implicit", batch_size=2, ssl_features=feats,
                          max_new_tokens=12)
    assert [p.file for p in preds] == [str(c) for c in clips] and not any(p.error for p in preds)
    for p, c in zip(preds, clips):
        assert p.text == _single(model, proc, c, feats)


def test_missing_ssl_features_is_a_clear_error(setup):
    model, proc, _, _, clips, _ = setup
    [p] = predict_files(model, proc, [str(clips[0])], "implicit")
    assert "needs Emotion2Vec-S features" in p.error and str(clips[0]) in p.error


def test_gen_ser_without_head_is_a_clear_error(setup):
    model, proc, ckpt, feats, clips, _ = setup
    with pytest.raises(ValueError, match="needs a checkpoint with a trained head"):
        predict_files(model, proc, [str(clips[0])], "gen-ser", ssl_features=feats, head_dir=ckpt / "head")


def test_label_word_scores_are_a_distribution(setup):
    model, proc, _, feats, clips, _ = setup
    from c2ser.inference.loading import audio_item
    s = label_word_scores(model, proc, audio_item(clips[0], model, feats))
    assert len(s) == 7 and abs(sum(s.values()) - 1) < 1e-5 and len(set(round(v, 6) for v in s.values())) > 1


def test_cli_batch_with_a_bad_file(setup):
    model, proc, ckpt, feats, clips, root = setup
    bad = root / "bad.wav"
    bad.write_bytes(b"not audio at all")
    files = [str(clips[0]), str(bad), str(clips[1])]
    r = subprocess.run([sys.executable, "-m", "c2ser.cli", "predict", *files, "--checkpoint", str(ckpt),
                        "--ssl-features", str(feats), "--json", "--batch-size", "2", "--max-new-tokens", "12"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr  # non-zero only when nothing could be predicted
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["file"] for x in rows] == [str(clips[0]), str(clips[1])]
    assert rows[0]["text"] == _single(model, proc, clips[0], feats)
    errors = [x for x in r.stderr.splitlines() if "error" in x]
    assert len(errors) == 1 and str(bad) in errors[0] and "2/3 files predicted" in r.stderr


class _StandInHead(torch.nn.Module):
    """Same call contract as c2ser.heads.CEHead.predict (a linear probe on the mean prefix state)."""
    def __init__(self, dim, classes):
        super().__init__()
        self.label_sets = [list(classes)]
        self.lin = torch.nn.Linear(dim, len(classes))

    def predict(self, cond, cond_mask, keys=None):
        m = cond_mask.unsqueeze(-1).float()
        p = self.lin((cond * m).sum(1) / m.sum(1)).softmax(-1)
        return p.argmax(-1), p


def test_gen_ser_mode_with_a_head(setup, monkeypatch):
    import c2ser.inference.predict as pred
    model, proc, _, feats, clips, root = setup
    torch.manual_seed(0)
    head = _StandInHead(model.llm.config.hidden_size, ["neutral", "happy", "sad", "angry"])
    monkeypatch.setattr(pred, "load_head", lambda d: head)
    out = predict_files(model, proc, [str(c) for c in clips], "gen-ser", batch_size=2, ssl_features=feats)
    for p, c in zip(out, clips):
        one = proc.collate([dict(wav=__import__("c2ser.audio").audio.load_audio(str(c)),
                                 ssl=np.load(feats / f"{c.stem}.npy"), prompt="emotion:")])
        h, m = model.prefix_hidden_states(one)
        _, ref = head.predict(h, m)
        assert list(p.scores) == head.label_sets[0] and p.emotion == max(p.scores, key=p.scores.get)
        assert np.allclose(list(p.scores.values()), ref[0].detach().numpy(), atol=1e-5)


def test_predict_answer_length_limit_follows_the_mode():
    """Explicit answers get the release's 400 new tokens (a description before the emotion), implicit 128; an
    explicit --max-new-tokens wins; chat turns 128."""
    import argparse

    from c2ser.commands import predict
    from c2ser.commands._model_args import decoding_kwargs, max_new_tokens

    p = argparse.ArgumentParser()
    predict.add_arguments(p)
    parse = lambda *a: p.parse_args(["a.wav", "--checkpoint", "ckpt", *a])  # noqa: E731
    assert decoding_kwargs(parse("--mode", "explicit")) == {"max_new_tokens": 400}
    assert decoding_kwargs(parse("--mode", "implicit")) == {"max_new_tokens": 128}
    assert decoding_kwargs(parse("--mode", "explicit", "--max-new-tokens", "50")) == {"max_new_tokens": 50}
    assert decoding_kwargs(parse("--decoding", "parity"))["max_new_tokens"] == 400
    assert max_new_tokens(parse(), "chat") == 128
