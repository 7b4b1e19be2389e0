"""The output-head stage: a Gen-SER head (or the CE baseline) on top of a trained C2SER backbone.

The backbone is frozen: its conditioning for every clip — LLM last-layer hidden states over
``[prompt "emotion:"][BOS S W EOS]`` (prefill only, no decoding), or the projected adapter output
(``conditioning: adapter``, encoder-only control) — is computed once and cached in memory, then the head
trains on it. The stage writes ``<output_dir>/final``: a copy of the backbone checkpoint plus ``head/``
(``head.safetensors``, ``config.yaml``), so ``c2ser eval|predict|web --mode gen-ser --checkpoint <output_dir>/final``
find everything in one place.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from c2ser.config import from_dict, to_dict
from c2ser.heads.balanced import ClassBalancedSampler
from c2ser.heads.factory import HeadConfig
from c2ser.heads.factory import build_head as build_from_config
from c2ser.heads.train_head import collate_features, train_head
from c2ser.labels import EMOTIONS, corpus_classes
from c2ser.models.processor import C2SERProcessor, to_device
from c2ser.training.data import ManifestDataset, collate, identity, read_rows
from c2ser.training.sampler import DynamicBatchSampler

@dataclass
class HeadStageConfig(HeadConfig):           # kind (gen_ser | ce), gen_ser, ce: see c2ser.heads.factory
    backbone: str = "???"                    # trained C2SER checkpoint directory
    labels: list[str] = field(default_factory=lambda: list(EMOTIONS))   # union label set
    conditioning: str = "llm"                # llm | adapter
    train_manifest: str = "???"
    valid_manifest: str | None = None
    feature_dir: str | None = None
    corpus: str = "synthetic"                # label set used to mask classes at validation
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: int = 50
    ema: float | None = None                 # EMA decay of the head's weights (e.g. 0.999), evaluated if set
    balanced: bool = True                    # class-balanced sampling
    seed: int = 777
    output_dir: str = "exp/head"

    def __post_init__(self):
        if self.kind not in ("gen_ser", "ce"):
            raise ValueError(f"kind={self.kind!r}: expected gen_ser or ce")
        if self.conditioning not in ("llm", "adapter"):
            raise ValueError(f"conditioning={self.conditioning!r}: expected llm or adapter")


def build_head(cfg: HeadStageConfig, cond_dim: int):
    return build_from_config(cfg, list(cfg.labels), cond_dim)


@torch.no_grad()
def conditioning(model, processor: C2SERProcessor, rows: list[dict], feature_dir: str | None, kind: str,
                 progress: bool = True, wave_transform=None) -> list[torch.Tensor]:
    """Per clip: the (L_i, H) conditioning states of the frozen backbone, in ``rows`` order (``wave_transform``:
    an evaluation condition applied to each clip first)."""
    model.eval()
    ds = ManifestDataset(rows, processor, feature_dir, model.cfg.ssl.enabled, wave_transform=wave_transform)
    sampler = DynamicBatchSampler(ds.frames, ds.tokens, max(12000, max(ds.frames)), max(20000, max(ds.tokens)), 16,
                                  shuffle=False)
    out: list[torch.Tensor | None] = [None] * len(rows)
    for items in tqdm(torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=identity),
                      disable=not progress, desc="conditioning", total=len(sampler)):
        batch = to_device(collate(processor, items, "gen-ser", with_targets=False), model.device)
        if kind == "llm":
            h, mask = model.prefix_hidden_states(batch)
        else:
            h, lengths = model.speech_from_batch(batch)
            mask = torch.arange(h.shape[1], device=h.device)[None] < lengths[:, None]
        for it, hi, mi in zip(items, h, mask):
            out[it["index"]] = hi[mi].float().cpu()
    return out


def predict(head, conds: list[torch.Tensor], allowed: torch.Tensor | None, batch_size: int = 64,
            steps: int | None = None, keys: list[str] | None = None):
    """(predicted indices, per-class scores) for cached conditioning. ``keys`` (the clips' manifest keys) seed
    each clip's Gen-SER noise, so a clip's answer does not depend on the batch, the order or a resume."""
    if keys is not None and len(keys) != len(conds):
        raise ValueError(f"got {len(keys)} keys for {len(conds)} clips")
    head.eval()
    preds, scores = [], []
    for i in range(0, len(conds), batch_size):
        x, m, _ = collate_features([(c, 0) for c in conds[i: i + batch_size]])
        kw = {"steps": steps} if steps else {}
        if keys is not None:
            kw["keys"] = keys[i: i + batch_size]
        p, s = head.predict(x, m, allowed=allowed, **kw)
        preds.append(p)
        scores.append(s)
    return torch.cat(preds).tolist(), torch.cat(scores)


def allowed_mask(labels: list[str], corpus: str) -> torch.Tensor:
    classes = set(corpus_classes(corpus))
    return torch.tensor([lab in classes for lab in labels])


def train_head_stage(cfg: HeadStageConfig, progress: bool = True) -> Path:
    from c2ser.checkpoint import load_model

    torch.manual_seed(cfg.seed)
    model = load_model(cfg.backbone)
    processor = C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, model.cfg.whisper.long_audio)
    rows = read_rows(cfg.train_manifest)
    unknown = sorted({r["emotion"] for r in rows} - set(cfg.labels))
    if unknown:
        raise ValueError(f"{cfg.train_manifest}: labels {unknown} are not in the head's label set {cfg.labels}")
    labels = [cfg.labels.index(r["emotion"]) for r in rows]
    conds = conditioning(model, processor, rows, cfg.feature_dir, cfg.conditioning, progress)
    head = build_head(cfg, conds[0].shape[1])
    items = list(zip(conds, labels))
    sampler = ClassBalancedSampler(labels, seed=cfg.seed) if cfg.balanced else None
    batches = []
    for epoch in range(cfg.epochs):  # the epochs' batch order, fixed by the seed
        if sampler is not None:
            sampler.set_epoch(epoch)
            order = list(sampler)
        else:
            order = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed + epoch)).tolist()
        batches += [collate_features([items[i] for i in order[j: j + cfg.batch_size]])
                    for j in range(0, len(order), cfg.batch_size)]
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained = train_head(head, batches, steps=len(batches), lr=cfg.lr, weight_decay=cfg.weight_decay,
                         warmup=cfg.warmup, ema=cfg.ema, seed=cfg.seed)
    if trained["ema"] is not None:
        head = trained["ema"].module
    (out / "log.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": v}) + "\n"
                                           for i, v in enumerate(trained["history"])))
    step = len(batches)
    result = {"steps": step}
    if cfg.valid_manifest:
        vrows = read_rows(cfg.valid_manifest)
        vconds = conditioning(model, processor, vrows, cfg.feature_dir, cfg.conditioning, progress)
        pred, _ = predict(head, vconds, allowed_mask(cfg.labels, cfg.corpus), keys=[r["key"] for r in vrows])
        result["valid_accuracy"] = sum(cfg.labels[p] == r["emotion"] for p, r in zip(pred, vrows)) / len(vrows)
        print(f"head[{cfg.kind}] validation accuracy {result['valid_accuracy']:.3f} ({len(vrows)} clips)")
    final = out / "final"
    shutil.rmtree(final, ignore_errors=True)
    shutil.copytree(cfg.backbone, final)
    (final / "head").mkdir()
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, final / "head" / "head.safetensors")
    OmegaConf.save(OmegaConf.create({"head_stage": to_dict(cfg), "cond_dim": conds[0].shape[1], "result": result}),
                   final / "head" / "config.yaml")
    return final


def load_head(path: str | Path):
    """(head, stage config) from a checkpoint with a ``head/`` directory (or that directory itself)."""
    path = Path(path)
    if (path / "head").is_dir():
        path = path / "head"
    if not (path / "head.safetensors").is_file():
        raise FileNotFoundError(f"{path}: not a head checkpoint (no head.safetensors)")
    data = OmegaConf.load(path / "config.yaml")
    cfg = from_dict(HeadStageConfig, OmegaConf.to_container(data["head_stage"]))
    head = build_head(cfg, int(data["cond_dim"]))
    head.load_state_dict(load_file(path / "head.safetensors"))
    return head.eval(), cfg


def predict_with_head(head_dir: str | Path, rows: list[dict], writer, feature_dir: str | None, corpus: str,
                      steps: int | None = None, progress: bool = True, model=None, processor=None,
                      wave_transform=None) -> dict:
    """Label + per-class scores for every clip of ``rows`` not yet in ``writer``; returns the settings.
    ``model``/``processor``: the backbone already loaded (e.g. with overrides); default: loaded from ``head_dir``."""
    from c2ser.checkpoint import load_model

    head, cfg = load_head(head_dir)
    settings = {"head": cfg.kind, "steps": steps or getattr(getattr(cfg, cfg.kind), "steps", 1),
                "conditioning": cfg.conditioning}
    todo = [r for r in rows if r["key"] not in writer.done_keys]
    if not todo:
        return settings
    if model is None:
        model = load_model(head_dir)  # the head checkpoint carries its backbone
    if processor is None:
        processor = C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, model.cfg.whisper.long_audio)
    conds = conditioning(model, processor, todo, feature_dir, cfg.conditioning, progress, wave_transform)
    pred, scores = predict(head, conds, allowed_mask(cfg.labels, corpus), steps=steps, keys=[r["key"] for r in todo])
    for r, p, s in zip(todo, pred, scores):
        writer.write({"key": r["key"], "label": cfg.labels[p], "mode": "gen-ser",
                      "scores": {lab: round(float(v), 4) for lab, v in zip(cfg.labels, s)},
                      **{k: r.get(k) for k in ("emotion", "language", "corpus", "split", "speaker")}})
    return settings
