"""Complete-or-absent outputs: c2ser.atomic, torn JSON lines, and every long command on a full or read-only disk.

The disk cases use a REAL small file system: a tmpfs mounted for the test (root with CAP_SYS_ADMIN; the test skips
with the reason where mounting is not allowed), filled up to a few KiB (full disk: ENOSPC from the kernel at the
write call) or remounted read-only (EROFS; ``chmod 555`` would not stop root, which runs these tests).
"""
import errno
import json
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from c2ser.atomic import WriteError, atomic_path, atomic_save_npy, atomic_write_json, read_jsonl
from c2ser.cli import main

REPO = Path(__file__).resolve().parents[1]


# ---- the primitive ---------------------------------------------------------------------------------------------
def test_a_failed_write_keeps_the_old_file_and_says_which(tmp_path):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"n": 1})
    with pytest.raises(WriteError) as e:
        with atomic_path(target) as tmp:
            tmp.write_text('{"n": 2, "hal')  # half written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
    assert str(e.value) == (f"{target}: cannot write (No space left on device); no partial output will be used, "
                            "rerun when fixed")
    assert json.loads(target.read_text()) == {"n": 1} and os.listdir(tmp_path) == ["results.json"]
    atomic_save_npy(tmp_path / "a.npy", np.arange(3, dtype=np.float32))
    assert np.load(tmp_path / "a.npy").tolist() == [0, 1, 2]


def test_a_torn_last_line_is_dropped_and_a_damaged_middle_line_is_an_error(tmp_path, capsys):
    f = tmp_path / "p.jsonl"
    f.write_bytes(b'{"key": "a"}\n{"key": "b"}\n{"key": "c", "lab')
    assert read_jsonl(f) == ([{"key": "a"}, {"key": "b"}], True)
    assert "dropped a torn last line (17 bytes" in capsys.readouterr().err
    f.write_bytes(b'{"key": "a"}\n{"ke\n{"key": "c"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: not a JSON line"):
        read_jsonl(f)


def test_eval_predictions_redo_a_torn_last_line(tmp_path):
    from c2ser.evaluation.predictions import PredictionWriter, read_predictions

    f = tmp_path / "predictions.jsonl"
    f.write_text('{"key": "a", "label": "sad"}\n{"key": "b", "label": "ha')  # killed while writing b
    with PredictionWriter(f) as w:
        assert w.done_keys == {"a"}
        w.write({"key": "b", "label": "happy"})
    assert read_predictions(f) == [{"key": "a", "label": "sad"}, {"key": "b", "label": "happy"}]


# ---- every long command on a full / read-only file system ------------------------------------------------------
@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip()}): the disk cases need root")
    yield SmallFs(mnt)
    subprocess.run(["umount", "-l", str(mnt)], check=False)


class SmallFs:
    def __init__(self, mnt: Path):
        self.mnt, self.filler = mnt, mnt / "filler"

    def fill(self, leave: int) -> None:
        st = os.statvfs(self.mnt)
        with open(self.filler, "wb") as f:
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))

    def free(self) -> None:
        self.filler.unlink()

    def read_only(self, on: bool) -> None:
        subprocess.run(["mount", "-o", "remount," + ("ro" if on else "rw"), str(self.mnt)], check=True)


def _run(argv, capsys) -> tuple[int, str]:
    """(exit code, last stderr line) of a c2ser command, or of a data_prep script (argv[0] ends in .py)."""
    capsys.readouterr()
    if argv[0].endswith(".py"):
        old = sys.argv
        sys.argv = argv
        try:
            runpy.run_path(argv[0], run_name="__main__")
            rc, msg = 0, ""
        except SystemExit as e:
            rc, msg = (1, e.code) if isinstance(e.code, str) else (e.code or 0, "")
        finally:
            sys.argv = old
        err = capsys.readouterr().err
        return rc, msg or (err.strip().splitlines() or [""])[-1]
    rc = main(argv)
    return rc, (capsys.readouterr().err.strip().splitlines() or [""])[-1]


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(f.relative_to(out)): f.read_bytes().replace(str(out).encode(), b"OUT")
            for f in sorted(out.rglob("*")) if f.is_file() and f.name != "filler"}


@pytest.fixture(scope="module")
def toy(tiny_models, tmp_path_factory):
    import torch

    from c2ser.checkpoint import save_checkpoint
    from c2ser.models.build import build_model
    from c2ser.testing import build_tiny_emotion2vec, make_toy_corpus, tiny_model_config

    root = tmp_path_factory.mktemp("disk")
    torch.manual_seed(0)
    return {"corpus": make_toy_corpus(root / "corpus", per_class=2),
            "ckpt": save_checkpoint(build_model(tiny_model_config(tiny_models)), root / "ck"),
            "e2v": build_tiny_emotion2vec(root / "e2v" / "checkpoint.pt", seed=3), "models": tiny_models}


def _commands(toy) -> dict:
    """name → (argv for an output dir, bytes left free for the full-disk run)."""
    c = toy["corpus"]
    return {
        "eval": (lambda out: ["eval", "--checkpoint", str(toy["ckpt"]), "--manifest", str(c["train"]), "--corpus",
                              "synthetic", "--feature-dir", str(c["features"]), "--out", str(out),
                              "--max-new-tokens", "4"], 8 << 10),
        "extract-features": (lambda out: ["extract-features", str(c["train"]), "--checkpoint", str(toy["e2v"]),
                                          "--out-dir", str(out)], 12 << 10),
        "cot_labels.py": (lambda out: [str(REPO / "data_prep/cot_labels.py"), "--manifest", str(c["train"]),
                                       "--out", str(out / "train.cot.jsonl")], 8 << 10),
        "train": (lambda out: ["train", "--config", str(_train_conf(toy, out))], 512 << 10),
    }


def _train_conf(toy, out: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))
    from test_kill_resume import _train_config

    conf = toy["ckpt"].parent / f"train-{out.parent.name}-{out.name}.yaml"  # not on the small file system
    return _train_config(toy["models"], toy["corpus"], out, conf, max_steps=4)


@pytest.fixture(scope="module")
def fake_meld(tmp_path_factory):
    from c2ser.data.fake_corpora import build_fake_corpora

    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        pytest.skip("ffmpeg / espeak-ng not installed")
    return build_fake_corpora(tmp_path_factory.mktemp("disk_fake"), per_class=1, corpora=("meld",))["meld"]


@pytest.mark.parametrize("name", ["eval", "extract-features", "cot_labels.py", "train", "meld.py"])
def test_full_then_read_only_disk_one_line_nothing_partial_and_a_rerun_completes(name, toy, small_fs, tmp_path,
                                                                                 capsys, request):
    if name == "meld.py":
        root = request.getfixturevalue("fake_meld")
        argv, leave = (lambda out: [str(REPO / "data_prep/meld.py"), "--root", str(root), "--out", str(out),
                                    "--workers", "2"]), 300 << 10
    else:
        argv, leave = _commands(toy)[name]
    ref = tmp_path / "ref"
    assert _run(argv(ref), capsys)[0] == 0
    out = small_fs.mnt / "out"
    small_fs.fill(leave)
    rc, line = _run(argv(out), capsys)
    assert rc == 1 and str(small_fs.mnt) in line and "cannot write (No space left on device)" in line, line
    small_fs.free()
    assert _run(argv(out), capsys)[0] == 0, "the rerun after space was freed failed"
    if name == "train":  # the weights: those of the uninterrupted run (tensorboard files have host/time names)
        assert {k: v for k, v in _outputs(out).items() if k.startswith("final/") and k.endswith(".safetensors")} \
            == {k: v for k, v in _outputs(ref).items() if k.startswith("final/") and k.endswith(".safetensors")}
    else:
        assert _outputs(out) == _outputs(ref)
    shutil.rmtree(out)
    small_fs.read_only(True)
    try:
        rc, line = _run(argv(out), capsys)
    finally:
        small_fs.read_only(False)
    assert rc == 1 and str(out) in line and "Read-only file system" in line, line


def test_a_checkpoint_on_a_full_disk_is_one_line_and_no_half_folder(tiny_models, small_fs):
    import torch

    from c2ser.checkpoint import save_checkpoint
    from c2ser.models.build import build_model
    from c2ser.testing import tiny_model_config

    torch.manual_seed(0)
    model = build_model(tiny_model_config(tiny_models))
    small_fs.fill(64 << 10)
    with pytest.raises(WriteError, match=r"/fs/final: cannot write \(No space left on device\)"):
        save_checkpoint(model, small_fs.mnt / "final")
    assert sorted(p.name for p in small_fs.mnt.iterdir()) == ["filler"]


def test_an_average_on_a_full_disk_is_one_line_and_no_half_folder(small_fs, tmp_path):
    import torch
    from omegaconf import OmegaConf
    from safetensors.torch import save_file

    from c2ser.averaging import save_average

    dirs = []
    for i in range(2):  # two checkpoint folders of 256 KiB of weights each
        d = tmp_path / f"c{i}"
        d.mkdir()
        save_file({"adapter.w": torch.full((65536,), float(i))}, d / "model.safetensors")
        OmegaConf.save(OmegaConf.create({"model": {}}), d / "config.yaml")
        dirs.append(d)
    small_fs.fill(64 << 10)
    with pytest.raises(WriteError, match=r"/fs/avg: cannot write \(No space left on device\)"):
        save_average(dirs, small_fs.mnt / "avg")
    assert sorted(p.name for p in small_fs.mnt.iterdir()) == ["filler"]


def test_cot_labels_measurements_survive_a_torn_line(tmp_path):
    sys.path.insert(0, str(REPO / "data_prep"))
    from cot_labels import MeasureCache

    f = tmp_path / "x.measured.jsonl"
    row = {"key": "a", "audio": "a.wav", "text": "hi", "language": "en", "style": {"pitch_hz": 1.0}}
    c = MeasureCache(f)
    c.add(row)
    c._f.close()
    f.write_bytes(f.read_bytes() + b'{"key": "b", "aud')  # killed while appending b
    c = MeasureCache(f)
    c.add({**row, "key": "b"})
    c._f.close()
    again = MeasureCache(f)  # the torn piece was dropped, not glued to b's line
    assert again.get(row) == {"pitch_hz": 1.0} and again.get({**row, "key": "b"}) == {"pitch_hz": 1.0}
    assert again.get({**row, "text": "other words"}) is None  # the rate depends on the text
