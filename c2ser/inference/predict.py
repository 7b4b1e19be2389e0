"""Emotion prediction for audio files: batched generation (implicit/explicit prompts) or a Gen-SER head, per-file
errors kept apart (a bad file never stops the others), and label-word scores from the LLM's next-token probabilities.

Every file is read and checked (:func:`c2ser.inference.loading.audio_item`) before any batching, so a bad file
gets its own one-line error and the good ones are predicted; should a batch still fail, its clips are retried one
at a time so only the culprit fails.

Label-word scores (used by the web demo when no head exists): after ``[implicit prompt][BOS S W EOS]`` the prefix
``"The emotion of this speech is"`` is appended; the score of a class is the softmax, over the seven classes, of the
logit of the first token of ``" <word>"`` at the next position.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from c2ser.inference.loading import audio_item
from c2ser.labels import EMOTIONS, EN_WORD
from c2ser.models.processor import to_device
from c2ser.prompts import PROMPTS

ANSWER_STEM = "The emotion of this speech is"


@dataclass
class Prediction:
    file: str
    emotion: str | None = None
    text: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    cropped: bool = False  # longer than 30 s: only the first 30 s were heard


def parse_label(text: str) -> str | None:
    from c2ser.evaluation.parse import parse_emotion

    return parse_emotion(text).label


def _chunks(seq: list, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def read_items(paths: list[str], model, ssl_features=None) -> tuple[list[tuple[str, dict]], list[Prediction]]:
    """Read every file; unreadable ones become error predictions (one line each)."""
    ok, bad = [], []
    for p in paths:
        try:
            ok.append((p, audio_item(p, model, ssl_features)))
        except (ValueError, FileNotFoundError, OSError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            bad.append(Prediction(file=p, error=msg if str(p) in msg else f"{p}: {msg}"))
    return ok, bad


def predict_files(model, processor, paths: list[str], mode: str = "implicit", batch_size: int = 4,
                  ssl_features=None, head_dir: str | Path | None = None, **gen) -> list[Prediction]:
    """Predictions in the order of ``paths``; failed files carry ``error``."""
    if mode not in PROMPTS:
        raise ValueError(f"mode={mode!r}: expected one of {sorted(PROMPTS)}")
    head = load_head(head_dir) if mode == "gen-ser" else None
    ok, bad = read_items(paths, model, ssl_features)
    results = {p.file: p for p in bad}
    for chunk in _chunks(ok, batch_size):
        try:
            outs = _predict_chunk(model, processor, chunk, mode, head, gen)
        except (ValueError, RuntimeError):
            for one in chunk:  # find the culprit: one clip at a time
                results.update(_predict_or_error(model, processor, [one], mode, head, gen))
            continue
        for (p, it), (label, text, scores) in zip(chunk, outs):
            results[p] = Prediction(file=p, emotion=label, text=text, scores=scores, cropped=it.get("cropped", False))
    return [results[p] for p in paths]


def _predict_chunk(model, processor, chunk, mode, head, gen) -> list[tuple]:
    items = [dict(it, prompt=PROMPTS[mode]) for _, it in chunk]
    batch = to_device(processor.collate(items), model.device)
    if head is not None:
        keys = [it["key"] for _, it in chunk]
        return [(max(s, key=s.get), "", s) for s in head_scores(head, model, batch, keys)]
    return [(parse_label(t), t, {}) for t in model.generate(batch, **gen)]


def _predict_or_error(model, processor, chunk, mode, head, gen) -> dict[str, Prediction]:
    [(p, it)] = chunk
    try:
        [(label, text, scores)] = _predict_chunk(model, processor, chunk, mode, head, gen)
    except (ValueError, RuntimeError) as e:
        return {p: Prediction(file=p, error=f"{p}: {str(e).splitlines()[0]}")}
    return {p: Prediction(file=p, emotion=label, text=text, scores=scores, cropped=it.get("cropped", False))}


@torch.no_grad()
def label_word_scores(model, processor, item: dict, classes=EMOTIONS) -> dict[str, float]:
    """Class probabilities from the next-token logits after the implicit prompt + answer stem (module docstring)."""
    batch = to_device(processor.collate([dict(item, prompt=PROMPTS["implicit"])]), model.device)
    speech, lengths = model.speech_from_batch(batch)
    a = model.assemble(batch["prompt_ids"], batch["prompt_lengths"], speech, lengths)
    stem = torch.tensor(model.tokenizer(ANSWER_STEM, add_special_tokens=False)["input_ids"], device=model.device)
    embeds = torch.cat([a.inputs_embeds[0], model.embed_ids(stem)])[None]
    logits = model.llm(inputs_embeds=embeds).logits[0, -1].float()
    first = [model.tokenizer(" " + EN_WORD[c], add_special_tokens=False)["input_ids"][0] for c in classes]
    probs = torch.softmax(logits[first], dim=0)
    return {c: float(p) for c, p in zip(classes, probs)}


# ---- Gen-SER head adapter (the only place that touches c2ser.heads) ------------------------------------------
def load_head(head_dir: str | Path | None):
    """The checkpoint's ``head/`` (written by ``c2ser train-head``), with its conditioning kind attached."""
    if head_dir is None or not Path(head_dir).is_dir():
        raise ValueError(f"gen-ser mode needs a checkpoint with a trained head (no head/ directory at {head_dir})")
    from c2ser.training.head_stage import load_head as _load

    head, cfg = _load(head_dir)
    head.conditioning = cfg.conditioning
    return head


@torch.no_grad()
def head_scores(head, model, batch: dict, keys: list[str] | None = None) -> list[dict[str, float]]:
    """Per-clip class probabilities from a head conditioned on the LLM prefix hidden states.

    Heads follow ``c2ser.heads``: ``GenSERHead.sample(cond, cond_mask)`` / ``CEHead.predict(cond, cond_mask)`` →
    ``(pred_index (B,), scores (B, K))`` for one slot; class names in ``head.label_sets[0]``. ``keys`` name the
    clips: a Gen-SER head draws each clip's noise from its key, so an answer never depends on the batch.
    """
    if getattr(head, "conditioning", "llm") == "adapter":
        hidden, lengths = model.speech_from_batch(batch)  # cached SSL features, or computed online
        mask = torch.arange(hidden.shape[1], device=hidden.device)[None] < lengths[:, None]
    else:
        hidden, mask = model.prefix_hidden_states(batch)
    run = head.sample if hasattr(head, "sample") else head.predict
    _, scores = run(hidden.float(), mask, keys=keys)
    classes = head.label_sets[0]
    return [{c: float(p) for c, p in zip(classes, row)} for row in scores]
