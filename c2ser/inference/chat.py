"""Multi-turn chat about one clip: the clip is encoded ONCE per :meth:`ChatSession.load_audio`, turns stream tokens.

Conversation layout (LLM input embeddings, contiguous, no chat template: the model is trained base-LM style)::

    turn 0 : [question_0 tokens][BOS_sp S W EOS_sp][answer_0 tokens]          (= the training layout)
    turn k : [ "\\n{question_k}\\n" tokens ][answer_k tokens]                   (appended after the previous answer)

The speech embeddings ``S W`` are cached after ``load_audio``; each ``ask`` re-runs the prefill over the kept
history and decodes greedily with the KV cache, calling ``stream_callback(text_piece)`` for every new piece of text.
History budget: when ``prefix + kept turns + new question + max_new_tokens`` exceeds ``max_context`` tokens, the
oldest turns after turn 0 are dropped (turn 0 holds the clip and is always kept).
"""
from __future__ import annotations

from typing import Callable

import torch

from c2ser.inference.loading import audio_item
from c2ser.models.processor import to_device
from c2ser.prompts import PROMPTS


class ChatSession:
    def __init__(self, model, processor, mode: str = "explicit", max_new_tokens: int = 128,
                 max_context: int = 2048, ssl_features=None):
        self.model, self.processor = model, processor
        self.max_new_tokens, self.max_context, self.ssl_features = max_new_tokens, max_context, ssl_features
        self.set_mode(mode)
        self.eos_id = model.tokenizer.eos_token_id  # decoding stops here
        self.speech = None      # (S, H) cached speech embeddings of the loaded clip
        self.path = None
        self.cropped = False    # the loaded clip is over 30 s: only its first 30 s were encoded
        self.turns: list[tuple[torch.Tensor, torch.Tensor]] = []  # (question ids, answer ids)

    def set_mode(self, mode: str) -> None:
        if mode not in ("implicit", "explicit"):
            raise ValueError(f"mode={mode!r}: expected implicit or explicit")
        self.mode = mode

    def reset(self) -> None:
        self.turns = []

    @torch.no_grad()
    def load_audio(self, path: str) -> None:
        """Encode a clip (once) and start a new conversation about it; ``self.cropped`` says if it was over 30 s."""
        item = audio_item(path, self.model, self.ssl_features)
        batch = to_device(self.processor.collate([dict(item, prompt="")]), self.model.device)
        speech, lengths = self.model.speech_from_batch(batch)
        self.speech, self.path = speech[0, : int(lengths[0])], str(path)
        self.cropped = bool(item.get("cropped"))
        self.reset()

    def _ids(self, text: str) -> torch.Tensor:
        ids = self.model.tokenizer(text, add_special_tokens=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.long, device=self.model.device)

    def _embeds(self, turns) -> torch.Tensor:
        m = self.model
        bos, eos = m.speech_markers.weight.to(self.speech.dtype)
        parts = []
        for i, (q, a) in enumerate(turns):
            parts.append(m.embed_ids(q))
            if i == 0:
                parts += [bos[None], self.speech, eos[None]]
            if a is not None:
                parts.append(m.embed_ids(a))
        return torch.cat(parts)[None]

    def context_length(self, turns=None) -> int:
        turns = self.turns if turns is None else turns
        return sum(len(q) + (0 if a is None else len(a)) for q, a in turns) + self.speech.shape[0] + 2

    @torch.no_grad()
    def ask(self, text: str, stream_callback: Callable[[str], None] | None = None) -> str:
        """Answer a question about the loaded clip (the first question defaults to the mode's prompt)."""
        if self.speech is None:
            raise ValueError("no audio loaded: use /load PATH (or load_audio) first")
        text = text.strip()
        if not self.turns:
            q = self._ids(text or PROMPTS[self.mode])
        else:
            q = self._ids(f"\n{text or PROMPTS[self.mode]}\n")
        turns = self.turns + [(q, None)]
        while len(turns) > 2 and self.context_length(turns) + self.max_new_tokens > self.max_context:
            del turns[1]  # drop the oldest turn after the clip's turn
        answer = self._greedy(self._embeds(turns), stream_callback)
        self.turns = turns[:-1] + [(q, answer)]
        return self.model.tokenizer.decode(answer, skip_special_tokens=True).strip()

    def _greedy(self, embeds: torch.Tensor, callback) -> torch.Tensor:
        llm, tok, eos = self.model.llm, self.model.tokenizer, self.eos_id
        out = llm(inputs_embeds=embeds, use_cache=True)
        ids, shown = [], ""
        for _ in range(self.max_new_tokens):
            nxt = int(out.logits[0, -1].argmax())
            if nxt == eos:
                break
            ids.append(nxt)
            if callback is not None:
                text = tok.decode(ids, skip_special_tokens=True)
                if len(text) > len(shown) and not text.endswith("\ufffd"):
                    callback(text[len(shown):])
                    shown = text
            nxt_emb = self.model.embed_ids(torch.tensor([[nxt]], device=embeds.device))
            out = llm(inputs_embeds=nxt_emb, past_key_values=out.past_key_values, use_cache=True)
        if callback is not None:  # flush a trailing incomplete multi-byte piece
            text = tok.decode(ids, skip_special_tokens=True)
            if len(text) > len(shown):
                callback(text[len(shown):])
        return torch.tensor(ids, dtype=torch.long, device=embeds.device)
