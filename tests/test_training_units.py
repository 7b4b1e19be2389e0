"""Training building blocks: batch sampler caps and determinism, schedules, SpecAugment."""
import math
import os

import pytest
import torch

from c2ser.training.sampler import DynamicBatchSampler
from c2ser.training.schedules import batch_task, explicit_probability, lr_factor
from c2ser.training.specaug import spec_augment, spec_sub


def _lengths(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(50, 1500, (n,), generator=g).tolist()
    tokens = [f // 8 + int(t) for f, t in zip(frames, torch.randint(10, 120, (n,), generator=g))]
    return frames, tokens


def test_batches_respect_both_caps_and_cover_every_clip_once():
    frames, tokens = _lengths()
    s = DynamicBatchSampler(frames, tokens, max_frames=3900, max_tokens=1900, max_batch_size=16, sort_buffer=64)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(len(frames)))
    for b in batches:
        assert max(frames[i] for i in b) * len(b) <= 3900
        assert max(tokens[i] for i in b) * len(b) <= 1900
        assert len(b) <= 16
    # bucketing: padding stays small compared to random batches of the same sizes
    padded = sum(max(frames[i] for i in b) * len(b) for b in batches)
    assert sum(frames) / padded > 0.8


def test_sampler_is_deterministic_per_epoch_and_changes_across_epochs():
    frames, tokens = _lengths()
    a = DynamicBatchSampler(frames, tokens, 3900, 1900, seed=3)
    b = DynamicBatchSampler(frames, tokens, 3900, 1900, seed=3)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)


def test_ranks_get_disjoint_equal_shares_and_resume_skips():
    frames, tokens = _lengths()
    ranks = [DynamicBatchSampler(frames, tokens, 3900, 1900, seed=1, rank=r, world_size=2) for r in range(2)]
    b0, b1 = list(ranks[0]), list(ranks[1])
    assert len(b0) == len(b1) == len(ranks[0])
    assert not {i for b in b0 for i in b} & {i for b in b1 for i in b}
    ranks[0].set_epoch(0, skip=3)
    assert list(ranks[0]) == b0[3:] and len(ranks[0]) == len(b0) - 3


def test_clip_over_the_caps_is_a_clear_error():
    with pytest.raises(ValueError, match="exceed the batch caps"):
        DynamicBatchSampler([5000], [10], 3900, 1900)


def test_official_warmup_lr_and_cosine():
    assert lr_factor(4000, "warmup_inverse_sqrt", 8000, 10**6) == 0.5
    assert lr_factor(8000, "warmup_inverse_sqrt", 8000, 10**6) == 1.0
    assert math.isclose(lr_factor(32000, "warmup_inverse_sqrt", 8000, 10**6), 0.5)
    assert lr_factor(5, "cosine", 10, 110) == 0.5
    assert lr_factor(60, "cosine", 10, 110) == pytest.approx(0.5)
    assert lr_factor(110, "cosine", 10, 110) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown lr scheduler"):
        lr_factor(1, "exotic", 1, 1)


def test_warmup_stable_decay_holds_then_reaches_zero_at_the_last_update():
    # 1000 updates, warm-up 10: ramp, flat to update 800 (80 %), then linear to 0 at 1000
    f = [lr_factor(s, "warmup_stable_decay", 10, 1000) for s in (5, 10, 500, 800, 900, 950, 1000)]
    assert f == pytest.approx([0.5, 1.0, 1.0, 1.0, 0.5, 0.25, 0.0])


def test_stage2_schedule_decays_linearly_and_is_deterministic():
    total = 1000
    assert explicit_probability(0, total) == 1.0 and explicit_probability(total - 1, total) == 0.0
    assert explicit_probability(333, total) == pytest.approx(1 - 333 / 999)
    tasks = [batch_task("distill", s, total, seed=7) for s in range(total)]
    assert tasks == [batch_task("distill", s, total, seed=7) for s in range(total)]
    assert tasks[0] == "explicit" and tasks[-1] == "implicit"
    first, last = tasks[:250].count("explicit") / 250, tasks[-250:].count("explicit") / 250
    assert first > 0.75 and last < 0.25  # expected ≈ 0.875 and 0.125
    assert batch_task("explicit", 5, total, 7) == "explicit" and batch_task("implicit", 5, total, 7) == "implicit"


def test_spec_augment_masks_time_and_frequency_deterministically():
    mel = torch.ones(80, 400)
    a = spec_augment(mel, torch.Generator().manual_seed(0))
    b = spec_augment(mel, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and torch.equal(mel, torch.ones(80, 400))
    zero_cols = (a == 0).all(0).sum().item()
    zero_rows = (a == 0).all(1).sum().item()
    assert 1 <= zero_cols <= 100 and 1 <= zero_rows <= 20


def test_spec_sub_copies_earlier_frames():
    mel = torch.arange(400, dtype=torch.float32).repeat(80, 1)  # each frame holds its own index
    out = spec_sub(mel, torch.Generator().manual_seed(1))
    changed = (out != mel).any(0).nonzero().flatten().tolist()
    assert changed and torch.equal(spec_sub(mel, torch.Generator().manual_seed(1)), out)
    assert all(out[0, t] < t for t in changed)  # replaced by content from earlier positions


def test_total_updates_count_every_epochs_own_batches():
    """Dynamic batching gives each epoch its own batch count: the run length is their sum, so the stage-2
    explicit probability reaches 0 exactly at the last update."""
    import random

    rng = random.Random(3)
    frames = [rng.randint(50, 400) for _ in range(60)]
    s = DynamicBatchSampler(frames, [f // 8 + 20 for f in frames], max_frames=900, max_tokens=10_000,
                            sort_buffer=7, seed=1)
    counts = [len(s.all_batches(e)) for e in range(4)]
    assert len(set(counts)) > 1  # the premise: per-epoch counts differ
    assert s.total_batches(4) == sum(counts)
    total = s.total_batches(4) // 2  # grad_accum 2
    assert explicit_probability(total - 1, total) == 0.0
    assert batch_task("distill", total - 1, total, seed=9) == "implicit"


def test_long_clips_are_left_out_and_cropped_clips_count_30_s():
    from types import SimpleNamespace

    from c2ser.training.data import ManifestDataset
    from c2ser.training.loop import split_by_duration

    rows = [{"key": "a", "duration": 3.0}, {"key": "b", "duration": 41.0}, {"key": "c", "duration": 30.0}]
    kept, dropped = split_by_duration(rows, 30.0)
    assert [r["key"] for r in kept] == ["a", "c"] and [r["key"] for r in dropped] == ["b"]
    assert split_by_duration(rows, None) == (rows, [])

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [0] * len(text.split())}

    for long_audio, expected in (("crop", [300, 3000, 3000]), ("error", [300, 4100, 3000])):
        ds = ManifestDataset(rows, SimpleNamespace(tokenizer=Tok(), long_audio=long_audio), None, False)
        assert ds.frames == expected


def test_feature_cache_serves_the_first_load_and_keeps_it_clean(tiny_models, tmp_path):
    """``data.cache_features``: later epochs read nothing from disk and get what an uncached dataset gives;
    SpecAugment masks a copy (the cached mel stays clean)."""
    import shutil

    from c2ser.models.build import load_tokenizer
    from c2ser.models.config import LLMConfig
    from c2ser.models.processor import C2SERProcessor
    from c2ser.testing import make_toy_corpus
    from c2ser.training.data import ManifestDataset, read_rows

    paths = make_toy_corpus(tmp_path / "c", per_class=1)
    rows = read_rows(paths["train"])
    proc = C2SERProcessor(load_tokenizer(LLMConfig(name_or_path=str(tiny_models["llm"]))))
    plain = ManifestDataset(rows, proc, paths["features"], True)
    plain = [plain[i] for i in range(len(rows))]
    cached = ManifestDataset(rows, proc, paths["features"], True, cache=True)
    augmented = ManifestDataset(rows, proc, paths["features"], True, spec_augment=True, cache=True)
    for i in range(len(rows)):
        cached[i]
    masked = [augmented[i]["mel"] for i in range(len(rows))]
    shutil.rmtree(paths["features"])  # audio and features gone: only the cache can serve the clips now
    for r in rows:
        os.remove(r["audio"])
    for i, ref in enumerate(plain):
        again = cached[i]
        assert torch.equal(again["mel"], ref["mel"]) and (again["ssl"] == ref["ssl"]).all()
        assert torch.equal(augmented.cache[i][0], ref["mel"])  # the cache holds the clean mel
        assert not torch.equal(masked[i], ref["mel"])          # training saw a masked copy
