"""The training loop (one stage), on accelerate: single process, DDP, or DeepSpeed ZeRO-2/3 from the launch config.

Readable top to bottom: build → data → optimiser → (resume) → for each batch: pick the task (stage-2
schedule), forward, backward, clip, step, lr → log, save a resumable state every ``save_every`` updates →
validate at each epoch end (and keep its weights when ``average_last_epochs`` is on) → the final checkpoint (the
last update's weights, or the mean of the last epochs' ends: c2ser/averaging.py). Launch::

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

from c2ser.atomic import (TMP_MARK, WriteError, atomic_write_json, atomic_write_text, is_write_failure,
                          remove_leftovers, write_error)
from c2ser.averaging import as_model_state, average_trained
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
    """The ``state-N`` folders whose save finished (renamed from ``state-N.tmp-save``), oldest first."""
    return sorted((p for p in out.glob("state-*") if p.is_dir() and p.name[6:].isdigit()),
                  key=lambda p: int(p.name[6:]))


def state_problem(d: Path) -> str | None:
    """Why the state folder ``d`` cannot be resumed from (None: complete): its ``trainer_state.json`` lists every
    file of the save with its size, so a missing or truncated file is found without loading anything."""
    try:
        st = json.loads((d / STATE_FILE).read_text())
        int(st["step"]), int(st["epoch"]), int(st["consumed"])
    except FileNotFoundError:
        return f"no {STATE_FILE} (its save was interrupted)"
    except (OSError, ValueError, KeyError, TypeError):
        return f"unreadable {STATE_FILE}"
    for rel, size in st.get("files", {}).items():
        f = d / rel
        if not f.is_file():
            return f"{rel} is missing"
        if f.stat().st_size != size:
            return f"{rel} has {f.stat().st_size} bytes, {size} were written"
    return None


def resumable_states(out: Path, say=print) -> list[Path]:
    """Complete states, newest first; each incomplete one is named with the reason (``say``)."""
    good = []
    for d in reversed(_state_dirs(out)):
        why = state_problem(d)
        if why:
            say(f"skipped {d}: {why}")
        else:
            good.append(d)
    return good


def _resume(acc: Accelerator, out: Path) -> dict | None:
    """Load the newest complete state (model, optimiser, RNG) and return its data position; None: a fresh start.
    Leftovers of interrupted saves are removed; log.jsonl is cut back to the resumed update."""
    if acc.is_main_process:
        for p in remove_leftovers(out, "state-*"):
            acc.print(f"removed {p} (an interrupted save)")
    acc.wait_for_everyone()
    states = resumable_states(out, acc.print)
    st = None
    for i, d in enumerate(states):
        try:
            acc.load_state(str(d), **({"load_module_strict": False} if _is_ds(acc) else {}))
        except Exception as e:  # noqa: BLE001 - a damaged file of the right size: an older state overwrites all
            why = f"skipped {d}: does not load ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
            if i + 1 == len(states):
                raise ValueError(f"{why}; no older state to fall back to (move the state-* folders away to "
                                 "start over)") from None
            acc.print(why)
            continue
        st = json.loads((d / STATE_FILE).read_text())
        acc.print(f"resumed from {d} (update {st['step']}, epoch {st['epoch']}, batch {st['consumed']})")
        break
    if acc.is_main_process:
        _cut_log(out / "log.jsonl", st["step"] if st else 0)
    return st


def _cut_log(path: Path, step: int) -> None:
    """Keep the complete log lines up to ``step`` (a killed run logged later updates, maybe half a line)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]:  # the last piece: torn
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write_text(path, "".join(keep))


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
        if cfg.data.augment.pitch_prob:
            acc.print(f"augmentation pitch shifts: {len(augmenter.pitch_bounds)} of {len(rows)} clips may be shifted "
                      f"within their pitch bin (the others have no stored pitch in its bin); a shift is undone when "
                      f"the shifted clip, measured again, leaves the target's pitch or pace bin")
        if cfg.data.augment.telephone_prob:
            acc.print(f"augmentation telephone band on {100 * cfg.data.augment.telephone_prob:g} % of the clips "
                      f"each epoch (drawn per clip, after the noise)")
    dataset = ManifestDataset(rows, processor, cfg.data.feature_dir, cfg.model.ssl.enabled,
                              spec_augment=cfg.data.spec_augment, seed=cfg.seed, chat_prompts=cfg.data.chat_prompts,
                              cache=cfg.data.cache_features, wave_transform=augmenter,
                              clean_copies=augmenter is not None and cfg.data.augment.keep_clean)
    if dataset.clean_copies:
        acc.print(f"augmentation keep_clean: each epoch has the {len(rows)} clips augmented and clean "
                  f"({len(dataset)} items)")
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

    # ---- resume: the newest complete state (incomplete ones are named and skipped) ----------------------
    step, epoch, consumed = 0, 0, 0
    st = _resume(acc, out)
    if st:
        step, epoch, consumed = st["step"], st["epoch"], st["consumed"]

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
            status = _after_update(acc, out, cfg, step, epoch, consumed, total_steps, stop_after_step)
            if status == "stop":
                return out
            if status == "done":
                done = True
                break
        if not done:
            # an epoch that cannot be among the last N is not kept (under ZeRO-3 each keep gathers the model)
            if cfg.average_last_epochs and (cfg.max_steps or epoch + 1 > cfg.max_epochs - cfg.average_last_epochs):
                _keep_epoch_end(acc, model, out, epoch + 1, cfg.average_last_epochs)
            epoch, consumed = epoch + 1, 0
            if cfg.data.valid_manifest and cfg.valid_every and epoch % cfg.valid_every == 0:
                validate(cfg, acc, model, processor, step, zero3)
    bar.close()
    averaged = None
    if cfg.average_last_epochs:
        if done:  # the run ended inside its last epoch (a max_steps run: a partial one): that is its end
            _keep_epoch_end(acc, model, out, epoch + 1, cfg.average_last_epochs)
        averaged = _load_average(acc, model, out, cfg.average_last_epochs, zero3)
    if cfg.data.valid_manifest:
        metrics = validate(cfg, acc, model, processor, step, zero3)
    else:
        metrics = {}
    final = out / "final"
    state_dict = acc.get_state_dict(model)
    if acc.is_main_process:
        save_checkpoint(acc.unwrap_model(model), final, state_dict=state_dict,
                        extra_config={"train": to_dict(cfg),
                                      "result": {"step": step, **metrics,
                                                 **({"averaged_epochs": averaged} if averaged else {})},
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


def _after_update(acc: Accelerator, out: Path, cfg, step: int, epoch: int, consumed: int, total_steps: int,
                  stop_after_step: int | None) -> str | None:
    """After each update (both training stages and the head stage): a resumable state every ``cfg.save_every``
    updates, then "stop" (the tests' simulated crash at ``stop_after_step``), "done" (the last update) or None."""
    if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
        _save_state(acc, out, step, epoch, consumed, cfg.keep_states)
    if stop_after_step is not None and step >= stop_after_step:
        acc.wait_for_everyone()
        acc.end_training()
        return "stop"
    return "done" if step >= total_steps else None


def _save_state(acc: Accelerator, out: Path, step: int, epoch: int, consumed: int, keep: int) -> None:
    """A resumable state: model + optimiser + RNG (accelerate) and the data position (ours), written into
    ``state-N.tmp-save`` by every process and renamed to ``state-N`` by the main process once all of them
    finished and ``trainer_state.json`` (with every file's size) is written: a kill at any moment of a save
    leaves the previous state as the newest complete one."""
    d = out / f"state-{step}"
    tmp = d.with_name(d.name + TMP_MARK + "save")
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    try:
        acc.save_state(str(tmp), **({"exclude_frozen_parameters": True} if _is_ds(acc) else {}))
    except Exception as e:
        if is_write_failure(e, tmp):  # torch.save says "unexpected pos" on a full disk: the file system tells
            err = write_error(tmp, e)
            shutil.rmtree(tmp, ignore_errors=True)
            raise err from None
        raise
    acc.wait_for_everyone()  # every process has written its files
    if acc.is_main_process:
        files = {str(f.relative_to(tmp)): f.stat().st_size for f in sorted(tmp.rglob("*")) if f.is_file()}
        try:
            atomic_write_json(tmp / STATE_FILE, {"step": step, "epoch": epoch, "consumed": consumed, "files": files})
        except WriteError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(d, ignore_errors=True)  # an incomplete state-N of an earlier run
        os.replace(tmp, d)
        for old in _state_dirs(out)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def _epoch_dirs(out: Path) -> list[Path]:
    """The kept epoch ends ``epochs/epoch-E`` (complete saves only), oldest first."""
    d = out / "epochs"
    return sorted((p for p in d.glob("epoch-*") if p.is_dir() and p.name[6:].isdigit()), key=lambda p: int(p.name[6:]))


def _keep_epoch_end(acc: Accelerator, model, out: Path, number: int, keep: int) -> None:
    """The trained weights at the end of epoch ``number`` (1-based) → ``OUTPUT_DIR/epochs/epoch-N`` (a checkpoint,
    written atomically); only the newest ``keep`` are kept. A resumed run writes the same weights again."""
    state_dict = acc.get_state_dict(model)  # under ZeRO-3 a gather: every process takes part
    if acc.is_main_process:
        save_checkpoint(acc.unwrap_model(model), out / "epochs" / f"epoch-{number}", state_dict=state_dict,
                        extra_config={"epoch": number})
        for old in _epoch_dirs(out)[:-keep] + list((out / "epochs").glob("epoch-*.*")):  # + a killed save's
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def _load_average(acc: Accelerator, model, out: Path, keep: int, zero3: bool) -> list[int]:
    """Put the mean of the newest ``keep`` epoch ends into the model (every process reads the files; under ZeRO-3
    the main process writes into the gathered parameters); returns the averaged epochs."""
    dirs = _epoch_dirs(out)[-keep:]
    state = as_model_state(average_trained(dirs))
    inner = acc.unwrap_model(model)
    own = inner.state_dict()  # buffers (positional tables) are stored too
    unknown = [k for k in state if k not in own]
    if unknown:
        raise ValueError(f"{dirs[-1]}: weights not in the model, e.g. {unknown[:3]}")
    if zero3:
        import deepspeed

        params = [p for n, p in inner.named_parameters() if n in state]
        with deepspeed.zero.GatheredParameters(params, modifier_rank=0):
            if acc.is_main_process:
                inner.load_state_dict(state, strict=False)
    else:
        inner.load_state_dict(state, strict=False)
    acc.wait_for_everyone()
    epochs = [int(d.name[6:]) for d in dirs]
    acc.print(f"final weights: the mean of the ends of epochs {epochs} (average_last_epochs={keep})")
    return epochs


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
