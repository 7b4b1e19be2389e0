"""Learning-rate schedules and the stage-2 self-distillation schedule."""
from __future__ import annotations

import math
import random


DECAY_FRACTION = 0.2  # warmup_stable_decay: share of the run spent decaying to 0


def lr_factor(step: int, kind: str, warmup: int, total: int) -> float:
    """Multiplier of the base lr after ``step`` optimiser updates.

    ``warmup_inverse_sqrt`` is the official WarmupLR: ``min(step / warmup, sqrt(warmup / step))``.
    ``cosine``: linear warm-up then cosine decay to 0 at ``total``. ``constant``: warm-up then 1.
    ``warmup_stable_decay``: warm-up, 1, then a linear decay to 0 over the last ``DECAY_FRACTION`` of ``total``
    (the final weights are not those of a single noisy step at the full rate).
    """
    step = max(step, 1)
    warmup = max(warmup, 1)
    if kind == "warmup_inverse_sqrt":
        return min(step / warmup, math.sqrt(warmup / step))
    if step < warmup:
        return step / warmup
    if kind == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if kind == "constant":
        return 1.0
    if kind == "warmup_stable_decay":
        decay_start = total * (1 - DECAY_FRACTION)
        return 1.0 if step <= decay_start else max(0.0, (total - step) / max(1.0, total - decay_start))
    raise ValueError(f"unknown lr scheduler {kind!r} (warmup_inverse_sqrt | cosine | constant | warmup_stable_decay)")


def explicit_probability(step: int, total_steps: int) -> float:
    """Stage 2: probability of an explicit-CoT batch, decaying linearly from 1 (first step) to 0 (last step)."""
    if total_steps <= 1:
        return 0.0
    return max(0.0, 1.0 - step / (total_steps - 1))


def batch_task(task: str, step: int, total_steps: int, seed: int) -> str:
    """The task ("explicit"/"implicit") of the batch at ``step``: deterministic, identical on every process."""
    if task != "distill":
        return task
    u = random.Random(seed * 1_000_003 + step).random()
    return "explicit" if u < explicit_probability(step, total_steps) else "implicit"
