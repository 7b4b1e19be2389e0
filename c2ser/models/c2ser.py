"""The C2SER model: speech in, text (or a head's conditioning) out.

Sequence layout (one row of a right-padded training batch)::

    | prompt tokens | BOS_sp | S (10 SSL tokens) | W (T'' Whisper tokens) | EOS_sp | target tokens <eos> | pad… |
    |<---------------- labels = -100 ------------------------------------->| target ids       | -100 |
    attention mask 1 on everything but the pads; positions 0..L-1 (contiguous packing, no holes)

For generation the prefix ``[prompt][BOS_sp S W EOS_sp]`` rows are *left*-padded and the LLM continues after EOS_sp.
Speech path: log-mel → :class:`WhisperEncoder` → :class:`CausalDownsampler` → prepend zero-padded SSL tokens →
:class:`GxlAdapter` → ``projection`` (Linear to the LLM width). The LLM is any HF causal LM, optionally wrapped
by peft LoRA.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from c2ser.models.adapter import CausalDownsampler, GxlAdapter
from c2ser.models.config import TRAINABLE_POLICIES, ModelConfig
from c2ser.models.whisper_encoder import WhisperEncoder

IGNORE = -100


@dataclass
class Assembled:
    """LLM inputs for a batch: embeddings, mask, labels (None without targets), per-row prefix lengths."""
    inputs_embeds: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor | None
    prefix_lengths: torch.Tensor


class C2SERModel(nn.Module):
    def __init__(self, cfg: ModelConfig, whisper: WhisperEncoder, llm: nn.Module, tokenizer):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        dim = whisper.dim
        if cfg.ssl.enabled and cfg.ssl.dim > dim:
            raise ValueError(f"ssl.dim {cfg.ssl.dim} > encoder width {dim}: SSL tokens are zero-padded, not projected")
        self.whisper = whisper
        self.downsampler = CausalDownsampler(dim)
        a = cfg.adapter
        self.adapter = GxlAdapter(dim, a.num_blocks, a.heads, a.ffn, a.dropout)
        llm_dim = llm.get_input_embeddings().embedding_dim  # (weights may be ZeRO-3 partitioned)
        self.projection = nn.Linear(dim, llm_dim)
        self.speech_markers = nn.Embedding(2, llm_dim)  # row 0 = BOS_sp, row 1 = EOS_sp
        self.llm = llm
        # transformers feeds the LM head a strided view (hidden[:, -k:] for logits_to_keep); on CPU a bf16 matmul of
        # such a view against the ~150k-row head allocates GBs of temporaries (+4 GiB for 8 clips at Qwen2-7B, the
        # difference between bench/full_size_cpu.sh's eval and predict), so the head gets a contiguous copy
        head = llm.get_output_embeddings()
        if head is not None:
            head.register_forward_pre_hook(_contiguous_inputs)
        self.ssl_encoder = None  # set by the builder when features are computed online
        self.set_trainable(cfg.trainable)

    # ---- parameters -------------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part: encoder, adapter (link), lora, llm (base weights)."""
        groups = {"encoder": list(self.whisper.parameters()), "adapter": [], "lora": [], "llm": []}
        for mod in (self.downsampler, self.adapter, self.projection, self.speech_markers):
            groups["adapter"] += list(mod.parameters())
        for name, p in self.llm.named_parameters():
            groups["lora" if "lora_" in name else "llm"].append(p)
        return groups

    def set_trainable(self, policy: str) -> None:
        parts = TRAINABLE_POLICIES[policy]
        for part, params in self.parameter_groups().items():
            for p in params:
                p.requires_grad_(part in parts)
        if self.ssl_encoder is not None:
            self.ssl_encoder.requires_grad_(False)

    def parameter_counts(self) -> dict[str, int]:
        counts = {k: sum(p.numel() for p in v) for k, v in self.parameter_groups().items()}
        counts["total"] = sum(p.numel() for p in self.parameters())
        counts["trainable"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return counts

    @property
    def device(self) -> torch.device:
        return self.projection.weight.device

    @property
    def llm_dtype(self) -> torch.dtype:
        return self.llm.get_input_embeddings().weight.dtype

    # ---- speech -----------------------------------------------------------------------------------
    def encode_speech(self, mel: torch.Tensor, mel_lengths: torch.Tensor, ssl: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel (+ SSL tokens) → speech embeddings (B, S, H_llm) and lengths S_i = n_ssl + T''_i."""
        w, lengths = self.whisper(mel, mel_lengths)
        w, lengths = self.downsampler(w, lengths)
        if self.cfg.ssl.enabled:
            if ssl is None:
                raise ValueError("this model expects Emotion2Vec-S features (ssl) for every clip")
            s = F.pad(ssl.to(w.dtype), (0, w.shape[-1] - ssl.shape[-1]))
            w, lengths = torch.cat([s, w], dim=1), lengths + s.shape[1]
        x = self.projection(self.adapter(w, lengths))
        return x.to(self.llm_dtype), lengths

    # ---- sequence assembly ------------------------------------------------------------------------
    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.llm.get_input_embeddings()(ids)

    def assemble(self, prompt_ids: torch.Tensor, prompt_lengths: torch.Tensor, speech: torch.Tensor,
                 speech_lengths: torch.Tensor, target_ids: torch.Tensor | None = None,
                 target_lengths: torch.Tensor | None = None, padding_side: str = "right") -> Assembled:
        """Pack ``[prompt][BOS S W EOS][target]`` per row contiguously and pad the rows (see module docstring)."""
        bos, eos = self.speech_markers.weight.to(speech.dtype)
        prompt_emb, target_emb = self.embed_ids(prompt_ids), None
        if target_ids is not None:
            target_emb = self.embed_ids(target_ids)
        rows, labels, prefix = [], [], []
        for i in range(speech.shape[0]):
            p, s = int(prompt_lengths[i]), int(speech_lengths[i])
            parts = [prompt_emb[i, :p], bos[None], speech[i, :s], eos[None]]
            lab = [torch.full((p + s + 2,), IGNORE, dtype=torch.long, device=speech.device)]
            if target_emb is not None:
                t = int(target_lengths[i])
                parts.append(target_emb[i, :t])
                lab.append(target_ids[i, :t])
            rows.append(torch.cat(parts))
            labels.append(torch.cat(lab))
            prefix.append(p + s + 2)
        L = max(r.shape[0] for r in rows)
        H = rows[0].shape[1]
        embeds = speech.new_zeros(len(rows), L, H)
        mask = torch.zeros(len(rows), L, dtype=torch.long, device=speech.device)
        lab_out = torch.full((len(rows), L), IGNORE, dtype=torch.long, device=speech.device)
        for i, (r, lab) in enumerate(zip(rows, labels)):
            n = r.shape[0]
            sl = slice(0, n) if padding_side == "right" else slice(L - n, L)
            embeds[i, sl], mask[i, sl], lab_out[i, sl] = r, 1, lab
        return Assembled(embeds, mask, lab_out if target_ids is not None else None,
                         torch.tensor(prefix, device=speech.device))

    def speech_from_batch(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech embeddings of a collated batch: cached SSL features, or computed from its ``wavs`` online."""
        ssl = batch.get("ssl")
        if ssl is None and self.ssl_encoder is not None and "wavs" in batch:
            # one clip at a time: exactly the vectors `c2ser extract-features` caches
            ssl = torch.cat([self.ssl_encoder.utterance_features([w], mode=self.cfg.ssl.mode)
                             for w in batch["wavs"]]).to(self.device)
        return self.encode_speech(batch["mel"], batch["mel_lengths"], ssl)

    # ---- training, prefill, generation ------------------------------------------------------------
    def forward(self, batch: dict) -> torch.Tensor:
        """Mean next-token cross-entropy over the target tokens of the batch."""
        speech, speech_lengths = self.speech_from_batch(batch)
        a = self.assemble(batch["prompt_ids"], batch["prompt_lengths"], speech, speech_lengths,
                          batch["target_ids"], batch["target_lengths"])
        return self.llm(inputs_embeds=a.inputs_embeds, attention_mask=a.attention_mask, labels=a.labels).loss

    def prefix_hidden_states(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """LLM prefill over ``[prompt][BOS S W EOS]`` only: last-layer hidden states (B, L, H) and mask (B, L)."""
        speech, speech_lengths = self.speech_from_batch(batch)
        a = self.assemble(batch["prompt_ids"], batch["prompt_lengths"], speech, speech_lengths)
        out = self.llm(inputs_embeds=a.inputs_embeds, attention_mask=a.attention_mask,
                       output_hidden_states=True, logits_to_keep=1)
        return out.hidden_states[-1], a.attention_mask.bool()

    @torch.no_grad()
    def generate(self, batch: dict, max_new_tokens: int = 128, num_beams: int = 1, do_sample: bool = False,
                 synced_gpus: bool = False, return_hit_limit: bool = False, **generate_kwargs):
        """Batched decoding after the speech prefix; greedy by default (deterministic). Returns the texts.

        The decoding is exactly the arguments given (a fresh ``GenerationConfig``; the LLM's own generation config
        is reset at load time, so nothing is inherited from its directory). Decoding stops at the end-of-answer
        token of the model config (``llm.eos_token``), the one appended to training targets. With
        ``return_hit_limit``: ``(texts, hit_limit)``, ``hit_limit[i]`` True when answer i has no end-of-answer token
        (stopped by ``max_new_tokens``, possibly cut before its conclusion).
        """
        from transformers import GenerationConfig

        speech, speech_lengths = self.speech_from_batch(batch)
        a = self.assemble(batch["prompt_ids"], batch["prompt_lengths"], speech, speech_lengths,
                          padding_side="left")
        eos = self.tokenizer.eos_token_id
        config = GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=do_sample,
                                  eos_token_id=eos, pad_token_id=eos, **generate_kwargs)
        out = self.llm.generate(inputs_embeds=a.inputs_embeds, attention_mask=a.attention_mask,
                                generation_config=config, synced_gpus=synced_gpus)
        texts = [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        if return_hit_limit:  # out = the new tokens only; a finished row ends with eos (then eos padding)
            return texts, (out != eos).all(dim=1).tolist()
        return texts


def _contiguous_inputs(module, args):
    return tuple(a.contiguous() if torch.is_tensor(a) else a for a in args)
