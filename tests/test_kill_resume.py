"""Real SIGKILLs at seeded moments of every long command, restarts, and outputs equal to an uninterrupted run's.

Kills per command: ``CI_KILLS`` below, ``C2SER_KILL_COUNT=N`` for all, or a soak with ``C2SER_KILL_SOAK=N``.
The augmented train case draws every augmentation (telephone band and pitch shifts included) with Emotion2Vec-S
online. The DeepSpeed ZeRO-2 case is a real 2-process ``accelerate launch`` at every start (~2 min of a suite
worker, so CI draws 7 moments there: one at the start, two during a save, four during training). Seed:
``C2SER_KILL_SEED`` (default 0); a failure prints the seed and the moments (tests/kill_harness.py).
"""
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kill_harness import REPO, ForkServer, Job, kill_test

SEED = int(os.environ.get("C2SER_KILL_SEED", "0"))
SOAK = int(os.environ.get("C2SER_KILL_SOAK", "0"))
CI_KILLS = {"train": 10, "train_augmented": 7, "train_zero2": 7, "head": 10, "eval": 10, "extract_features": 10,
            "meld": 10, "cot_labels": 10}


def kills(name: str) -> int:
    return SOAK or int(os.environ.get("C2SER_KILL_COUNT", CI_KILLS[name]))


@pytest.fixture(scope="module")
def server():
    s = ForkServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from c2ser.testing import make_toy_corpus

    return make_toy_corpus(tmp_path_factory.mktemp("kill_corpus"), per_class=3)


def _files(out: Path, pattern: str = "**/*", skip=(".log",)) -> dict[str, bytes]:
    """Every file under ``out`` (its own path replaced by OUT inside text files), temporary leftovers included."""
    got = {}
    for f in sorted(out.glob(pattern)):
        if f.is_file() and not f.name.endswith(skip):
            got[str(f.relative_to(out))] = f.read_bytes().replace(str(out).encode(), b"OUT")
    return got


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _report(r):
    in_save = sum(e.startswith("saving@") and ": killed after" in e for e in r.events)
    print(f"\n{r.describe()}\nKILL-SUMMARY {r.job}: {len(r.moments)} moments, killed {r.killed}× ({in_save} during a "
          f"save), outputs equal; reference {r.reference_s:.1f} s, killed runs + final {r.killed_run_s:.1f} s",
          file=sys.stderr)


# ---- c2ser train -------------------------------------------------------------------------------------------
def _train_config(tiny_models, corpus, out: Path, conf: Path | None = None, **over) -> Path:
    from omegaconf import OmegaConf

    from c2ser.config import to_dict
    from c2ser.testing import tiny_model_config
    from c2ser.training.config import DataConfig, OptimConfig, TrainConfig

    cfg = TrainConfig(model=tiny_model_config(tiny_models),
                      data=DataConfig(train_manifest=str(corpus["train"]), feature_dir=str(corpus["features"]),
                                      max_frames_in_batch=400, max_tokens_in_batch=400),
                      optim=OptimConfig(lr=2e-3, warmup_steps=2, grad_accum=1, scheduler="constant"),
                      task="distill", output_dir=str(out), max_epochs=2, seed=5, save_every=2, keep_states=2,
                      log_every=1, **over)
    cfg.model.adapter.dropout = 0.1  # dropout on: the RNG state must be restored too
    path = conf or out / "train.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(to_dict(cfg))))
    return path


def _train_outputs(out: Path) -> dict[str, bytes]:
    final = out / "final"
    if not (final / "model.safetensors").is_file():
        return {}
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return {"model": (final / "model.safetensors").read_bytes(),
            "lora": (final / "lora" / "adapter_model.safetensors").read_bytes(),
            "log": json.dumps([(r["step"], r["loss"], r["lr"]) for r in log]).encode(),
            "leftovers": str(sorted(p.name for p in [*out.glob("*.tmp*"), *out.glob("epochs/*.*")])).encode(),
            "epochs": str(sorted(p.name for p in out.glob("epochs/*"))).encode()}


def train_job(tiny_models, corpus, launch: list[str] | None = None, **over) -> Job:
    argv = (lambda out: [sys.executable, "-m", "accelerate.commands.launch", *launch, "-m", "c2ser.cli",
                         "train", "--config", str(out / "train.yaml")]) if launch else \
        (lambda out: ["train", "--config", str(out / "train.yaml")])
    return Job("c2ser train" + (" (DeepSpeed ZeRO-2, 2 processes)" if launch else ""), argv, _train_outputs,
               progress=lambda out: _lines(out / "log.jsonl"), saving="state-*.tmp-save", launch=bool(launch),
               prepare=lambda out: _train_config(tiny_models, corpus, out, **over))


def test_train_killed_anywhere_ends_with_the_same_weights(server, tiny_models, corpus, tmp_path):
    """Checkpoint averaging on (``average_last_epochs=2``: epoch ends saved, the final weights their mean), so kills
    also land in those saves; the DeepSpeed test below runs without it."""
    r = kill_test(server, train_job(tiny_models, corpus, average_last_epochs=2), tmp_path, kills("train"), SEED)
    _report(r)
    assert r.killed >= min(kills("train"), 3)


def test_train_with_augmentation_killed_anywhere_ends_with_the_same_weights(server, tiny_models, corpus, tmp_path):
    """Every augmentation drawn (noise, reverberation, level, pitch shifts, the telephone band) and Emotion2Vec-S run
    online on the augmented wave: the draws depend on (seed, epoch, clip key) only, not on the process that makes
    them, so a run killed anywhere and started again ends with the uninterrupted run's weights."""
    from omegaconf import OmegaConf

    from c2ser.testing import build_tiny_emotion2vec

    e2v = build_tiny_emotion2vec(tmp_path / "e2v.pt")

    def prepare(out: Path):
        path = _train_config(tiny_models, corpus, out)
        cfg = OmegaConf.load(path)
        cfg.model.ssl.checkpoint, cfg.data.feature_dir = str(e2v), None
        cfg.data.augment.update(dict(enabled=True, noise_prob=0.8, reverb_prob=0.5, pitch_prob=0.5,
                                     telephone_prob=0.5))
        path.write_text(OmegaConf.to_yaml(cfg))

    job = replace(train_job(tiny_models, corpus), name="c2ser train (augmented)", prepare=prepare)
    r = kill_test(server, job, tmp_path, kills("train_augmented"), SEED)
    _report(r)
    assert r.killed >= min(kills("train_augmented"), 3)
    log = (tmp_path / "reference.log").read_text()   # pitch shifts possible on every clip, and the band was on
    n = _lines(corpus["train"])
    assert f"pitch shifts: {n} of {n} clips may be shifted" in log and "telephone band on 50 % of the clips" in log


def test_deepspeed_zero2_killed_ends_with_the_same_weights(tiny_models, corpus, tmp_path):
    """The recipe's DeepSpeed config, 2 processes (~75 s here: each start is a 2-process launch)."""
    launch = ["--config_file", "recipes/accelerate/ds_zero2.yaml", "--num_processes", "2",
              "--main_process_port", "0"]  # a free port: the suite runs two workers (tests/conftest.py)
    r = kill_test(None, train_job(tiny_models, corpus, launch), tmp_path, kills("train_zero2"), SEED)
    _report(r)
    # the workers died with the launcher (c2ser/launch_guard.py), not by the harness's sweep; a kill at a start
    # ("time") may land before a worker has asked, so only kills during training count
    assert not [(kind, n) for kind, n in r.orphans if kind != "time"], r.describe()
    assert r.killed >= min(kills("train_zero2"), 3)


# ---- c2ser train-head ------------------------------------------------------------------------------------
def _head_outputs(out: Path) -> dict[str, bytes]:
    final = out / "final" / "head" / "head.safetensors"
    if not final.is_file():
        return {}
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return {"head": final.read_bytes(), "log": json.dumps([(r["step"], r["loss"], r["lr"]) for r in log]).encode(),
            "leftovers": str(sorted(p.name for p in out.glob("*.tmp*"))).encode()}


def test_head_stage_killed_anywhere_ends_with_the_same_head(server, checkpoint, corpus, tmp_path):
    """``c2ser train-head`` (Gen-SER, EMA on, a state every 2 updates) killed at seeded moments, saves included."""
    from omegaconf import OmegaConf

    over = {"backbone": checkpoint, "train_manifest": corpus["train"], "feature_dir": corpus["features"],
            "corpus": "synthetic", "conditioning": "adapter", "kind": "gen_ser", "epochs": 6, "batch_size": 3,
            "lr": 2e-3, "warmup": 2, "ema": 0.9, "save_every": 2, "keep_states": 2,
            "gen_ser": {"code_dim": 16, "d_model": 32, "layers": 1, "heads": 2, "ffn": 64, "token_dim": 8}}

    def prepare(out: Path) -> None:
        OmegaConf.save(OmegaConf.create({**over, "output_dir": str(out)}), out / "head.yaml")

    job = Job("c2ser train-head", lambda out: ["train-head", "--config", str(out / "head.yaml")], _head_outputs,
              progress=lambda out: _lines(out / "log.jsonl"), saving="state-*.tmp-save", prepare=prepare)
    r = kill_test(server, job, tmp_path, kills("head"), SEED)
    _report(r)
    assert r.killed >= min(kills("head"), 3)


# ---- c2ser eval ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tiny_models, tmp_path_factory):
    import torch

    from c2ser.checkpoint import save_checkpoint
    from c2ser.models.build import build_model
    from c2ser.testing import tiny_model_config

    torch.manual_seed(0)
    return save_checkpoint(build_model(tiny_model_config(tiny_models)), tmp_path_factory.mktemp("kill_ck") / "ck")


def test_eval_killed_anywhere_gives_the_same_predictions_and_metrics(server, checkpoint, corpus, tmp_path):
    job = Job("c2ser eval", lambda out: ["eval", "--checkpoint", str(checkpoint), "--manifest", str(corpus["train"]),
                                         "--corpus", "synthetic", "--feature-dir", str(corpus["features"]),
                                         "--out", str(out), "--max-new-tokens", "6"],
              _files)  # moments by time: the 12 clips are decoded in one batch (its lines appear at once)
    r = kill_test(server, job, tmp_path, kills("eval"), SEED)
    _report(r)
    assert r.killed >= min(kills("eval"), 3)


# ---- c2ser extract-features --------------------------------------------------------------------------------
def test_extract_features_killed_anywhere_writes_the_same_files(server, corpus, tmp_path):
    from c2ser.testing import build_tiny_emotion2vec

    e2v = build_tiny_emotion2vec(tmp_path / "e2v" / "checkpoint.pt", seed=3)
    job = Job("c2ser extract-features", lambda out: ["extract-features", str(corpus["train"]), str(corpus["valid"]),
                                                     "--checkpoint", str(e2v), "--out-dir", str(out / "f")],
              lambda out: _files(out / "f"), progress=lambda out: len(list((out / "f").glob("*.npy"))))
    r = kill_test(server, job, tmp_path / "run", kills("extract_features"), SEED)
    _report(r)
    assert len(_files(tmp_path / "run" / "killed" / "f", "*.npy")) == 16


# ---- data_prep/meld.py, data_prep/cot_labels.py ------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_meld(tmp_path_factory):
    import shutil

    from c2ser.data.fake_corpora import build_fake_corpora

    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        pytest.skip("ffmpeg / espeak-ng not installed")
    return build_fake_corpora(tmp_path_factory.mktemp("kill_fake"), per_class=1, corpora=("meld",))["meld"]


def test_meld_prep_killed_anywhere_writes_the_same_wavs_and_manifests(server, fake_meld, tmp_path):
    job = Job("data_prep/meld.py", lambda out: ["--root", str(fake_meld), "--out", str(out), "--workers", "2"],
              _files, progress=lambda out: len(list(out.glob("wav/*/*.wav"))), script=str(REPO / "data_prep/meld.py"))
    r = kill_test(server, job, tmp_path, kills("meld"), SEED)
    _report(r)
    assert r.killed >= min(kills("meld"), 3)


def test_cot_labels_killed_anywhere_writes_the_same_manifest(server, corpus, tmp_path):
    job = Job("data_prep/cot_labels.py", lambda out: ["--manifest", str(corpus["train"]), "--out",
                                                      str(out / "train.cot.jsonl")],
              _files, progress=lambda out: _lines(out / "train.cot.measured.jsonl"),
              script=str(REPO / "data_prep/cot_labels.py"))
    r = kill_test(server, job, tmp_path, kills("cot_labels"), SEED)
    _report(r)
    assert r.killed >= min(kills("cot_labels"), 3)


# ---- the resume rule: the newest COMPLETE state, the skipped ones named --------------------------------------
def test_resume_skips_a_state_truncated_or_missing_any_file(server, tiny_models, corpus, tmp_path):
    import shutil

    from kill_harness import run_once
    from c2ser.training.loop import resumable_states

    job = train_job(tiny_models, corpus)
    ref = tmp_path / "ref"
    ref.mkdir()
    job.prepare(ref)
    run_once(server, job, ref, tmp_path / "ref.log")
    newest, previous = ref / "state-8", ref / "state-6"
    files = sorted(f.relative_to(newest) for f in newest.rglob("*") if f.is_file())
    assert len(files) >= 4 and Path("trainer_state.json") in files
    for rel in files:
        for damage in ("truncated", "removed"):
            out = tmp_path / "damaged"
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(ref, out)
            f = out / "state-8" / rel
            if damage == "removed":
                f.unlink()
            else:
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
            said = []
            assert resumable_states(out, said.append) == [out / "state-6"], (rel, damage)
            assert len(said) == 1 and said[0].startswith(f"skipped {out / 'state-8'}: "), said
            assert str(rel) in said[0], said
    # a real restart with the newest state's largest file cut in half (the case): it falls back to
    # state-6, says so, and ends with the uninterrupted run's weights
    out = tmp_path / "resumed"
    shutil.copytree(ref, out)
    shutil.rmtree(out / "final")
    big = max((f for f in (out / "state-8").rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)
    big.write_bytes(big.read_bytes()[: big.stat().st_size // 2])
    (out / "train.yaml").write_text((ref / "train.yaml").read_text().replace(str(ref), str(out)))
    log = tmp_path / "resumed.log"
    run_once(server, job, out, log)
    text = log.read_text()
    assert f"skipped {out / 'state-8'}: {big.relative_to(out / 'state-8')} has" in text
    assert f"resumed from {out / 'state-6'}" in text
    assert _train_outputs(out) == _train_outputs(ref) and previous.is_dir()
    # damage of the right size (the file list cannot see it): loading fails, the previous state is taken
    shutil.rmtree(out)
    shutil.copytree(ref, out)
    shutil.rmtree(out / "final")
    weights = out / "state-8" / "model.safetensors"
    weights.write_bytes(b"\xff" * 8 + weights.read_bytes()[8:])  # its header length: garbage
    (out / "train.yaml").write_text((ref / "train.yaml").read_text().replace(str(ref), str(out)))
    log.unlink()
    run_once(server, job, out, log)
    text = log.read_text()
    assert f"skipped {out / 'state-8'}: does not load" in text and f"resumed from {out / 'state-6'}" in text
    assert _train_outputs(out) == _train_outputs(ref)


# ---- the harness itself: a kill reaches a launcher's workers, which run in sessions of their own ------------------
_WORKER = "import os, sys, time; open(os.path.join(sys.argv[1], f'w{os.getpid()}'), 'w').close(); time.sleep(120)"
_GUARDED = "from c2ser.launch_guard import die_with_launcher; assert die_with_launcher()\n" + _WORKER


def _worker_pids(out: Path) -> list[int]:
    return sorted(int(p.name[1:]) for p in out.glob("w*"))


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("guarded", [False, True], ids=["plain worker", "c2ser's guard"])
def test_a_kill_reaches_the_launchers_workers(tmp_path, guarded):
    """torch's launcher starts each worker with start_new_session: killing the launcher's group would orphan them
    (still training beside the next start). The harness kills every process of the run and counts those that
    outlived the launcher: both plain workers; none that called c2ser.launch_guard.die_with_launcher."""
    import time

    from kill_harness import _Run

    (tmp_path / "w.py").write_text(_GUARDED if guarded else _WORKER)
    pids = tmp_path / "pids"
    pids.mkdir()
    job = Job("torchrun, 2 sleeping workers", lambda out: [sys.executable, "-m", "torch.distributed.run",
              "--standalone", "--nproc_per_node", "2", str(tmp_path / "w.py"), str(out)], lambda out: {}, launch=True)
    run = _Run(None, job, pids, tmp_path / "run.log")
    deadline = time.monotonic() + 60
    while len(_worker_pids(pids)) < 2:
        assert time.monotonic() < deadline and run.poll() is None, (tmp_path / "run.log").read_text()
        time.sleep(0.05)
    workers = _worker_pids(pids)
    assert all(os.getsid(w) == w != run.pid for w in workers)   # each in a session of its own, not the launcher's
    run.kill()
    assert not any(_alive(w) for w in workers), (workers, run.orphans)
    assert len(run.orphans) == (0 if guarded else 2), run.orphans


def test_a_run_that_leaves_a_process_behind_fails(tmp_path):
    from kill_harness import run_once

    (tmp_path / "w.py").write_text(_WORKER)
    pids = tmp_path / "pids"
    pids.mkdir()
    detach = ("import subprocess, sys, time; subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]], "
              "start_new_session=True); time.sleep(1)")
    job = Job("a launcher that leaves a worker", lambda out: [sys.executable, "-c", detach, str(tmp_path / "w.py"),
              str(out)], lambda out: {}, launch=True)
    with pytest.raises(AssertionError, match="left processes running"):
        run_once(None, job, pids, tmp_path / "run.log")
    left = _worker_pids(pids)
    assert len(left) == 1 and not _alive(left[0])
