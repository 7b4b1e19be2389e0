"""bench/gpu_suite.sh cannot rot: its CPU-only refusal, its argument errors, and a forced tiny CPU run of one stage
whose summary.json / tables.md are checked. (The whole tiny rehearsal, every stage, is opt-in: C2SER_SLOW=1.)"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "bench" / "gpu_suite.sh"


def _suite(*args, timeout=300):
    env = {**os.environ, "PYTHON": sys.executable, "DS_ACCELERATOR": "cpu"}
    return subprocess.run(["bash", str(SUITE), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the suite would run")
def test_cpu_only_machine_gets_one_line_and_nothing_written(tmp_path):
    r = _suite("--out", str(tmp_path / "out"))  # default: --size full --device cuda
    assert r.returncode == 0
    assert r.stderr.strip().splitlines() == [
        "gpu_suite: no CUDA device on this machine: nothing run (rehearse with --size tiny --device cpu)"]
    assert r.stdout == "" and not (tmp_path / "out").exists()


def test_bad_arguments_exit_2(tmp_path):
    assert _suite("--size", "huge").returncode == 2
    r = _suite("--device", "cpu", "--out", str(tmp_path), "--only", "nonsense")
    assert r.returncode == 2 and "unknown stage nonsense" in r.stderr


def _check(out: Path, stages):
    summary = json.loads((out / "summary.json").read_text())
    assert summary["size"] == "tiny" and summary["device"] == "cpu" and list(summary["stages"]) == stages
    for s in stages:
        st = summary["stages"][s]
        assert st["status"] == "ok", (s, (out / f"{s}.log").read_text()[-2000:])
        assert st["result"]["size"] == "tiny" and st["result"]["rows"]
        assert st["result"]["header"][0] in (out / "tables.md").read_text()
    return summary


def test_forced_tiny_cpu_run_writes_summary_and_tables(tmp_path):
    r = _suite("--size", "tiny", "--device", "cpu", "--out", str(tmp_path), "--only", "whisper")
    assert r.returncode == 0, r.stderr
    summary = _check(tmp_path, ["whisper"])
    row = summary["stages"]["whisper"]["result"]["rows"][0]
    assert row[0] == "2 s" and row[1] == 2 and row[-1].endswith("×")  # clip length, batch, speed-up
    assert "## whisper (ok," in (tmp_path / "tables.md").read_text()


@pytest.mark.skipif(os.environ.get("C2SER_SLOW") != "1", reason="every stage at tiny takes minutes: C2SER_SLOW=1")
def test_every_stage_at_tiny(tmp_path):
    r = _suite("--size", "tiny", "--device", "cpu", "--out", str(tmp_path), timeout=900)
    assert r.returncode == 0, r.stderr
    _check(tmp_path, ["training", "evaluation", "heads", "emotion2vec", "whisper"])
