"""The output-head stage: a Gen-SER head (or the CE baseline) on top of a trained C2SER backbone, on accelerate.

One process, DDP or DeepSpeed ZeRO-2 (bf16) from the launch config, like the stages (``c2ser/training/loop.py``,
whose accelerator, dynamic batch sampler and resumable states it reuses)::

    accelerate launch --config_file recipes/accelerate/ds_zero2.yaml --num_processes N -m c2ser.cli \
        train-head --config recipes/c2ser/conf/head.yaml backbone=… train_manifest=… output_dir=…

Each batch's conditioning — LLM last-layer hidden states over ``[prompt "emotion:"][BOS S W EOS]`` (prefill only,
no decoding), or the projected adapter output (``conditioning: adapter``, encoder-only control) — is computed on
the fly by the backbone, so memory does not grow with the corpus. ``train_backbone: none`` keeps the backbone
frozen (no gradients through it); ``lora`` trains its LoRA (and the adapter with ``train_adapter``) jointly with
the head on the head's loss, plus ``lm_loss_weight`` × the implicit-answer LM loss so the model still answers in
text. Batches: ``batch_size`` clips per process (``DynamicBatchSampler``: process r of W takes batches r, r+W, …;
global batch = W × grad_accum batches). Gen-SER training noise is seeded per (epoch, global batch), so it does not
depend on the number of processes or on a resume.

The stage writes ``<output_dir>/final``: the backbone checkpoint (copied when frozen, saved with its updated
weights when tuned) plus ``head/`` (``head.safetensors``, ``config.yaml``), so ``c2ser eval|predict|web
--mode gen-ser --checkpoint <output_dir>/final`` find everything in one place. Only the main process writes.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
from accelerate.utils import DistributedType, gather_object, set_seed
from omegaconf import OmegaConf
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from c2ser.config import from_dict, to_dict
from c2ser.heads.balanced import ClassBalancedSampler
from c2ser.heads.bridge import clip_seed
from c2ser.heads.factory import HeadConfig
from c2ser.heads.factory import build_head as build_from_config
from c2ser.heads.train_head import collate_features, warmup_cosine
from c2ser.labels import EMOTIONS, corpus_classes
from c2ser.models.processor import C2SERProcessor, to_device
from c2ser.training.config import AugmentConfig
from c2ser.training.data import ManifestDataset, collate, identity, read_rows
from c2ser.training.loop import _after_update, _is_ds, _resume, make_accelerator
from c2ser.training.sampler import DynamicBatchSampler

NO_CAP = 10 ** 9


@dataclass
class HeadStageConfig(HeadConfig):           # kind (gen_ser | ce), gen_ser, ce: see c2ser.heads.factory
    backbone: str = "???"                    # trained C2SER checkpoint directory
    labels: list[str] = field(default_factory=lambda: list(EMOTIONS))   # union label set
    conditioning: str = "llm"                # llm | adapter
    train_backbone: str = "none"             # none (frozen backbone) | lora (its LoRA trains with the head)
    train_adapter: bool = False              # with train_backbone=lora: the adapter (link) trains too
    lm_loss_weight: float = 0.0              # with lora: + weight × implicit-answer LM loss (keeps text answers)
    backbone_lr: float = 2.0e-5              # lr of the backbone's trainable parts (spec gen_ser.md §6)
    train_manifest: str = "???"
    valid_manifest: str | None = None
    feature_dir: str | None = None
    # the training clips degraded as by c2ser train's data.augment (noise, reverberation, level; per seed, epoch,
    # key); Emotion2Vec-S then runs online on them: the backbone's config needs model.ssl.checkpoint
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    corpus: str = "synthetic"                # label set used to mask classes at validation
    epochs: int = 30
    batch_size: int = 32                     # clips per batch and process (global: × processes × grad_accum)
    max_frames_in_batch: int | None = None   # optional dynamic-batch caps (longest × count), as in the stages
    max_tokens_in_batch: int | None = None
    sort_buffer: int | None = None           # length-sorted pools; None = batch_size (random batches)
    grad_accum: int = 1
    grad_clip: float = 1.0
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: int = 50
    ema: float | None = None                 # EMA decay of the head's weights (e.g. 0.999), evaluated if set
    balanced: bool = True                    # class-balanced sampling
    seed: int = 777
    save_every: int = 500                    # updates between resumable states (state-N/)
    keep_states: int = 2
    output_dir: str = "exp/head"

    def __post_init__(self):
        if self.kind not in ("gen_ser", "ce"):
            raise ValueError(f"kind={self.kind!r}: expected gen_ser or ce")
        if self.conditioning not in ("llm", "adapter"):
            raise ValueError(f"conditioning={self.conditioning!r}: expected llm or adapter")
        if self.train_backbone not in ("none", "lora"):
            raise ValueError(f"train_backbone={self.train_backbone!r}: expected none or lora")
        if self.train_backbone == "none" and (self.train_adapter or self.lm_loss_weight):
            raise ValueError("train_adapter / lm_loss_weight need train_backbone=lora")
        if self.train_backbone == "lora" and self.conditioning == "adapter" and not self.lm_loss_weight:
            raise ValueError("train_backbone=lora with conditioning=adapter: the head's loss does not reach the "
                             "LoRA; set lm_loss_weight > 0 or conditioning=llm")
        if self.lm_loss_weight < 0:
            raise ValueError(f"lm_loss_weight={self.lm_loss_weight}: expected >= 0")


def build_head(cfg: HeadStageConfig, cond_dim: int):
    return build_from_config(cfg, list(cfg.labels), cond_dim)


def cond_dim_of(model, kind: str) -> int:
    return model.llm.get_input_embeddings().embedding_dim if kind == "llm" else model.projection.out_features


def batch_conditioning(model, batch: dict, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L, H) conditioning and (B, L) mask of one collated ``gen-ser`` batch (gradients as the caller allows)."""
    if kind == "llm":
        return model.prefix_hidden_states(batch)
    h, lengths = model.speech_from_batch(batch)
    return h, torch.arange(h.shape[1], device=h.device)[None] < lengths[:, None]


class HeadStageModel(nn.Module):
    """Backbone + head as one module (what accelerate/DeepSpeed wrap). ``forward`` returns (loss, stats)."""

    def __init__(self, backbone, head: nn.Module, cfg: HeadStageConfig):
        super().__init__()
        self.backbone, self.head, self.cfg = backbone, head, cfg
        # fp32 copies of the head's buffers (class codes): DeepSpeed bf16 casts the module's buffers
        self._buffers32 = {n: b.detach().float().clone() for n, b in head.named_buffers()}

    def train(self, mode: bool = True):
        super().train(mode)
        if self.cfg.train_backbone == "none":
            self.backbone.eval()  # frozen: no dropout
        return self

    def head_call(self, method: str, *args, **kwargs):
        """``head.<method>(…)`` computed in fp32. Under DeepSpeed bf16 the head's weights are stored in bf16;
        they are up-cast (differentiably) for the head's computation, whose LayerNorms expect fp32 inputs."""
        fn = getattr(self.head, method)
        if all(p.dtype == torch.float32 for p in self.head.parameters()):
            return fn(*args, **kwargs)
        dev = next(self.head.parameters()).device
        params = {n: p.float() for n, p in self.head.named_parameters()}
        params.update({n: b.to(dev) for n, b in self._buffers32.items()})
        return torch.func.functional_call(_Method(self.head, method), {"head." + k: v for k, v in params.items()},
                                          args, kwargs)

    def forward(self, batch: dict, labels: torch.Tensor, generator: torch.Generator | None = None,
                lm_batch: dict | None = None):
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.cfg.train_backbone != "none"):
            cond, mask = batch_conditioning(self.backbone, batch, self.cfg.conditioning)
        loss, stats = self.head_call("loss", cond, mask, labels, generator=generator)
        if lm_batch is not None:
            lm = self.backbone(lm_batch)
            loss = loss + self.cfg.lm_loss_weight * lm
            stats = {**stats, "lm": lm.item(), "loss": loss.item()}
        return loss, stats


class _Method(nn.Module):
    """A module whose forward is ``head.<method>`` (for ``functional_call``)."""

    def __init__(self, head: nn.Module, method: str):
        super().__init__()
        self.head, self.method = head, method

    def forward(self, *args, **kwargs):
        return getattr(self.head, self.method)(*args, **kwargs)


class EMA:
    """fp32 exponential moving average of the head's weights; checkpointed with the training state."""

    def __init__(self, head: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {n: p.detach().float().clone() for n, p in head.named_parameters()}

    @torch.no_grad()
    def update(self, head: nn.Module) -> None:
        for n, p in head.named_parameters():
            self.shadow[n].mul_(self.decay).add_(p.detach().float(), alpha=1 - self.decay)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.shadow = state["decay"], state["shadow"]


def set_backbone_trainable(model, cfg: HeadStageConfig) -> dict[str, list[nn.Parameter]]:
    """Freeze the backbone, then unfreeze what ``train_backbone`` / ``train_adapter`` tune; returns the groups."""
    model.requires_grad_(False)
    groups = model.parameter_groups()
    tuned = []
    if cfg.train_backbone == "lora":
        if not groups["lora"]:
            raise ValueError(f"{cfg.backbone}: train_backbone=lora, but the backbone has no LoRA (model.lora)")
        tuned += groups["lora"] + (groups["adapter"] if cfg.train_adapter else [])
    for p in tuned:
        p.requires_grad_(True)
    return {"backbone": tuned}


class EpochBatches:
    """An epoch's batches of dataset indices for this process: the class-balanced (or plain) order of the
    epoch, cut by :class:`DynamicBatchSampler` (``batch_size`` clips, optional caps) and sharded over processes."""

    def __init__(self, ds: ManifestDataset, labels: list[int], cfg: HeadStageConfig, rank: int, world: int):
        self.ds, self.cfg, self.rank, self.world = ds, cfg, rank, world
        self.balanced = ClassBalancedSampler(labels, seed=cfg.seed) if cfg.balanced else None

    def _sampler(self, epoch: int) -> tuple[list[int], DynamicBatchSampler]:
        order = list(range(len(self.ds)))
        if self.balanced is not None:
            self.balanced.set_epoch(epoch)
            order = list(self.balanced)
        frames, tokens = [self.ds.frames[i] for i in order], [self.ds.tokens[i] for i in order]
        cfg = self.cfg
        s = DynamicBatchSampler(frames, tokens, cfg.max_frames_in_batch or NO_CAP, cfg.max_tokens_in_batch or NO_CAP,
                                cfg.batch_size, cfg.sort_buffer or cfg.batch_size, seed=cfg.seed,
                                rank=self.rank, world_size=self.world)
        s.set_epoch(epoch)
        return order, s

    def count(self, epoch: int) -> int:
        return len(self._sampler(epoch)[1])

    def batches(self, epoch: int, skip: int = 0):
        """(global batch number, dataset indices) of this process from local batch ``skip`` on."""
        order, s = self._sampler(epoch)
        s.set_epoch(epoch, skip=skip)
        for j, b in enumerate(s, start=skip):
            yield self.rank + j * self.world, [order[i] for i in b]


def _launch_info(acc) -> dict:
    return {"distributed_type": str(acc.distributed_type.value), "num_processes": acc.num_processes,
            "mixed_precision": str(acc.mixed_precision)}


def train_head_stage(cfg: HeadStageConfig, progress: bool = True, stop_after_step: int | None = None) -> Path:
    """Train the head (and optionally the backbone's LoRA); returns ``<output_dir>/final``.
    ``stop_after_step`` simulates a crash after that many updates (tests)."""
    from c2ser.checkpoint import load_model

    out = Path(cfg.output_dir)
    acc = make_accelerator(SimpleNamespace(optim=SimpleNamespace(grad_accum=cfg.grad_accum, grad_clip=cfg.grad_clip),
                                           output_dir=cfg.output_dir))
    if _is_ds(acc) and acc.state.deepspeed_plugin.zero_stage == 3:
        raise ValueError("the head stage runs DDP or DeepSpeed ZeRO-2 (ZeRO-3 partitions the frozen backbone it "
                         "reads every batch); use recipes/accelerate/ds_zero2.yaml")
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    rows = read_rows(cfg.train_manifest)
    unknown = sorted({r["emotion"] for r in rows} - set(cfg.labels))
    if unknown:
        raise ValueError(f"{cfg.train_manifest}: labels {unknown} are not in the head's label set {cfg.labels}")
    labels = [cfg.labels.index(r["emotion"]) for r in rows]
    backbone = load_model(cfg.backbone)
    groups = set_backbone_trainable(backbone, cfg)
    processor = C2SERProcessor(backbone.tokenizer, backbone.whisper.dims.n_mels, backbone.cfg.whisper.long_audio)
    head = build_head(cfg, cond_dim_of(backbone, cfg.conditioning))
    model = HeadStageModel(backbone, head, cfg)
    counts = {"head": sum(p.numel() for p in head.parameters()),
              "backbone_trainable": sum(p.numel() for p in groups["backbone"]),
              "total": sum(p.numel() for p in model.parameters())}
    counts["trainable"] = counts["head"] + counts["backbone_trainable"]

    augmenter = None
    if cfg.augment.enabled:  # c2ser/data/augment.py, as in the stages; validation stays on the clean clips
        from c2ser.data.augment import Augmenter

        if backbone.cfg.ssl.enabled and not backbone.cfg.ssl.checkpoint:
            raise ValueError(f"augment.enabled=true: {cfg.backbone} has no model.ssl.checkpoint, and the cached "
                             "Emotion2Vec-S features are of the clean clips (Emotion2Vec-S must run online on the "
                             "augmented audio): train the backbone with model.ssl.checkpoint set")
        augmenter = Augmenter(cfg.augment, rows, cfg.seed)
    ds = ManifestDataset(rows, processor, None if augmenter else cfg.feature_dir, backbone.cfg.ssl.enabled,
                         wave_transform=augmenter, clean_copies=augmenter is not None and cfg.augment.keep_clean)
    if ds.clean_copies:
        labels = labels * 2  # index N + i is row i's clean copy
    epochs = EpochBatches(ds, labels, cfg, acc.process_index, acc.num_processes)
    total_steps = sum(epochs.count(e) for e in range(cfg.epochs)) // cfg.grad_accum
    param_groups = [{"params": list(head.parameters()), "lr": cfg.lr, "base_lr": cfg.lr}]
    if groups["backbone"]:
        param_groups.append({"params": groups["backbone"], "lr": cfg.backbone_lr, "base_lr": cfg.backbone_lr})
    optimizer = torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMA(head, cfg.ema) if cfg.ema else None
    model, optimizer = acc.prepare(model, optimizer)
    if ema is not None:
        acc.register_for_checkpointing(ema)
    inner = acc.unwrap_model(model)
    acc.print(f"head[{cfg.kind}]: data-parallel over {acc.num_processes} process"
              f"{'es' if acc.num_processes > 1 else ''} ({acc.distributed_type.value}, mixed precision "
              f"{acc.mixed_precision}); {len(rows)} training clips, {total_steps} updates, train_backbone="
              f"{cfg.train_backbone}, augment={cfg.augment.enabled}; parameters: {counts['total']} total, "
              f"{counts['trainable']} trainable (head {counts['head']}, backbone {counts['backbone_trainable']})")

    st = _resume(acc, out)  # the newest complete state (the stages' rule); None: a fresh start
    step, epoch, consumed = (st["step"], st["epoch"], st["consumed"]) if st else (0, 0, 0)

    lr_factor = warmup_cosine(cfg.warmup, total_steps)
    bar = tqdm(total=total_steps, initial=step, disable=not (progress and acc.is_main_process),
               desc=f"head[{cfg.kind}]")
    t0, pending = time.time(), []
    done = step >= total_steps
    while not done and epoch < cfg.epochs:
        model.train()
        ds.epoch = epoch  # the augmentation's draw (seed, epoch, key)
        for gb, idx in epochs.batches(epoch, skip=consumed):
            items = [ds[i] for i in idx]
            batch = to_device(collate(processor, items, "gen-ser", with_targets=False), acc.device)
            lm_batch = to_device(collate(processor, items, "implicit"), acc.device) if cfg.lm_loss_weight else None
            y = torch.tensor([labels[i] for i in idx], device=acc.device)
            gen = torch.Generator().manual_seed(clip_seed(f"train/{epoch}/{gb}", cfg.seed))
            with acc.accumulate(model):
                if acc.sync_gradients:  # before backward: under DeepSpeed, acc.backward also steps the optimiser
                    for g in optimizer.param_groups:
                        g["lr"] = g["base_lr"] * lr_factor(step)
                loss, stats = model(batch, y, gen, lm_batch)
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad()
            consumed += 1
            pending.append(stats)
            if not acc.sync_gradients:
                continue
            # the update's stats: mean over its accumulated batches and over the processes (the global batch)
            keys = sorted(pending[0])
            mean = acc.reduce(torch.tensor([sum(p[k] for p in pending) / len(pending) for k in keys],
                                           device=acc.device), reduction="mean")
            stats, pending = dict(zip(keys, mean.tolist())), []
            step += 1
            if ema is not None:
                ema.update(inner.head)
            bar.update(1)
            if acc.is_main_process:
                with open(out / "log.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, **stats, "lr": optimizer.param_groups[0]["lr"],
                                        "elapsed_s": round(time.time() - t0, 3)}) + "\n")
            status = _after_update(acc, out, cfg, step, epoch, consumed, total_steps, stop_after_step)
            if status == "stop":
                return out
            if status == "done":
                done = True
                break
        if not done:
            epoch, consumed = epoch + 1, 0
    bar.close()

    final_head = fp32_head(inner.head, ema)
    result = {"steps": step}
    if cfg.valid_manifest:
        result.update(validate(cfg, acc, inner.backbone, final_head, processor))
    if acc.is_main_process:
        write_final(cfg, acc, model, inner, final_head, result, counts)
    acc.wait_for_everyone()
    acc.end_training()
    return out / "final"


def fp32_head(head: nn.Module, ema: EMA | None) -> nn.Module:
    """An fp32 copy of the trained head (the EMA weights when kept): what validation and the checkpoint use."""
    h = copy.deepcopy(head).float()
    if ema is not None:
        with torch.no_grad():
            for n, p in h.named_parameters():
                p.copy_(ema.shadow[n])
    return h.eval()


@torch.no_grad()
def validate(cfg: HeadStageConfig, acc, backbone, head: nn.Module, processor: C2SERProcessor) -> dict:
    """Accuracy of the head on the valid split: every clip once (process r takes clips r, r+W, …)."""
    rows = read_rows(cfg.valid_manifest)
    mine = rows[acc.process_index:: acc.num_processes]
    backbone.eval()
    allowed = allowed_mask(cfg.labels, cfg.corpus)
    ds = ManifestDataset(mine, processor, cfg.feature_dir, backbone.cfg.ssl.enabled)
    results = []
    for i in range(0, len(mine), cfg.batch_size):
        items = [ds[j] for j in range(i, min(i + cfg.batch_size, len(mine)))]
        batch = to_device(collate(processor, items, "gen-ser", with_targets=False), acc.device)
        cond, mask = batch_conditioning(backbone, batch, cfg.conditioning)
        pred, _ = head.predict(cond.float(), mask, allowed=allowed.to(cond.device), keys=[it["key"] for it in items])
        results += [(it["emotion"], cfg.labels[p]) for it, p in zip(items, pred.tolist())]
    results = gather_object(results)
    accuracy = sum(a == b for a, b in results) / max(1, len(results))
    acc.print(f"head[{cfg.kind}] validation accuracy {accuracy:.3f} ({len(results)} clips)")
    return {"valid_accuracy": accuracy, "valid_clips": len(results)}


def write_final(cfg: HeadStageConfig, acc, model, inner: HeadStageModel, head: nn.Module, result: dict,
                counts: dict) -> Path:
    """``<output_dir>/final`` (main process): the backbone checkpoint + ``head/``, renamed into place at the end."""
    from c2ser.checkpoint import save_checkpoint

    out = Path(cfg.output_dir)
    final, tmp = out / "final", out / "final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    if cfg.train_backbone == "none":
        shutil.copytree(cfg.backbone, tmp)
    else:  # the tuned backbone: its checkpoint layout (trained parts, LoRA) with the updated weights
        sd = {k[len("backbone."):]: v for k, v in acc.get_state_dict(model).items() if k.startswith("backbone.")}
        base = OmegaConf.to_container(OmegaConf.load(Path(cfg.backbone) / "config.yaml"))
        base.pop("model", None)
        save_checkpoint(inner.backbone, tmp, state_dict=sd, extra_config={**base, "head_stage": to_dict(cfg)})
    (tmp / "head").mkdir()
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, tmp / "head" / "head.safetensors")
    OmegaConf.save(OmegaConf.create({"head_stage": to_dict(cfg), "cond_dim": cond_dim_of(inner.backbone,
                                                                                          cfg.conditioning),
                                     "result": result, "parameters": counts, "launch": _launch_info(acc)}),
                   tmp / "head" / "config.yaml")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def predict(head, conds: list[torch.Tensor], allowed: torch.Tensor | None, batch_size: int = 64,
            steps: int | None = None, keys: list[str] | None = None):
    """(predicted indices, per-class scores) for per-clip conditioning. ``keys`` (the clips' manifest keys) seed
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


@torch.no_grad()
def conditioning(model, processor: C2SERProcessor, rows: list[dict], feature_dir: str | None, kind: str,
                 progress: bool = True, wave_transform=None) -> list[torch.Tensor]:
    """Per clip: the (L_i, H) conditioning states of the frozen backbone, in ``rows`` order (on the CPU;
    ``wave_transform``: an evaluation condition applied to each clip first)."""
    model.eval()
    ds = ManifestDataset(rows, processor, feature_dir, model.cfg.ssl.enabled, wave_transform=wave_transform)
    sampler = DynamicBatchSampler(ds.frames, ds.tokens, max(12000, max(ds.frames)), max(20000, max(ds.tokens)), 16,
                                  shuffle=False)
    out: list[torch.Tensor | None] = [None] * len(rows)
    for items in tqdm(torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=identity),
                      disable=not progress, desc="conditioning", total=len(sampler)):
        batch = to_device(collate(processor, items, "gen-ser", with_targets=False), model.device)
        h, mask = batch_conditioning(model, batch, kind)
        for it, hi, mi in zip(items, h, mask):
            out[it["index"]] = hi[mi].float().cpu()
    return out


def allowed_mask(labels: list[str], corpus: str) -> torch.Tensor:
    classes = set(corpus_classes(corpus))
    return torch.tensor([lab in classes for lab in labels])


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
                      chunk: int = 256, wave_transform=None) -> dict:
    """Label + per-class scores for every clip of ``rows`` not yet in ``writer``; returns the settings.
    ``model``/``processor``: the backbone already loaded (e.g. with overrides); default: loaded from ``head_dir``.
    Clips go ``chunk`` at a time (conditioning of one chunk in memory, then written)."""
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
    allowed = allowed_mask(cfg.labels, corpus)
    for i in range(0, len(todo), chunk):
        part = todo[i: i + chunk]
        conds = conditioning(model, processor, part, feature_dir, cfg.conditioning, progress, wave_transform)
        pred, scores = predict(head, conds, allowed, steps=steps, keys=[r["key"] for r in part])
        for r, p, s in zip(part, pred, scores):
            writer.write({"key": r["key"], "label": cfg.labels[p], "mode": "gen-ser",
                          "scores": {lab: round(float(v), 4) for lab, v in zip(cfg.labels, s)},
                          **{k: r.get(k) for k in ("emotion", "language", "corpus", "split", "speaker")}})
    return settings
