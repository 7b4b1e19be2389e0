"""Shared fixtures: tiny models built once per session, and the optional ../shared data folder."""
from __future__ import annotations

import os
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
