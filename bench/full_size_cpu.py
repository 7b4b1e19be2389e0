"""The released system's size on one CPU machine: files and measurements for ``bench/full_size_cpu.sh``.

Sub-commands (each one process, so the shell script can measure its wall time and peak RSS with GNU time):

- ``prepare``: random models in the real formats at the size's widths (a Qwen2 directory with sharded
  safetensors written one tensor at a time, an openai-whisper checkpoint, an Emotion2Vec-S fairseq checkpoint),
  16 synthetic clips (8 train, 8 test, espeak-ng) with chain-of-thought labels and cached Emotion2Vec-S features.
- ``write-official``: ``C2SER_llm.pt`` in the release's layout, bf16. ``full``: every key and shape of
  ``shared/data/layouts/c2ser_llm_official_state_dict.json`` (1,128 keys, 9.1 B elements, the two aliases stored
  once), each tensor drawn once into the dict that ``torch.save`` streams (held once, never copied);
  ``tiny``/``small``: the same naming from a model at those widths (``c2ser.testing.official_state_dict``).
- ``estimate``: the expected peak memory of each step, from parameter counts (``estimate.json``).
- ``table``: the Markdown table of every step's wall time and peak RSS (from ``steps/*.time``) beside the
  estimate.

    bash bench/full_size_cpu.sh [--size full|small|tiny] [--work DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from _common import bench_model_config, table  # noqa: E402

LAYOUT = "data/layouts/c2ser_llm_official_state_dict.json"
GIB = 2**30


def shared_dir() -> Path:
    return Path(os.environ.get("C2SER_SHARED", ROOT.parent / "shared"))


def _random_(t: torch.Tensor, name: str, g: torch.Generator) -> torch.Tensor:
    """Fill ``t`` in place like a trained model's scale: norm weights 1, biases 0, matrices N(0, 0.02)."""
    if re.search(r"(norm|ln|_ln)[^.]*\.weight$", name) or name.endswith("after_norm.weight"):
        return t.fill_(1.0)
    if name.endswith(".bias"):
        return t.zero_()
    return t.normal_(0.0, 0.02, generator=g)


def write_qwen2(path: Path, size: str, tokenizer_texts: list[str]) -> None:
    """A Qwen2 directory: the tiny test tokenizer (its ids fit any Qwen2 vocabulary), the size's config, and random
    bf16 weights in safetensors shards of at most 2 GiB, each tensor created, written and freed in turn."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Qwen2Config

    from c2ser.testing import build_tiny_llm

    build_tiny_llm(path, texts=tokenizer_texts)
    for f in path.glob("*.safetensors"):
        f.unlink()
    tok = PreTrainedTokenizerFast.from_pretrained(path)
    spec = bench_model_config(size)["llm"]
    if spec is None:
        return  # tiny: build_tiny_llm's own weights (rewritten below)
    config = Qwen2Config(**spec, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, dtype="bfloat16")
    config.save_pretrained(path)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)
    g = torch.Generator().manual_seed(0)
    index, shard, shard_bytes, n = {}, {}, 0, 0

    def flush():
        nonlocal shard, shard_bytes, n
        name = f"model-{n:05d}.safetensors"
        save_file(shard, path / name, metadata={"format": "pt"})
        index.update({k: name for k in shard})
        shard, shard_bytes, n = {}, 0, n + 1

    for k, shape in shapes.items():
        t = _random_(torch.empty(shape, dtype=torch.bfloat16), k, g)
        if shard and shard_bytes + t.numel() * 2 > 2 * GIB:
            flush()
        shard[k] = t
        shard_bytes += t.numel() * 2
    flush()
    total = sum(s.numel() * 2 for s in shapes.values())
    (path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": index}, indent=1))


def prepare(work: Path, size: str) -> None:
    from _common import build_emotion2vec_checkpoint, build_whisper_checkpoint

    import subprocess

    from c2ser.data.manifest import read_manifest
    from c2ser.data.synthetic import build_synthetic_corpus
    from c2ser.encoders.emotion2vec import Emotion2VecS
    from c2ser.features import extract_features

    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    if not (data / "test.cot.jsonl").is_file():
        build_synthetic_corpus(data, ("neutral", "happy", "sad", "angry"), per_class=2, valid_per_class=1,
                               test_per_class=2, langs=("en",), workers=2, progress=False)
        cot = [sys.executable, str(ROOT / "data_prep/cot_labels.py")]
        subprocess.run(cot + ["--manifest", data / "train.jsonl", "--out", data / "train.cot.jsonl"], check=True)
        subprocess.run(cot + ["--manifest", data / "test.jsonl", "--out", data / "test.cot.jsonl",
                              "--stats-from", data / "train.cot.jsonl"], check=True)
    texts = [json.loads(line).get("target_explicit", "") for line in open(data / "train.cot.jsonl")]
    if not (work / "qwen2" / "model.safetensors.index.json").is_file() and size != "tiny":
        write_qwen2(work / "qwen2", size, texts)
    elif size == "tiny" and not (work / "qwen2").is_dir():
        from c2ser.testing import build_tiny_llm
        build_tiny_llm(work / "qwen2", texts=texts)
    if not (work / "whisper.pt").is_file():
        build_whisper_checkpoint(size, work / "whisper.pt")
    if not (work / "emotion2vec.pt").is_file():
        if size == "small":  # tokens no wider than the Whisper-base encoder (512): Emotion2Vec-S at that width
            from _common import E2V_FULL
            from c2ser.testing import build_tiny_emotion2vec
            build_tiny_emotion2vec(work / "emotion2vec.pt", **{**E2V_FULL, "embed_dim": 512, "num_heads": 8})
        else:
            build_emotion2vec_checkpoint(size, work / "emotion2vec.pt")
    encoder = Emotion2VecS.from_pretrained(str(work / "emotion2vec.pt"))
    for split in ("train", "test"):
        extract_features(read_manifest(data / f"{split}.cot.jsonl"), encoder, work / "features", "tokens", 1)


def write_official(work: Path, size: str) -> None:
    """The released layout in bf16; ``full`` from the layout file, the others from a model at their widths."""
    out = work / "C2SER_llm.pt"
    if size == "full":
        layout = json.loads((shared_dir() / LAYOUT).read_text())["keys"]
        g = torch.Generator().manual_seed(0)
        sd = {}
        for k, shape in layout.items():
            if k in ("embed_tokens.weight", "lm_head.weight"):
                continue  # the release's aliases: the same tensors as the LLM's (stored once), set below
            sd[k] = _random_(torch.empty(shape, dtype=torch.bfloat16), k, g)
        sd["embed_tokens.weight"] = sd["llama_model.base_model.model.model.embed_tokens.weight"]
        sd["lm_head.weight"] = sd["llama_model.base_model.model.lm_head.weight"]
        assert list(sd) != [] and set(sd) == set(layout) and all(list(sd[k].shape) == layout[k] for k in layout)
    else:
        from c2ser.models.build import build_model
        from c2ser.testing import official_state_dict

        sd = official_state_dict(build_model(official_config(work, size, "float32")))
    torch.save(sd, out)
    n_unique = sum(t.numel() for k, t in sd.items() if k not in ("embed_tokens.weight", "lm_head.weight"))
    (work / "official.json").write_text(json.dumps({"keys": len(sd), "unique_elements": n_unique,
                                                    "file_bytes": out.stat().st_size}))


def official_config(work: Path, size: str, dtype: str = "bfloat16"):
    """The official model config pointing at ``work``'s stand-ins; ``official_overrides`` gives the same as
    ``--set`` flags for the CLI."""
    from omegaconf import OmegaConf

    from c2ser.config import from_dict, to_dict
    from c2ser.inference.official import official_model_config
    from c2ser.models.config import ModelConfig

    cfg = official_model_config(str(work / "qwen2"), whisper=str(work / "whisper.pt"), dtype=dtype)
    data = OmegaConf.merge(OmegaConf.create(to_dict(cfg)), OmegaConf.from_dotlist(official_overrides(size)))
    return from_dict(ModelConfig, OmegaConf.to_container(data))


def official_overrides(size: str) -> list[str]:
    """--set flags the official path needs below full size (the release's adapter and SSL widths are fixed)."""
    if size == "full":
        return []
    ssl = min(768, bench_model_config(size)["whisper"].get("n_audio_state", 64))
    return [f"ssl.dim={48 if size == 'tiny' else ssl}"] + (["adapter.num_blocks=2", "adapter.ffn=128"]
                                                           if size == "tiny" else [])


def estimate(work: Path, size: str) -> None:
    """Expected peak memory per step, from the parameter counts of the models built on ``meta``."""
    from transformers import AutoConfig

    from c2ser.config import load_config
    from c2ser.inference.official import build_meta_model
    from c2ser.models.build import load_tokenizer
    from c2ser.models.config import ModelConfig

    cfg = load_config(ModelConfig, ROOT / "recipes/c2ser/conf/model.yaml",
                      [f"llm.name_or_path={work / 'qwen2'}", f"whisper.name_or_path={work / 'whisper.pt'}",
                       *official_overrides(size)], section="model")
    llm_config = AutoConfig.from_pretrained(work / "qwen2")
    model = build_meta_model(cfg, llm_config, load_tokenizer(cfg.llm))  # sets requires_grad by cfg.trainable
    numel = lambda ps: sum(p.numel() for p in ps)  # noqa: E731
    frozen = numel(p for p in model.parameters() if not p.requires_grad)
    trained = numel(p for p in model.parameters() if p.requires_grad)
    e2v = sum(t.numel() for t in torch.load(work / "emotion2vec.pt", mmap=True, weights_only=False)["model"].values())
    est = {"model_params": frozen + trained, "trained_params": trained, "frozen_params": frozen,
           "model_bf16_bytes": 2 * (frozen + trained),
           # inference: every weight bf16 once + Emotion2Vec-S fp32 (online SSL)
           "inference_bytes": 2 * (frozen + trained) + 4 * e2v,
           # training, one process: frozen weights bf16; what trains in fp32 (weights = master) + grads + 2 Adam moments
           "training_bytes": 2 * frozen + 16 * trained}
    (work / "estimate.json").write_text(json.dumps(est, indent=1))
    print(json.dumps(est, indent=1))


def read_time(path: Path) -> dict:
    """Wall seconds and peak RSS (bytes) from a ``/usr/bin/time -v`` report."""
    text = path.read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024
    h, m, s = (["0", "0"] + re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)",
                                      text).group(1).split(":"))[-3:]
    status = int(re.search(r"Exit status: (\d+)", text).group(1))
    return {"wall_s": int(h) * 3600 + int(m) * 60 + float(s), "peak_rss": rss, "exit": status}


STEPS = [("prepare", "random models + 16 clips + features", None),
         ("write_official", "C2SER_llm.pt in the release layout (bf16)", "file"),
         ("predict", "c2ser predict, 1 clip, official:, bf16, online SSL", "inference_bytes"),
         ("eval", "c2ser eval, 8 clips, official:, bf16, online SSL", "inference_bytes"),
         ("train_stage1", "stage 1: 1 update (recipe settings, 8 clips)", "training_bytes"),
         ("train_stage2", "stage 2: 1 update from stage 1", "training_bytes"),
         ("head", "Gen-SER head stage, 8 clips", "inference_bytes")]


def print_table(work: Path) -> None:
    est = json.loads((work / "estimate.json").read_text())
    off = json.loads((work / "official.json").read_text()) if (work / "official.json").is_file() else {}
    model_gib = est["model_bf16_bytes"] / GIB
    rows = []
    for name, what, budget in STEPS:
        f = work / "steps" / f"{name}.time"
        if not f.is_file():
            rows.append([name, what, "not run", "", "", ""])
            continue
        t = read_time(f)
        ref = off.get("file_bytes") if budget == "file" else est.get(budget) if budget else None
        rows.append([name, what, f"{t['wall_s']:.0f}" + ("" if t["exit"] == 0 else f" (exit {t['exit']})"),
                     f"{t['peak_rss'] / GIB:.2f}", f"{ref / GIB:.2f}" if ref else "–",
                     f"{t['peak_rss'] / (est['model_bf16_bytes']):.3f}"])
    print(f"model: {est['model_params'] / 1e9:.3f} B parameters ({model_gib:.2f} GiB in bf16), "
          f"{est['trained_params'] / 1e6:.1f} M trained by the recipe; official file: "
          f"{off.get('keys', '?')} keys, {off.get('file_bytes', 0) / GIB:.2f} GiB\n")
    print(table(["step", "what", "wall (s)", "peak RSS (GiB)", "estimate (GiB)", "peak ÷ model bf16"], rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", choices=("prepare", "write-official", "estimate", "table"))
    p.add_argument("--work", required=True)
    p.add_argument("--size", default="full", choices=("tiny", "small", "full"))
    a = p.parse_args()
    work = Path(a.work)
    {"prepare": lambda: prepare(work, a.size), "write-official": lambda: write_official(work, a.size),
     "estimate": lambda: estimate(work, a.size), "table": lambda: print_table(work)}[a.command]()


if __name__ == "__main__":
    main()
