"""Training data: manifest rows → items (log-mel, SSL tokens, both prompt/target variants) → batches.

Each item carries the explicit and the implicit prompt/target; the loop decides per batch which one is used
(stage 2 schedule) and :func:`collate` builds the model batch with :class:`C2SERProcessor`.

Chat variety (``chat_prompts`` > 0, training only): with that probability per clip and epoch, the fixed prompts are
replaced by a question drawn from :data:`c2ser.prompts.EXPLICIT_QUESTIONS` / ``IMPLICIT_QUESTIONS`` in English or
Chinese, answered in the question's language (:func:`c2ser.data.cot.targets`); an implicit question is followed,
with probability ``FOLLOW_UP``, by "why do you think so?" answered with the explicit reasoning, laid out as
``c2ser chat`` lays out a second turn (``answer "\n" question "\n" answer``).

Waveform transform (``wave_transform``: a :class:`c2ser.data.augment.Augmenter` in training, a
:class:`c2ser.data.augment.Condition` in evaluation): applied to the decoded clip before the log-mel; Emotion2Vec-S
then hears the same transformed wave (the item carries ``wav``, features are computed online; cached features,
of the clean clip, are not used). With ``cache`` the clean wave is kept, not its mel. With ``clean_copies``
(``data.augment.keep_clean``) the dataset has every clip twice: index ``i < N`` is row ``i`` transformed, index
``N + i`` is row ``i`` clean (its wave as loaded, Emotion2Vec-S online as for the transformed copy).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from c2ser.audio import load_audio
from c2ser.models.processor import C2SERProcessor
from c2ser.models.whisper_encoder import MAX_SECONDS
from c2ser.prompts import (EXPLICIT_PROMPT, EXPLICIT_QUESTIONS, GEN_SER_PROMPT, IMPLICIT_PROMPT, IMPLICIT_QUESTIONS,
                           WHY_QUESTIONS)
from c2ser.training.specaug import spec_augment, spec_sub

PROMPTS = {"explicit": EXPLICIT_PROMPT, "implicit": IMPLICIT_PROMPT, "gen-ser": GEN_SER_PROMPT}
TARGET_FIELDS = {"explicit": "explicit_target", "implicit": "implicit_target", "gen-ser": None}
FOLLOW_UP = 0.3            # share of varied implicit questions followed by "why?" (chat_prompts > 0)
FOLLOW_UP_TOKENS = 16      # room left for the follow-up question in the batch caps


def chat_variant(row: dict, rng: random.Random) -> dict[str, tuple[str, str]] | None:
    """Varied (question, answer) pairs for the explicit and implicit tasks of ``row`` in a random language, or None
    when the row has no style bins to phrase the reasoning with."""
    from c2ser.data.cot import targets

    style = row.get("style") or {}
    if not all(style.get(f) for f in ("pitch_bin", "volume_bin", "pace_bin")) or not row.get("emotion"):
        return None
    lang = rng.choice(("en", "zh"))
    explicit, implicit = targets(dict(row, language=lang))
    answer = implicit
    if rng.random() < FOLLOW_UP:
        answer = f"{implicit}\n{rng.choice(WHY_QUESTIONS[lang])}\n{explicit}"
    return {"explicit": (rng.choice(EXPLICIT_QUESTIONS[lang]), explicit),
            "implicit": (rng.choice(IMPLICIT_QUESTIONS[lang]), answer)}


def read_rows(path: str | Path) -> list[dict]:
    from c2ser.data.manifest import read_manifest

    return read_manifest(path)


def load_ssl(feature_dir: str | Path, key: str) -> np.ndarray:
    from c2ser.safe_io import load_features_npy

    f = Path(feature_dir) / f"{key}.npy"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no Emotion2Vec-S features for clip {key!r} (run feature extraction)")
    return load_features_npy(f)


class ManifestDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict], processor: C2SERProcessor, feature_dir: str | None, ssl_enabled: bool,
                 spec_augment: bool = False, seed: int = 0, chat_prompts: float = 0.0, cache: bool = False,
                 wave_transform=None, clean_copies: bool = False):
        if not 0.0 <= chat_prompts <= 1.0:
            raise ValueError(f"data.chat_prompts={chat_prompts}: expected a probability in [0, 1]")
        if clean_copies and wave_transform is None:
            raise ValueError("clean_copies: there is no wave transform to keep a clean copy beside")
        # cache: clip index → (mel, ssl features or waveform), filled on first load (per process / worker)
        self.cache = {} if cache else None
        self.rows, self.processor, self.chat_prompts = rows, processor, chat_prompts
        self.feature_dir, self.ssl_enabled = feature_dir, ssl_enabled
        self.wave_transform, self.clean_copies = wave_transform, clean_copies
        self.spec_augment, self.seed, self.epoch = spec_augment, seed, 0
        tok = processor.tokenizer
        prompt_len = {t: len(tok(p, add_special_tokens=False)["input_ids"]) for t, p in PROMPTS.items()}
        # lengths used by the batch caps: mel frames as the encoder sees them (cropped clips: at most 30 s)
        # and the longer (explicit) LLM sequence
        crop = processor.long_audio == "crop"
        self.frames = [int(round((min(r["duration"], MAX_SECONDS) if crop else r["duration"]) * 100)) for r in rows]
        self.tokens = []
        for r, f in zip(rows, self.frames):
            speech = (10 if ssl_enabled else 0) + (f + 7) // 8 + 2
            target_len = {t: len(tok(r.get(TARGET_FIELDS[t]) or "", add_special_tokens=False)["input_ids"])
                          for t in ("explicit", "implicit")}
            text = max(prompt_len[t] + target_len[t] for t in ("explicit", "implicit"))
            if chat_prompts > 0:  # a varied question (either language) followed by the reasoning: a rough bound
                text = 2 * (max(prompt_len.values()) + target_len["explicit"] + target_len["implicit"]) \
                    + FOLLOW_UP_TOKENS
            self.tokens.append(speech + text + 1)
        if clean_copies:  # indices N..2N-1: the same clips, clean
            self.frames, self.tokens = self.frames * 2, self.tokens * 2

    def __len__(self) -> int:
        return len(self.rows) * (2 if self.clean_copies else 1)

    def __getitem__(self, i: int) -> dict:
        j = i % len(self.rows)  # the row (i itself with no clean copies)
        r = self.rows[j]
        if self.wave_transform is not None:
            wav = self.cache.get(j) if self.cache is not None else None
            if wav is None:
                wav = load_audio(r["audio"], channel=r.get("channel"), start=r.get("start"), end=r.get("end"))
                if self.cache is not None:
                    self.cache[j] = wav
            if i == j:  # not a clean copy
                wav = self.wave_transform(wav, r, self.epoch)
            mel = self.processor.mel(wav, name=r["audio"])
            speech = {"wav": wav} if self.ssl_enabled else {}
        elif self.cache is not None and i in self.cache:
            mel, speech = self.cache[i]
        else:
            wav = load_audio(r["audio"], channel=r.get("channel"), start=r.get("start"), end=r.get("end"))
            mel = self.processor.mel(wav, name=r["audio"])
            speech = {}
            if self.ssl_enabled and self.feature_dir:
                speech["ssl"] = load_ssl(self.feature_dir, r["key"])
            elif self.ssl_enabled:
                speech["wav"] = wav  # online features
            if self.cache is not None:
                self.cache[i] = (mel, speech)
        if self.spec_augment:  # on a copy: a cached mel stays clean
            gen = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) & 0x7FFFFFFF)
            mel = spec_sub(spec_augment(mel, gen), gen)
        item = {"key": r["key"], "index": i, "mel": mel, "emotion": r.get("emotion"), **speech}
        for t in PROMPTS:
            item[t] = (PROMPTS[t], r.get(TARGET_FIELDS[t]) if TARGET_FIELDS[t] else None)
        if self.chat_prompts > 0:
            rng = random.Random(f"{self.seed}/{self.epoch}/{i}")  # the same draw on every process and resume
            if rng.random() < self.chat_prompts:
                item.update(chat_variant(r, rng) or {})
        return item


def collate(processor: C2SERProcessor, items: list[dict], task: str, with_targets: bool = True) -> dict:
    """Model batch for ``task`` ("explicit" or "implicit")."""
    chosen = []
    for it in items:
        prompt, target = it[task]
        if with_targets and not target:
            raise ValueError(f"clip {it['key']!r} has no {TARGET_FIELDS[task]} (run the CoT label stage)")
        chosen.append({**{k: it[k] for k in ("mel", "ssl", "wav", "key") if k in it}, "prompt": prompt,
                       "target": target if with_targets else None})
    batch = processor.collate(chosen)
    batch["keys"] = [it["key"] for it in items]
    batch["emotions"] = [it.get("emotion") for it in items]
    return batch


def identity(x):
    return x


def to_json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)
