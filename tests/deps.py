"""Test dependencies that ``scripts/setup.sh --dev`` installs (FunASR, httpx, Playwright, Chromium, espeak-ng).

In CI (the ``CI`` environment variable set, as CI services do: ``CI=true``) a missing one is a test failure with a
clear message, because setup installed it there and a skip would hide a check that must run (e.g. the FunASR parity
tests behind "tested equal to FunASR"). Elsewhere the test is skipped with the reason (``make test`` prints skip
reasons: ``-rs`` in pytest.ini). Data that only some machines have (``../shared``) is not such a dependency: those
tests skip everywhere (conftest's ``shared_data``).
"""
from __future__ import annotations

import importlib
import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str, problem: str) -> None:
    """Fail in CI, skip elsewhere; ``what`` is the dependency, ``problem`` why it is unusable."""
    where = "scripts/setup.sh --dev installs it"
    if in_ci():
        pytest.fail(f"{what} is required in CI ({where}) but {problem}", pytrace=False)
    pytest.skip(f"{what}: {problem} ({where})")


def need_module(name: str, what: str | None = None):
    """``import name``, or fail in CI / skip elsewhere with the import error."""
    try:
        return importlib.import_module(name)
    except Exception as e:  # ImportError, or a broken install raising anything at import time
        problem = f"it is not importable: {type(e).__name__}: {e}"
    missing(what or name, problem)
