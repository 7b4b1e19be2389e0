"""Dynamic batching: length-bucketed batches capped by padded audio frames and padded LLM tokens.

For each epoch (seeded by ``seed + epoch``): shuffle all clips, cut the order into pools of ``sort_buffer``,
sort each pool by length, cut it greedily into batches whose ``longest × count`` stays under both caps,
then shuffle the batches. Process ``r`` of ``W`` takes batches ``r, r+W, …``; the list is truncated to a multiple
of ``W`` so every process runs the same number of steps. ``skip`` resumes mid-epoch.
"""
from __future__ import annotations

import random
from typing import Iterator, Sequence


class DynamicBatchSampler:
    def __init__(self, frames: Sequence[int], tokens: Sequence[int], max_frames: int, max_tokens: int,
                 max_batch_size: int = 64, sort_buffer: int = 500, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        if len(frames) != len(tokens):
            raise ValueError("frames and tokens must have one entry per clip")
        too_long = [i for i, (f, t) in enumerate(zip(frames, tokens)) if f > max_frames or t > max_tokens]
        if too_long:
            raise ValueError(f"{len(too_long)} clips exceed the batch caps on their own (e.g. index {too_long[0]}: "
                             f"{frames[too_long[0]]} frames, {tokens[too_long[0]]} tokens); filter them first")
        self.frames, self.tokens = list(frames), list(tokens)
        self.max_frames, self.max_tokens, self.max_batch_size = max_frames, max_tokens, max_batch_size
        self.sort_buffer, self.seed, self.shuffle = sort_buffer, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the epoch's order; ``skip`` = batches of this process already consumed (resume)."""
        self.epoch, self.skip = epoch, skip

    def all_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed + epoch)
        order = list(range(len(self.frames)))
        if self.shuffle:
            rng.shuffle(order)
        batches: list[list[int]] = []
        for start in range(0, len(order), self.sort_buffer):
            pool = sorted(order[start: start + self.sort_buffer], key=lambda i: (self.frames[i], i))
            cur: list[int] = []
            for i in pool:
                cand = cur + [i]
                n = len(cand)
                if cur and (n > self.max_batch_size or max(self.frames[j] for j in cand) * n > self.max_frames
                            or max(self.tokens[j] for j in cand) * n > self.max_tokens):
                    batches.append(cur)
                    cand = [i]
                cur = cand
            if cur:
                batches.append(cur)
        if self.shuffle:
            rng.shuffle(batches)
        return batches[: len(batches) - len(batches) % self.world_size] if self.world_size > 1 else batches

    def total_batches(self, epochs: int) -> int:
        """Batches this process runs over ``epochs`` epochs (each epoch's count, not the first one's × epochs)."""
        return sum(len(self.all_batches(e)) // self.world_size for e in range(epochs))

    def __iter__(self) -> Iterator[list[int]]:
        mine = self.all_batches(self.epoch)[self.rank:: self.world_size]
        yield from mine[self.skip:]

    def __len__(self) -> int:
        return len(self.all_batches(self.epoch)) // self.world_size - self.skip
