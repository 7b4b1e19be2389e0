"""Tiny models with the real architectures and real file formats, built locally (nothing downloads).

- :func:`build_tiny_whisper` writes an openai-whisper checkpoint ``{"dims", "model_state_dict"}`` that
  ``whisper.load_model(path)`` and our encoder both load.
- :func:`build_tiny_llm` writes a Hugging Face Qwen2 causal-LM directory (``config.json``, safetensors weights)
  with a byte-level BPE tokenizer trained with ``tokenizers`` using exactly Qwen2's normaliser and
  pre-tokenizer pipeline (so ``AutoTokenizer`` reloads it identically), Qwen's special tokens and a chat template.
  With ``pretrain_steps`` it is first pre-trained briefly (:func:`pretrain_tiny_llm`, next-token prediction on the
  tokenizer's texts and the recipe's prompt → answer pairs), so that a run with the LLM frozen and LoRA on, as the
  full recipe trains, adapts a language model instead of noise.

Used by the tests, the tiny demo recipe and the benchmarks' ``tiny`` size.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from c2ser.labels import EMOTIONS, EN_WORD, ZH_WORD

QWEN_SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                    r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TINY_WHISPER_DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                         n_vocab=51865, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2)


def _seed(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def build_tiny_whisper(path: str | Path, seed: int = 0, conv_gain: float = 4.0, **dims) -> Path:
    """Save a randomly initialised openai-whisper model (tiny dims unless overridden) as a ``.pt`` checkpoint."""
    import whisper
    from whisper.model import ModelDimensions

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = ModelDimensions(**{**TINY_WHISPER_DIMS, **dims})
    _seed(seed)
    model = whisper.model.Whisper(d)
    with torch.no_grad():  # whisper initialises LayerNorms to identity; perturb so tests are sensitive
        for name, p in model.named_parameters():
            if name.endswith("ln.weight") or name.endswith("ln_post.weight") or "ln" in name.split(".")[-2]:
                p.add_(0.1 * torch.randn_like(p))
        # larger conv gains so the audio, not the fixed positional embedding, dominates the random features
        # (a trained Whisper's features are input-driven; a linear probe on the tiny demo corpus: 79 % → 86 %)
        model.encoder.conv1.weight.mul_(conv_gain)
        model.encoder.conv2.weight.mul_(conv_gain)
    torch.save({"dims": dataclasses.asdict(d), "model_state_dict": model.state_dict()}, path)
    return path


def default_tokenizer_corpus() -> list[str]:
    """Texts the tiny tokenizer is trained on: prompts, target templates, label words, EN and ZH sentences."""
    from c2ser import prompts

    texts = [prompts.EXPLICIT_PROMPT, prompts.IMPLICIT_PROMPT, prompts.GEN_SER_PROMPT]
    for e in EMOTIONS:
        texts += [f"The emotion of this speech is {EN_WORD[e]}.", f"这条语音的情感为{ZH_WORD[e]}。",
                  f"From these cues, the emotion is {EN_WORD[e]}.", f"通过分析语音特征，推测情绪为{ZH_WORD[e]}。"]
    texts += [
        "The speaker says, at a fast pace with a high pitch and a loud voice: \"It is raining again today.\"",
        "The speaker says, at a slow pace with a low pitch and a quiet voice: \"I will call you tomorrow.\"",
        "at a medium pace with a medium pitch and a medium voice",
        "说话者以缓慢的速度、高昂的语调和中等音量的声音说道：“今天的天气很好。”",
        "说话者以快速的速度、低沉的语调和响亮音量的声音说道：“我们明天见。”",
        "joy joyful cheerful excited anger furious sadness sorrow calm astonished scared afraid not neither",
        "I think the speaker sounds happy because the voice is bright and fast. Why? The pitch is high.",
        "开心 快乐 喜悦 愤怒 悲伤 难过 平静 惊奇 恐惧 反感 不是 因为 声音 语调 很 高 低 快 慢",
        "0123456789 .,:;!?'\"()[]-_/ abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ]
    return texts


def train_tiny_tokenizer(texts: list[str], vocab_size: int = 1200):
    """A byte-level BPE tokenizer with Qwen2's exact normaliser/pre-tokenizer/decoder pipeline."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=QWEN_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts * 3, trainer=trainer)
    return tok


def pretrain_tiny_llm(llm, tokenizer, examples: list, steps: int, seed: int = 0, lr: float = 3e-3,
                      batch_size: int = 16) -> list[float]:
    """Next-token prediction on ``examples``, in place, fp32, seeded; returns the losses. An example is a text, or
    a (prompt, answer) pair whose parts are tokenized separately, as the C2SER model's prompt and target are; each
    ends with the eos token. A few hundred steps teach the tiny LLM the answers' words and templates: a stand-in
    for a real LLM's pre-training, which LoRA then adapts to speech."""
    from torch.nn.utils.rnn import pad_sequence

    eos = tokenizer.eos_token_id
    seqs = []
    for ex in dict.fromkeys(examples):
        parts = [ex] if isinstance(ex, str) else list(ex)
        ids = [i for part in parts for i in tokenizer(part, add_special_tokens=False)["input_ids"]]
        seqs.append(torch.tensor(ids + [eos]))
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(llm.parameters(), lr=lr, weight_decay=0.0)
    llm.train()
    losses = []
    for step in range(steps):
        rows = [seqs[i] for i in torch.randint(len(seqs), (batch_size,), generator=g).tolist()]
        ids = pad_sequence(rows, batch_first=True, padding_value=eos)
        mask = pad_sequence([torch.ones_like(r) for r in rows], batch_first=True)
        loss = llm(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        for group in opt.param_groups:  # linear decay to 0: the weights do not end on one noisy update
            group["lr"] = lr * (1 - (step + 1) / steps)
        losses.append(loss.item())
    llm.eval()
    return losses


def prompt_answer_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """(task prompt, target) of every manifest row, for both answer modes: the tiny LLM's pre-training corpus."""
    from c2ser.prompts import EXPLICIT_PROMPT, IMPLICIT_PROMPT

    pairs = []
    for r in rows:
        for prompt, field in ((EXPLICIT_PROMPT, "explicit_target"), (IMPLICIT_PROMPT, "implicit_target")):
            if r.get(field):
                pairs.append((prompt, r[field]))
    return pairs


def build_tiny_llm(path: str | Path, seed: int = 0, texts: list[str] | None = None, vocab_size: int = 1200,
                   hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
                   intermediate_size: int = 128, pretrain_steps: int = 0,
                   pretrain_pairs: list[tuple[str, str]] | None = None) -> Path:
    """Save a Qwen2ForCausalLM + tokenizer directory loadable with ``from_pretrained(path)``: random weights, or
    pre-trained for ``pretrain_steps`` (:func:`pretrain_tiny_llm`) on the tokenizer's texts and the (prompt,
    answer) ``pretrain_pairs``."""
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    raw = train_tiny_tokenizer((texts or []) + default_tokenizer_corpus(), vocab_size=vocab_size)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                  additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tok.chat_template = QWEN_CHAT_TEMPLATE
    tok.save_pretrained(path)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=intermediate_size,
                      num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                      max_position_embeddings=2048, tie_word_embeddings=True, bos_token_id=eos, eos_token_id=eos,
                      pad_token_id=eos)
    _seed(seed)
    llm = Qwen2ForCausalLM(cfg)
    if pretrain_steps:
        examples = (texts or []) + default_tokenizer_corpus() + list(pretrain_pairs or [])
        pretrain_tiny_llm(llm, tok, examples, pretrain_steps, seed=seed)
    llm.save_pretrained(path)
    return path


def build_tiny_models(root: str | Path, seed: int = 0, texts: list[str] | None = None,
                      emotion2vec: bool = False, llm_pretrain_steps: int = 0,
                      llm_pretrain_pairs: list[tuple[str, str]] | None = None) -> dict[str, Path]:
    """Build every tiny model the project needs under ``root`` (idempotent: existing ones are kept).
    ``texts`` extend the tokenizer's training corpus (e.g. a recipe's targets); ``llm_pretrain_steps`` > 0
    pre-trains the LLM on them and on ``llm_pretrain_pairs`` (:func:`pretrain_tiny_llm`)."""
    root = Path(root)
    out = {"whisper": root / "whisper-tiny-random.pt", "llm": root / "qwen2-tiny-random"}
    if not out["whisper"].is_file():
        build_tiny_whisper(out["whisper"], seed=seed)
    if not (out["llm"] / "config.json").is_file():
        build_tiny_llm(out["llm"], seed=seed, texts=texts, pretrain_steps=llm_pretrain_steps,
                       pretrain_pairs=llm_pretrain_pairs)
    if emotion2vec:
        out["emotion2vec"] = root / "emotion2vec-tiny-random.pt"
        if not out["emotion2vec"].is_file():
            build_tiny_emotion2vec(out["emotion2vec"], seed=seed)
    (root / "models.json").write_text(json.dumps({k: str(v) for k, v in out.items()}, indent=1))
    return out


def tiny_model_config(models: dict, ssl_dim: int = 48, **overrides):
    """A :class:`ModelConfig` for the tiny models of :func:`build_tiny_models` (fp32, small adapter)."""
    from c2ser.models.config import AdapterConfig, LLMConfig, LoraConfig, ModelConfig, SSLConfig, WhisperConfig

    cfg = ModelConfig(whisper=WhisperConfig(name_or_path=str(models["whisper"])),
                      llm=LLMConfig(name_or_path=str(models["llm"]), dtype="float32"),
                      ssl=SSLConfig(dim=ssl_dim), adapter=AdapterConfig(num_blocks=2, heads=4, ffn=128, dropout=0.0),
                      lora=LoraConfig(r=4, alpha=8, dropout=0.0))
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def qwen2_7b_config():
    """The Qwen2-7B architecture (for building the full-size model on the ``meta`` device)."""
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768,
                       tie_word_embeddings=False, rope_theta=1000000.0)


def make_toy_corpus(root: str | Path, emotions=("neutral", "happy", "sad", "angry"), per_class: int = 6,
                    ssl_dim: int = 48, seed: int = 0) -> dict[str, Path]:
    """A tiny corpus of tones (pitch and loudness depend on the emotion) with manifests and cached SSL
    features, for fast training tests without espeak. Training rows carry their tone's pitch and its bin (μ ± σ of
    the emotions' tones: pitch-shift augmentation needs them). Returns paths: train/valid manifests, feature dir."""
    import numpy as np
    import soundfile as sf

    tones = np.array([120.0 + 60 * ei for ei in range(len(emotions))])
    mu, sd = tones.mean(), tones.std()
    pitch_bin = ["low" if f < mu - sd else "high" if f > mu + sd else "medium" for f in tones]
    root = Path(root)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    (root / "ssl").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", per_class), ("valid", max(1, per_class // 3))):
        rows = []
        for ei, emo in enumerate(emotions):
            for j in range(n):
                key = f"toy-{split}-{emo}-{j}"
                dur = float(rng.uniform(0.6, 1.6))
                t = np.arange(int(dur * 16000)) / 16000
                wav = (0.1 + 0.1 * ei) * np.sin(2 * np.pi * tones[ei] * t) + 0.01 * rng.standard_normal(t.size)
                path = root / "wav" / f"{key}.wav"
                sf.write(path, wav.astype(np.float32), 16000)
                np.save(root / "ssl" / f"{key}.npy", rng.standard_normal((10, ssl_dim)).astype(np.float32))
                word = EN_WORD[emo]
                rows.append({"key": key, "audio": str(path), "start": None, "end": None, "channel": None,
                             "duration": round(t.size / 16000, 4), "sample_rate": 16000, "emotion": emo,
                             "raw_emotion": emo, "text": "", "language": "en", "corpus": "toy", "split": split,
                             "speaker": None,
                             "style": {"pitch_hz": float(tones[ei]), "pitch_bin": pitch_bin[ei]} if split == "train"
                             else None,
                             "explicit_target": f"A tone at a steady pace. From these cues, the emotion is {word}.",
                             "implicit_target": f"The emotion of this speech is {word}."})
        out[split] = root / f"{split}.jsonl"
        out[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    out["features"] = root / "ssl"
    return out


TINY_E2V_CFG = {"embed_dim": 48, "depth": 2, "num_heads": 4, "mlp_ratio": 2.0, "norm_eps": 1e-5,
                "prenet_depth": 2, "conv_channels": 32}


def emotion2vec_model_cfg(embed_dim=768, depth=8, num_heads=12, mlp_ratio=4.0, norm_eps=1e-5, prenet_depth=4,
                          conv_channels=512) -> dict:
    """A ``cfg.model`` dict in the official layout (fairseq data2vec_multi / FunASR ``model_conf``)."""
    spec = f"[({conv_channels}, 10, 5)] + [({conv_channels}, 3, 2)] * 4 + [({conv_channels},2,2)] + [({conv_channels},2,2)]"
    return {"_name": "data2vec_multi", "embed_dim": embed_dim, "depth": depth, "num_heads": num_heads,
            "mlp_ratio": mlp_ratio, "norm_eps": norm_eps, "norm_affine": True, "layer_norm_first": False,
            "modalities": {"audio": {"prenet_depth": prenet_depth, "num_extra_tokens": 10, "use_alibi_encoder": True,
                                     "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
                                     "learned_alibi_scale_per_layer": False, "num_alibi_heads": num_heads,
                                     "extractor_mode": "layer_norm", "feature_encoder_spec": spec,
                                     "conv_pos_width": 95, "conv_pos_groups": 16, "conv_pos_depth": 5,
                                     "conv_pos_pre_ln": False}}}


def randomize_emotion2vec(model, seed: int = 0) -> None:
    """Make a randomly initialised encoder *sensitive*: LN gains 1 ± noise, random biases, extra tokens and
    ALiBi scales (one negative, to exercise the clamp), attention/MLP weights scaled up."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if name.endswith("alibi_scale"):
                p.copy_(0.5 + noise.abs())
                p.view(-1)[1] = -0.3
            elif name.endswith("extra_tokens"):
                p.copy_(noise)
            elif p.dim() == 1 and ("norm" in name or ".2.1." in name or "project_features.1" in name):
                p.copy_(1 + 0.2 * noise) if name.endswith("weight") else p.copy_(0.1 * noise)
            elif p.dim() == 1:
                p.copy_(0.05 * noise)
            elif ".attn." in name or ".mlp." in name:
                p.mul_(2.0)


def build_tiny_emotion2vec(path: str | Path, seed: int = 0, fmt: str = "fairseq", **dims) -> Path:
    """Save a random Emotion2Vec-S with the official key names: fairseq ``checkpoint.pt`` (with decoder keys
    and a training-style ``cfg``) or a FunASR directory (``model.pt`` + ``config.yaml``)."""
    from omegaconf import OmegaConf

    from c2ser.encoders.emotion2vec import Emotion2VecConfig, Emotion2VecS

    dims = {**TINY_E2V_CFG, **dims}
    model_cfg = emotion2vec_model_cfg(**dims)
    torch.manual_seed(seed)
    model = Emotion2VecS(Emotion2VecConfig(embed_dim=dims["embed_dim"], depth=dims["depth"],
                                           prenet_depth=dims["prenet_depth"], num_heads=dims["num_heads"],
                                           mlp_ratio=dims["mlp_ratio"], conv_channels=dims["conv_channels"]))
    randomize_emotion2vec(model, seed)
    sd = dict(model.state_dict())
    path = Path(path)
    if fmt == "fairseq":
        d = dims["embed_dim"]
        sd["modality_encoders.AUDIO.decoder.proj.weight"] = torch.randn(d, 16)  # pre-training decoder: dropped
        sd["modality_encoders.AUDIO.decoder.proj.bias"] = torch.zeros(d)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"args": None, "cfg": {"model": model_cfg, "task": {"_name": "audio_pretraining",
                                                                       "sample_rate": 16000, "normalize": True}},
                    "model": sd, "criterion": None, "optimizer_history": [], "extra_state": {"epoch": 1}}, path)
        return path
    path.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path / "model.pt")
    OmegaConf.save(OmegaConf.create({"model": "Emotion2vec", "model_conf": model_cfg,
                                     "tokenizer": "CharTokenizer"}), path / "config.yaml")
    return path


# ---- the released checkpoint's layout, written by hand (independent of c2ser.inference.official.map_key) ----

def official_names(ours_keys, n_whisper_blocks):
    """Our name -> official name, literally: Whisper renamed per block, the rest by its official prefix."""
    names = {"whisper.encoder.conv1.weight": "encoder.embed.conv.0.weight",
             "whisper.encoder.conv1.bias": "encoder.embed.conv.0.bias",
             "whisper.encoder.conv2.weight": "encoder.embed.conv.2.weight",
             "whisper.encoder.conv2.bias": "encoder.embed.conv.2.bias",
             "whisper.encoder.positional_embedding": "encoder.embed.pos_enc.pe",
             "whisper.encoder.ln_post.weight": "encoder.after_norm.weight",
             "whisper.encoder.ln_post.bias": "encoder.after_norm.bias",
             "speech_markers.weight": "speech_token_emded.weight"}
    block = {"attn.query.weight": "self_attn.linear_q.weight", "attn.query.bias": "self_attn.linear_q.bias",
             "attn.key.weight": "self_attn.linear_k.weight",
             "attn.value.weight": "self_attn.linear_v.weight", "attn.value.bias": "self_attn.linear_v.bias",
             "attn.out.weight": "self_attn.linear_out.weight", "attn.out.bias": "self_attn.linear_out.bias",
             "attn_ln.weight": "norm1.weight", "attn_ln.bias": "norm1.bias",
             "mlp.0.weight": "feed_forward.w_1.weight", "mlp.0.bias": "feed_forward.w_1.bias",
             "mlp.2.weight": "feed_forward.w_2.weight", "mlp.2.bias": "feed_forward.w_2.bias",
             "mlp_ln.weight": "norm2.weight", "mlp_ln.bias": "norm2.bias"}
    for i in range(n_whisper_blocks):
        names.update({f"whisper.encoder.blocks.{i}.{a}": f"encoder.encoders.{i}.{b}" for a, b in block.items()})
    prefixes = {"downsampler.": "down_sample_2.", "adapter.": "speech_transformer.",
                "projection.": "speech_llama_proj.", "llm.": "llama_model."}
    for k in ours_keys:
        for a, b in prefixes.items():
            if k.startswith(a):
                names[k] = b + k[len(a):]
    assert set(names) == set(ours_keys), set(ours_keys) ^ set(names)
    return names


def official_state_dict(ref) -> dict:
    """The tensors of ``ref`` under the official names, bf16, with the extra keys of the release."""
    own = ref.state_dict()
    names = official_names(own, len(ref.whisper.encoder.blocks))
    sd = {}
    for ours, t in own.items():
        if ours == "speech_markers.weight":
            full = torch.randn(4099, t.shape[1])  # the release's speech_token_emded: BOS row 4097, EOS row 4098
            full[4097], full[4098] = t[0], t[1]
            t = full
        elif ours == "whisper.encoder.positional_embedding":
            t = t[None]
        sd[names[ours]] = t.clone().to(torch.bfloat16)
    sd["speaker_head.weight"], sd["speaker_head.bias"] = torch.randn(7, 5).bfloat16(), torch.randn(7).bfloat16()
    sd["ln_speech.weight"], sd["ln_speech.bias"] = torch.randn(4).bfloat16(), torch.randn(4).bfloat16()
    sd["embed_tokens.weight"] = sd["llama_model.base_model.model.model.embed_tokens.weight"]  # aliases: the same tensors (stored once)
    sd["lm_head.weight"] = sd["llama_model.base_model.model.lm_head.weight"]
    return sd


def build_tiny_official(path: str | Path, models: dict, seed: int = 0) -> Path:
    """A C2SER_llm.pt in the released layout (bf16, official names, LoRA r8/alpha32 on the official targets) at
    the tiny widths: load it with ``official:PATH`` and ``--set ssl.dim=48 --set adapter.num_blocks=2
    --set adapter.ffn=128 --set whisper.name_or_path=<tiny whisper>`` (the recipe's stage 9 at --size tiny)."""
    from c2ser.inference.official import official_model_config
    from c2ser.models.build import build_model

    cfg = official_model_config(str(models["llm"]), whisper=str(models["whisper"]))
    cfg.ssl.dim, cfg.adapter.num_blocks, cfg.adapter.ffn, cfg.llm.dtype = 48, 2, 128, "float32"
    _seed(seed)
    model = build_model(cfg)
    path = Path(path)
    torch.save(official_state_dict(model), path)
    return path
