"""Shared fixtures: tiny models built once per session, and the optional ../shared data folder."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("C2SER_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from c2ser.testing import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data`` when present; tests that need it skip with the reason otherwise."""
    d = SHARED / "data"
    if not d.is_dir():
        pytest.skip(f"shared data folder not found at {d} (set C2SER_SHARED to use it)")
    return d


def recipe_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1",
               TORCH_EXTENSIONS_DIR=str(REPO / ".torch_extensions"), PYTHONPATH=str(REPO))
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="session")
def rehearsal(tmp_path_factory):
    """Run the whole tiny recipe once; returns (exp dir, its console output)."""
    exp = tmp_path_factory.mktemp("rehearsal") / "exp"
    proc = subprocess.run(["bash", "recipes/c2ser/run.sh", "--size", "tiny", "--exp", str(exp)], cwd=REPO,
                          env=recipe_env(), capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    (exp.parent / "recipe.log").write_text(out)
    assert proc.returncode == 0, out[-6000:]
    return exp, out


