"""Shared fixtures: tiny models built once per session, and the optional ../shared data folder."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one torch thread per worker (and per process it starts), set before torch is imported: the workers already
    # share the cores, and the tiny models gain little from a second thread for much more CPU (docs/demo.md, "Time")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("C2SER_SHARED", REPO.parent / "shared"))


# `make test` runs the suite on two pytest-xdist workers (`-n 2 --dist loadfile`). Each test module is a unit of work,
# run in one worker in file order (its module fixtures are built once; test_bad_input.py's summary sees every case).
# SHARED_UNITS merges modules into one unit: the users of the recipe rehearsal (its session fixture then runs once),
# which are also the only launchers on accelerate's default port (29500) and `c2ser web`'s (7860), as the recipe and
# the README commands are run as written; every other test that starts a launcher asks for a free port
# (`--main_process_port 0`, torchrun `--standalone`). FIRST: the longest units (minutes each), started first so
# that the two workers finish together; the rest follow in file order.
SHARED_UNITS = {"test_recipe_rehearsal.py": "rehearsal", "test_readme_commands.py": "rehearsal"}
FIRST = ["test_demo_pipeline.py", "rehearsal", "test_kill_resume.py"]


def _unit(module_file: str) -> str:
    return SHARED_UNITS.get(module_file, module_file)


def pytest_collection_modifyitems(config, items):
    """The longest units first (a stable sort: file order otherwise)."""
    rank = {unit: i for i, unit in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(_unit(item.path.name), len(FIRST)))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: without it installed, pytest ignores this one
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile with SHARED_UNITS merged (xdist's loadgroup marks are lost under pytest 9's node ids)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid.split("::", 1)[0].rsplit("/", 1)[-1])

    config.option.loadscopereorder = False  # keep the collection's order: FIRST, then file order
    return Units(config, log)


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




# The CI size of `make demo` (tests/test_demo_pipeline.py): every stage of recipes/tiny/run.sh, two seeds, cut to a
# few clips and updates (recipes/tiny/conf/ci_train.yaml and ci_head.yaml say why each value):
DEMO_CI_ARGS = ["--seeds", "0,1",
                "--per_class", "8",                   # 32 training clips (the demo: 1000)
                "--synthetic_held_out", "2,2,2",      # 8 valid, 8 valid2, 8 test clips (the demo: 160 / 120 / 240)
                "--chat_clips", "8",                  # one test clip per language × emotion (the demo: 40)
                "--conditions", "clean,noise:babble:10,reverb:0.6+telephone",  # 3 listening conditions (the demo: 7)
                "--overlay", "recipes/tiny/conf/ci_train.yaml", "--head_overlay", "recipes/tiny/conf/ci_head.yaml"]


@pytest.fixture(scope="session")
def demo_pipeline(tmp_path_factory):
    """Run `make demo`'s recipe (recipes/tiny/run.sh) end to end at the CI size; returns (exp dir, console output)."""
    exp = tmp_path_factory.mktemp("demo") / "exp"
    proc = subprocess.run(["bash", "recipes/tiny/run.sh", "--exp", str(exp), *DEMO_CI_ARGS], cwd=REPO,
                          env=recipe_env(), capture_output=True, text=True, timeout=1500)
    out = proc.stdout + proc.stderr
    (exp.parent / "demo.log").write_text(out)
    assert proc.returncode == 0, out[-6000:]
    return exp, out
