"""Train / evaluate a head on (cond, cond_mask, labels) batches, e.g. precomputed frozen-backbone features.

``collate_features`` pads a list of per-clip ``(cond (L, H), label)`` pairs into one batch.
``train_head`` runs AdamW with linear warm-up + cosine decay, gradient clipping and an optional EMA copy.
``evaluate_head`` returns WA (accuracy), UA (balanced accuracy), macro-F1 and the predictions (sklearn).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, Iterable, Sequence

import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

Batch = tuple[Tensor, Tensor, Tensor]


def collate_features(items: Sequence[tuple[Tensor, int]]) -> Batch:
    """[(cond (L_i, H), label)] → (cond (B, L, H) zero-padded, mask (B, L), labels (B,))."""
    if not items:
        raise ValueError("collate_features got an empty batch")
    conds = [torch.as_tensor(c, dtype=torch.float32) for c, _ in items]
    L = max(c.shape[0] for c in conds)
    cond = torch.zeros(len(conds), L, conds[0].shape[1])
    mask = torch.zeros(len(conds), L, dtype=torch.bool)
    for i, c in enumerate(conds):
        cond[i, :c.shape[0]] = c
        mask[i, :c.shape[0]] = True
    return cond, mask, torch.as_tensor([int(y) for _, y in items], dtype=torch.long)


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return f


def train_head(head: nn.Module, batches: Iterable[Batch], steps: int, lr: float = 1e-4,
               weight_decay: float = 0.01, warmup: int = 0, grad_clip: float = 1.0, ema: float | None = None,
               class_weights=None, device: str | torch.device = "cpu", seed: int = 0,
               log_every: int = 0, log: Callable[[str], None] = print) -> dict:
    """Optimise ``head.loss`` for ``steps`` updates, cycling over ``batches`` (re-iterated when exhausted).
    Returns {"history": [loss per step], "ema": AveragedModel or None}; the head is left in eval mode."""
    head.to(device).train()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup, steps))
    avg = AveragedModel(head, multi_avg_fn=get_ema_multi_avg_fn(ema)) if ema else None
    gen = torch.Generator().manual_seed(seed)
    history: list[float] = []
    stream = itertools.chain.from_iterable(itertools.repeat(batches))
    for step in range(steps):
        cond, mask, labels = next(stream)
        loss, stats = head.loss(cond.to(device), mask.to(device), labels.to(device), class_weights, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(head.parameters(), grad_clip)
        opt.step()
        sched.step()
        if avg is not None:
            avg.update_parameters(head)
        history.append(stats["loss"])
        if log_every and (step + 1) % log_every == 0:
            log(f"step {step + 1}/{steps} " + " ".join(f"{k}={v:.4f}" for k, v in stats.items()))
    head.eval()
    return {"history": history, "ema": avg}


@torch.no_grad()
def evaluate_head(head: nn.Module, batches: Iterable[Batch], allowed: Tensor | None = None,
                  device: str | torch.device = "cpu", **predict_kwargs) -> dict:
    """Single-slot metrics over all batches: {"wa", "ua", "macro_f1", "pred", "label", "scores"}.
    ``head`` may be an ``AveragedModel`` (its ``.module`` is used)."""
    head = getattr(head, "module", head).to(device).eval()
    preds, labels, scores = [], [], []
    for cond, mask, y in batches:
        p, s = head.predict(cond.to(device), mask.to(device), allowed=allowed, **predict_kwargs)
        preds.append(p.cpu()), labels.append(y.reshape(-1).cpu()), scores.append(s.cpu())
    pred, label = torch.cat(preds).numpy(), torch.cat(labels).numpy()
    return {"wa": float(accuracy_score(label, pred)), "ua": float(balanced_accuracy_score(label, pred)),
            "macro_f1": float(f1_score(label, pred, average="macro")), "pred": pred, "label": label,
            "scores": torch.cat(scores)}
