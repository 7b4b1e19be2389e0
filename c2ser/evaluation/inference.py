"""Batched, deterministic, resumable inference over a manifest: clips → answers → a predictions JSONL.

Clips are grouped into length-bucketed batches (no shuffling), decoded with a named preset (greedy by
default; the preset and its settings go into every results file), and each answer is appended to the
predictions file as soon as its batch is done, so an interrupted run continues where it stopped.

Data-parallel (``accelerate launch --num_processes N -m c2ser.cli eval``): every process forms the same batches;
in round r process p decodes batch ``r·N + p``, the round's answers are gathered on process 0, which writes them
in batch order. The predictions file is therefore the one a single process writes (same batches, same order, same
per-batch seed), and it is still appended round by round (resumable).
"""
from __future__ import annotations

import os

import torch
from tqdm import tqdm

from c2ser.inference.official import PARITY_DECODING
from c2ser.models.processor import to_device
from c2ser.training.data import ManifestDataset, collate, identity
from c2ser.training.sampler import DynamicBatchSampler

# Decoding presets. "official" is the released C2SER's generate() call (c2ser.inference.official.PARITY_DECODING:
# 4-beam sampling with top_p=0.0, top_k=0, i.e. among exactly the two best tokens of each beam, repetition and
# length penalties, min_length 1) with the release's 400-token limit.
DECODING_PRESETS: dict[str, dict] = {
    "greedy": {"num_beams": 1, "do_sample": False},
    "beam4": {"num_beams": 4, "do_sample": False},
    "official": {k: v for k, v in PARITY_DECODING.items() if k != "max_new_tokens"},
    "sample": {"num_beams": 1, "do_sample": True, "top_p": 0.9, "temperature": 1.0},
}
# Default answer-length limit (--max-new-tokens overrides it): the release's 400 for its own decoding and for explicit
# answers (a description then the emotion: a lower cap can cut the conclusion; the release's training filter keeps
# targets of at most 200 tokens), 128 for the short implicit answers. How many answers hit it: results' "truncated".
PRESET_MAX_NEW_TOKENS = {"official": PARITY_DECODING["max_new_tokens"]}
MODE_MAX_NEW_TOKENS = {"explicit": 400, "implicit": 128}
ROW_FIELDS = ("emotion", "raw_emotion", "language", "corpus", "split", "speaker", "style")


def decoding_settings(preset: str, max_new_tokens: int | None, seed: int, mode: str = "implicit") -> dict:
    """The generate() settings of ``preset`` for answers in ``mode``; ``max_new_tokens`` None = the default limit
    (the preset's own, else the mode's: :data:`PRESET_MAX_NEW_TOKENS`, :data:`MODE_MAX_NEW_TOKENS`)."""
    if preset not in DECODING_PRESETS:
        raise ValueError(f"unknown decoding preset {preset!r} (choose from {', '.join(DECODING_PRESETS)})")
    if max_new_tokens is None:
        max_new_tokens = PRESET_MAX_NEW_TOKENS.get(preset) or MODE_MAX_NEW_TOKENS.get(mode, 128)
    return {"preset": preset, "max_new_tokens": max_new_tokens, "seed": seed, **DECODING_PRESETS[preset]}


def process_state():
    """accelerate's ``PartialState`` when this process is one of several (``WORLD_SIZE`` > 1; gloo without CUDA,
    as in :func:`c2ser.training.loop.make_accelerator`), else None (one process: nothing is initialised)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState

    if torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
        return PartialState()
    return PartialState(cpu=True, backend="gloo")


def end_processes() -> None:
    """After a run of several processes: wait for all of them, then destroy the process group. A process that left
    while gloo's threads still served the others could abort at exit ('terminate called without an active
    exception', SIGABRT), failing the launch after every answer was written."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@torch.no_grad()
def predict_manifest(model, processor, rows: list[dict], writer, mode: str = "implicit",
                     feature_dir: str | None = None, decoding: str = "greedy", max_new_tokens: int | None = None,
                     seed: int = 0, max_frames: int = 12000, max_tokens: int = 20000, max_batch_size: int = 16,
                     progress: bool = True, state=None, wave_transform=None) -> dict:
    """Decode every clip of ``rows`` not yet in ``writer`` (a PredictionWriter); returns the decoding settings.
    Each row says whether its answer was cut by the length limit (``truncated``: no end-of-answer token).
    ``state`` (a ``PartialState`` of several processes): every process must pass the same ``rows`` and a writer
    with the same ``done_keys``; only process 0's writer is written to. ``wave_transform``: an evaluation condition
    (:class:`c2ser.data.augment.Condition`) applied to each clip before both encoders."""
    settings = decoding_settings(decoding, max_new_tokens, seed, mode)
    gen_kwargs = {k: v for k, v in settings.items() if k not in ("preset", "max_new_tokens", "seed")}
    todo = [r for r in rows if r["key"] not in writer.done_keys]
    if not todo:
        return settings
    ds = ManifestDataset(todo, processor, feature_dir, model.cfg.ssl.enabled, wave_transform=wave_transform)
    batches = DynamicBatchSampler(ds.frames, ds.tokens, max(max_frames, max(ds.frames)),
                                  max(max_tokens, max(ds.tokens)), max_batch_size, shuffle=False).all_batches(0)
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    mine = iter(torch.utils.data.DataLoader(ds, batch_sampler=batches[rank::world], collate_fn=identity))
    model.eval()
    bar = tqdm(total=len(todo), disable=not progress or rank != 0, desc=f"decode[{mode}]")
    for _ in range(-(-len(batches) // world)):  # rounds: one batch per process
        items = next(mine, None)
        answers = []
        if items:
            torch.manual_seed(seed)  # sampling presets: the same seed gives the same answers
            batch = to_device(collate(processor, items, mode, with_targets=False), model.device)
            texts, hit_limit = model.generate(batch, max_new_tokens=settings["max_new_tokens"], return_hit_limit=True,
                                              **gen_kwargs)
            for it, text, hit in zip(items, texts, hit_limit):
                row = ds.rows[it["index"]]
                answers.append({"key": it["key"], "prediction": text, "mode": mode, "truncated": bool(hit),
                                **{k: row.get(k) for k in ROW_FIELDS}})
        if world > 1:
            from accelerate.utils import gather_object

            answers = [a for part in gather_object([answers]) for a in part]  # process order = batch order
        if rank == 0:
            for a in answers:
                writer.write(a)
        bar.update(len(answers))
    bar.close()
    return settings

