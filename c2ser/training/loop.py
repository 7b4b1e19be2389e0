"""The training loop (one stage), on accelerate: single process, DDP, or DeepSpeed ZeRO-2/3 from the launch config.

Readable top to bottom: build → data → optimiser → (resume) → for each batch: pick the task (stage-2
schedule), forward, backward, clip, step, lr → log, save a resumable state every ``save_every`` updates →
validate and save a checkpoint at each epoch end. Launch::

    accelerate launch [--config_file recipes/accelerate/ds_zero2.yaml] -m c2ser.cli train --config CONF.yaml k=v …
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, InitProcessGroupKwargs, gather_object, set_seed
from tqdm import tqdm

from c2ser.checkpoint import load_weights, save_checkpoint
from c2ser.config import to_dict
from c2ser.data.validate import validate_training_rows
from c2ser.models.build import build_model
from c2ser.models.processor import C2SERProcessor, to_device
from c2ser.training.config import TrainConfig
from c2ser.training.data import ManifestDataset, collate, identity, read_rows
from c2ser.training.sampler import DynamicBatchSampler
from c2ser.training.schedules import batch_task, lr_factor

STATE_FILE = "trainer_state.json"


def make_accelerator(cfg: TrainConfig) -> Accelerator:
    # Without CUDA accelerate picks no process-group backend; gloo makes CPU DDP / DeepSpeed really distributed.
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    handlers = [InitProcessGroupKwargs(backend="gloo")] if distributed and not torch.cuda.is_available() else []
    acc = Accelerator(gradient_accumulation_steps=cfg.optim.grad_accum, log_with="tensorboard",
                      project_dir=cfg.output_dir, kwargs_handlers=handlers)
    plugin = acc.state.deepspeed_plugin
    if plugin is not None:
        ds = plugin.deepspeed_config
        if ds.get("train_micro_batch_size_per_gpu") == "auto":
            ds["train_micro_batch_size_per_gpu"] = 1  # dynamic batches: a nominal size
        if ds.get("gradient_clipping", "auto") == "auto":
            ds["gradient_clipping"] = cfg.optim.grad_clip  # DeepSpeed clips inside its step
    return acc


def _state_dirs(out: Path) -> list[Path]:
    return sorted(out.glob("state-*"), key=lambda p: int(p.name.split("-")[1]))


def train(cfg: TrainConfig, stop_after_step: int | None = None) -> Path:
    """Run one stage; returns the final checkpoint directory. ``stop_after_step`` simulates a crash (tests)."""
    out = Path(cfg.output_dir)
    acc = make_accelerator(cfg)
    set_seed(cfg.seed)
    rows = validate_training_rows(cfg)  # the manifest's usable rows; bad ones → OUTPUT_DIR/rejects.jsonl
    rows, too_long = split_by_duration(rows, cfg.data.max_duration)
    if too_long:
        acc.print(f"{cfg.data.train_manifest}: {len(too_long)} clips longer than data.max_duration="
                  f"{cfg.data.max_duration:g} s left out (kept {len(rows)}), e.g. {too_long[0]['key']!r}")
    model = build_model(cfg.model)
    if cfg.init_from:
        load_weights(model, cfg.init_from)
    processor = C2SERProcessor(model.tokenizer, model.whisper.dims.n_mels, cfg.model.whisper.long_audio)
    zero3 = acc.distributed_type == DistributedType.DEEPSPEED and acc.state.deepspeed_plugin.zero_stage == 3

    augmenter = None
    if cfg.data.augment.enabled:  # noise / reverberation / level on the waveform (c2ser/data/augment.py)
        from c2ser.data.augment import Augmenter

        augmenter = Augmenter(cfg.data.augment, rows, cfg.seed)
        acc.print(f"augmentation on: {len(augmenter.bounds)} clips with a volume-bin-bounded gain, "
                  f"{augmenter.unbounded} without (no stored loudness or bin disagreeing with the recomputed μ ± σ)")
    dataset = ManifestDataset(rows, processor, cfg.data.feature_dir, cfg.model.ssl.enabled,
                              spec_augment=cfg.data.spec_augment, seed=cfg.seed, chat_prompts=cfg.data.chat_prompts,
                              cache=cfg.data.cache_features, wave_transform=augmenter)
    sampler = DynamicBatchSampler(dataset.frames, dataset.tokens, cfg.data.max_frames_in_batch,
                                  cfg.data.max_tokens_in_batch, cfg.data.max_batch_size, cfg.data.sort_buffer,
                                  seed=cfg.seed, rank=acc.process_index, world_size=acc.num_processes)
    # optimiser updates of the whole run: every epoch's own batch count (dynamic batching varies per epoch),
    # so the schedules (lr, stage-2 explicit probability) end exactly at the last update
    total_steps = cfg.max_steps or sampler.total_batches(cfg.max_epochs) // cfg.optim.grad_accum

    params = [p for p in model.parameters() if p.requires_grad]
    # foreach: one multi-tensor update (PyTorch's default on GPU; on CPU it saves ~8 % of a tiny model's step)
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                                  weight_decay=cfg.optim.weight_decay, foreach=True)
    applied = {}  # the lr AdamW really used at its last step (read inside the step, whatever wraps it)
    optimizer.register_step_pre_hook(lambda opt, args, kwargs: applied.update(lr=opt.param_groups[0]["lr"]))
    model, optimizer = acc.prepare(model, optimizer)
    acc.init_trackers("train", config={"task": cfg.task, "lr": cfg.optim.lr})

    # ---- resume ------------------------------------------------------------------------------------
    step, epoch, consumed = 0, 0, 0
    states = _state_dirs(out)
    if states:
        acc.load_state(str(states[-1]), **({"load_module_strict": False} if _is_ds(acc) else {}))
        st = json.loads((states[-1] / STATE_FILE).read_text())
        step, epoch, consumed = st["step"], st["epoch"], st["consumed"]
        acc.print(f"resumed from {states[-1]} (update {step}, epoch {epoch}, batch {consumed})")

    bar = tqdm(total=total_steps, initial=step, disable=not acc.is_main_process, desc=f"train[{cfg.task}]")
    t0, seen, frames = time.time(), 0, 0
    done = step >= total_steps
    while not done and epoch < cfg.max_epochs:
        sampler.set_epoch(epoch, skip=consumed)
        dataset.epoch = epoch
        # own generator: creating the loader must not consume the global RNG (resume equality)
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=identity,
                                             num_workers=cfg.data.num_workers, generator=torch.Generator())
        model.train()
        for items in loader:
            task = batch_task(cfg.task, step, total_steps, cfg.seed)
            batch = to_device(collate(processor, items, task), acc.device)
            with acc.accumulate(model):
                if acc.sync_gradients:  # before backward: under DeepSpeed, acc.backward also steps the optimiser
                    for g in optimizer.param_groups:
                        g["lr"] = cfg.optim.lr * lr_factor(step + 1, cfg.optim.scheduler, cfg.optim.warmup_steps,
                                                           total_steps)
                loss = model(batch)
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(params, cfg.optim.grad_clip)
                optimizer.step()
                optimizer.zero_grad()
            consumed += 1
            seen += len(items)
            frames += int(batch["mel_lengths"].sum())
            if not acc.sync_gradients:
                continue
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == total_steps:
                dt = time.time() - t0
                logs = {"loss": loss.item(), "lr": optimizer.param_groups[0]["lr"], "lr_applied": applied.get("lr"),
                        "samples_per_s": seen / dt, "audio_s_per_s": frames / 100 / dt, "explicit": task == "explicit"}
                acc.log(logs, step=step)
                if acc.is_main_process:
                    with open(out / "log.jsonl", "a") as f:
                        f.write(json.dumps({"step": step, **logs}) + "\n")
                bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{logs['lr']:.2e}")
            if step % cfg.save_every == 0 and step < total_steps:
                _save_state(acc, out, step, epoch, consumed, cfg.keep_states)
            if stop_after_step is not None and step >= stop_after_step:
                acc.wait_for_everyone()
                acc.end_training()
                return out
            if step >= total_steps:
                done = True
                break
        if not done:
            epoch, consumed = epoch + 1, 0
            if cfg.data.valid_manifest and cfg.valid_every and epoch % cfg.valid_every == 0:
                validate(cfg, acc, model, processor, step, zero3)
    bar.close()
    if cfg.data.valid_manifest:
        metrics = validate(cfg, acc, model, processor, step, zero3)
    else:
        metrics = {}
    final = out / "final"
    state_dict = acc.get_state_dict(model)
    if acc.is_main_process:
        save_checkpoint(acc.unwrap_model(model), final, state_dict=state_dict,
                        extra_config={"train": to_dict(cfg), "result": {"step": step, **metrics},
                                      "launch": {"distributed_type": str(acc.distributed_type.value),
                                                 "num_processes": acc.num_processes,
                                                 "mixed_precision": str(acc.mixed_precision)}})
    acc.wait_for_everyone()
    acc.end_training()
    return final


def split_by_duration(rows: list[dict], max_duration: float | None) -> tuple[list[dict], list[dict]]:
    """(kept, too long): clips over ``max_duration`` seconds are left out of training (None = keep all)."""
    if max_duration is None:
        return rows, []
    return ([r for r in rows if r["duration"] <= max_duration], [r for r in rows if r["duration"] > max_duration])


def _is_ds(acc: Accelerator) -> bool:
    return acc.distributed_type == DistributedType.DEEPSPEED


def _save_state(acc: Accelerator, out: Path, step: int, epoch: int, consumed: int, keep: int) -> None:
    """A resumable state: model + optimiser + RNG (accelerate) and the data position (ours)."""
    d = out / f"state-{step}"
    acc.save_state(str(d), **({"exclude_frozen_parameters": True} if _is_ds(acc) else {}))
    if acc.is_main_process:
        (d / STATE_FILE).write_text(json.dumps({"step": step, "epoch": epoch, "consumed": consumed}))
        for old in _state_dirs(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


@torch.no_grad()
def validate(cfg: TrainConfig, acc: Accelerator, model, processor: C2SERProcessor, step: int, zero3: bool) -> dict:
    """Validation loss on the stage's task and emotion accuracy of greedy answers (parsed) on the valid set."""
    from c2ser.evaluation.parse import parse_emotion

    task = "explicit" if cfg.task == "explicit" else "implicit"
    rows = read_rows(cfg.data.valid_manifest)
    n = cfg.data.max_valid_clips
    if n and len(rows) > n:  # evenly spread: a manifest sorted by class is not cut to its first classes
        rows = [rows[i * len(rows) // n] for i in range(n)]
    ds = ManifestDataset(rows, processor, cfg.data.feature_dir, cfg.model.ssl.enabled)
    sampler = DynamicBatchSampler(ds.frames, ds.tokens, cfg.data.max_frames_in_batch, cfg.data.max_tokens_in_batch,
                                  cfg.data.max_batch_size, shuffle=False, rank=acc.process_index,
                                  world_size=acc.num_processes)
    model.eval()
    inner = acc.unwrap_model(model)
    losses, results = [], []
    for items in torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=identity):
        batch = to_device(collate(processor, items, task), acc.device)
        losses.append(model(batch).item())
        texts = inner.generate(batch, max_new_tokens=cfg.max_new_tokens, synced_gpus=zero3)
        results += [(it["emotion"], parse_emotion(t).label) for it, t in zip(items, texts)]
    losses = gather_object(losses)
    results = gather_object(results)
    model.train()
    metrics = {"valid_loss": sum(losses) / max(1, len(losses)),
               "valid_accuracy": sum(a == b for a, b in results) / max(1, len(results))}
    acc.log(metrics, step=step)
    acc.print(f"validation after update {step}: loss {metrics['valid_loss']:.4f}, "
              f"accuracy {metrics['valid_accuracy']:.3f} ({len(results)} clips, {task})")
    return metrics
