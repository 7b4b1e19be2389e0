"""Chat: the clip is encoded once per conversation, streaming equals the answer, history budget trims, CLI via stdin."""
import subprocess
import sys

import pytest
import torch

from c2ser.inference.chat import ChatSession
from c2ser.inference.loading import load_for_inference
from c2ser.prompts import EXPLICIT_PROMPT
from inference_fixtures import make_checkpoint_and_clips


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    ckpt, feats, clips = make_checkpoint_and_clips(tiny_models, tmp_path_factory.mktemp("chat"), n=2)
    model, proc = load_for_inference(str(ckpt))
    return model, proc, ckpt, feats, clips


def test_encoder_runs_once_and_streaming_matches(setup, monkeypatch):
    model, proc, _, feats, clips = setup
    chat = ChatSession(model, proc, "explicit", max_new_tokens=10, ssl_features=feats)
    calls = []
    orig = model.whisper.forward
    monkeypatch.setattr(model.whisper, "forward", lambda *a, **k: calls.append(1) or orig(*a, **k))
    chat.load_audio(str(clips[0]))
    pieces = []
    first = chat.ask("", stream_callback=pieces.append)
    second = chat.ask("why do you think so?")
    third = chat.ask("describe the speaking style")
    assert len(calls) == 1 and len(chat.turns) == 3
    assert "".join(pieces).strip() == first
    # turn 0 equals model.generate on the training layout with the mode's prompt (greedy)
    from c2ser.audio import load_audio
    import numpy as np
    batch = proc.collate([dict(wav=load_audio(str(clips[0])), ssl=np.load(feats / "clip0.npy"),
                               prompt=EXPLICIT_PROMPT)])
    assert first == model.generate(batch, max_new_tokens=10)[0]
    # later turns continue after the previous answer: the embeds hold every earlier token
    assert chat.context_length() == sum(len(q) + len(a) for q, a in chat.turns) + chat.speech.shape[0] + 2
    dec = model.tokenizer.decode  # each later turn holds its question, as asked, and the answer returned
    assert [(dec(q), dec(a, skip_special_tokens=True).strip()) for q, a in chat.turns[1:]] == [
        ("\nwhy do you think so?\n", second), ("\ndescribe the speaking style\n", third)]
    n = len(calls)  # model.generate above ran the encoder once more
    chat.load_audio(str(clips[1]))
    assert len(calls) == n + 1 and chat.turns == []


def test_history_budget_drops_oldest_turns(setup):
    model, proc, _, feats, clips = setup
    chat = ChatSession(model, proc, max_new_tokens=6, ssl_features=feats)
    chat.load_audio(str(clips[0]))
    chat.ask("")
    q0 = chat.turns[0][0]
    for i in range(4):
        chat.ask(f"question {i}")
    full = chat.context_length()
    chat.max_context = full  # next question + 6 new tokens no longer fit with every turn kept
    chat.ask("one more")
    assert torch.equal(chat.turns[0][0], q0)  # the clip's turn stays
    assert len(chat.turns) < 6 and chat.context_length(chat.turns[:-1] + [(chat.turns[-1][0], None)]) + 6 <= full


def test_ask_without_audio_is_a_clear_error(setup):
    model, proc, *_ = setup
    with pytest.raises(ValueError, match="no audio loaded"):
        ChatSession(model, proc).ask("hi")


def test_cli_scripted_conversation(setup):
    model, proc, ckpt, feats, clips = setup
    script = (f"hello\n/load {clips[0]}\n/mode implicit\n\nwhy do you think so?\n/load /nonexistent.wav\n"
              f"/reset\ndescribe the speaking style\n")  # ends with EOF (no /quit)
    r = subprocess.run([sys.executable, "-m", "c2ser.cli", "chat", "--checkpoint", str(ckpt), "--ssl-features",
                        str(feats), "--max-new-tokens", "8"], input=script, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "no audio loaded" in r.stderr and "/nonexistent.wav" in r.stderr
    assert f"loaded {clips[0]}" in r.stdout and "mode implicit" in r.stdout and "conversation reset" in r.stdout
    assert r.stdout.count("c2ser> ") == 3
    chat = ChatSession(model, proc, "implicit", max_new_tokens=8, ssl_features=feats)
    chat.load_audio(str(clips[0]))
    expected = chat.ask("")
    assert expected and expected in r.stdout.split("mode implicit (used")[1]
