"""`make demo`'s own pipeline in CI: recipes/tiny/run.sh end to end with 2 seeds at a reduced size (the session
fixture ``demo_pipeline`` in conftest.py: every demo stage, few clips and updates), and its RESULTS.md checked
against the per-seed results files. The expected mean ± std values are computed here from the files, with this
file's own arithmetic (not eval/aggregate_seeds.py's)."""
import json
import math
import re

import pytest
from omegaconf import OmegaConf

from c2ser.data.manifest import read_manifest
from c2ser.data.synthetic import VOICES

# the fixture's run is timed with the first test that uses it (a few minutes on an idle machine, more under load)
pytestmark = pytest.mark.timeout(1500)

SEEDS = ("0", "1")
# the RESULTS.md row name of each system directory (eval/<system>/results.json)
ROWS = {"stage 1, explicit CoT answer": "stage1-explicit", "stage 1, implicit prompt": "stage1-implicit",
        "stage 2, explicit CoT answer": "stage2-explicit", "stage 2, implicit answer": "stage2-implicit",
        "Gen-SER head on the stage-2 backbone": "head-gen_ser", "CE head, same conditioning": "head-ce"}
SPLIT_DIRS = {"valid": "eval_valid", "valid2": "eval_valid2", "test": "eval"}
SPLIT_MANIFESTS = {"valid": "valid.cot.jsonl", "valid2": "valid2.cot.jsonl", "test": "test.cot.jsonl"}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _table(text: str, header_start: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table whose header starts with ``header_start``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(_cells(line))
    return rows


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Percent mean and sample standard deviation (n - 1), None for one value."""
    pct = [100 * v for v in values]
    m = sum(pct) / len(pct)
    s = math.sqrt(sum((v - m) ** 2 for v in pct) / (len(pct) - 1)) if len(pct) > 1 else None
    return m, s


def _assert_cell(cell: str, values: list[float], what):
    if not values:
        assert cell == "–", what
        return
    m, s = _mean_std(values)
    found = re.fullmatch(r"(-?[\d.]+)(?: ± ([\d.]+))?", cell)
    assert found, (what, cell)
    assert abs(float(found.group(1)) - m) <= 0.051, (what, cell, m)
    if s is None:
        assert found.group(2) is None, (what, cell)
    else:
        assert found.group(2) is not None and abs(float(found.group(2)) - s) <= 0.051, (what, cell, s)


def _result(exp, seed, split, system):
    f = exp / f"seed{seed}" / SPLIT_DIRS[split] / system / "results.json"
    return json.loads(f.read_text()) if f.is_file() else None


def test_every_demo_stage_ran_for_both_seeds(demo_pipeline):
    exp, out = demo_pipeline
    for n in range(9):
        assert f"== stage {n}:" in out, n
    for demo in ("1 (demo)", "7 (demo)", "10 (demo)", "11 (demo)", "12 (demo)"):
        assert f"== stage {demo}:" in out, demo
    assert out.count("== stage 4:") == 2 and out.count("== stage 0:") == 1  # seed 1 reuses seed 0's data
    for d in ("data", "models", "features"):
        assert (exp / "seed1" / d).is_symlink() and (exp / "seed1" / d).resolve() == (exp / "seed0" / d).resolve()
    for s in SEEDS:
        seed_dir = exp / f"seed{s}"
        assert json.loads((seed_dir / "wall.json").read_text())["stages"] == "0-12"
        for name in ("stage1", "stage2", "head_gen_ser", "head_ce"):
            assert (seed_dir / name / "final").is_dir(), (s, name)


def test_training_and_head_seeds_follow_the_demo_seed(demo_pipeline):
    exp, _ = demo_pipeline
    for s in SEEDS:
        for stage in ("stage1", "stage2"):
            assert OmegaConf.load(exp / f"seed{s}" / stage / "final" / "config.yaml").train.seed == int(s)
        for head in ("gen_ser", "ce"):
            cfg = OmegaConf.load(exp / f"seed{s}" / f"head_{head}" / "final" / "head" / "config.yaml")
            assert cfg.head_stage.seed == int(s), (s, head)


def test_each_split_is_scored_on_its_own_manifest_and_voices(demo_pipeline):
    exp, _ = demo_pipeline
    data = exp / "seed0" / "data" / "synthetic"
    speakers = {}
    for split, manifest in SPLIT_MANIFESTS.items():
        rows = read_manifest(data / manifest)
        assert len(rows) == 8 and {r["language"] for r in rows} == {"en", "zh"}
        speakers[split] = {r["speaker"] for r in rows}
        assert all(r["speaker"] in VOICES[r["language"]][split] for r in rows), split
        for s in SEEDS:
            for system in ROWS.values():
                r = _result(exp, s, split, system)
                assert r is not None and r["n"] == 8 and r["manifest"].endswith(f"synthetic/{manifest}"), (s, split)
    train = {r["speaker"] for r in read_manifest(data / "train.cot.jsonl")}
    for split in SPLIT_MANIFESTS:
        assert not speakers[split] & train, split
    assert not speakers["test"] & (speakers["valid"] | speakers["valid2"])


def test_gen_ser_steps_were_chosen_on_validation(demo_pipeline):
    exp, _ = demo_pipeline
    for s in SEEDS:
        cfg = OmegaConf.load(exp / f"seed{s}" / "head_gen_ser" / "final" / "head" / "config.yaml")
        ua = {int(k): float(v) for k, v in cfg.result.valid_ua_by_steps.items()}
        assert sorted(ua) == [1, 2, 4, 8]
        best = max(ua.values())
        assert cfg.head_stage.gen_ser.steps == cfg.result.chosen_steps == min(k for k, v in ua.items() if v == best)


def test_results_table_matches_the_per_seed_results_files(demo_pipeline):
    exp, _ = demo_pipeline
    text = (exp / "RESULTS.md").read_text()
    rows = {r[0]: r for r in _table(text, "| system | seeds | valid UA | valid2 UA | test UA |")}
    assert set(rows) == set(ROWS)
    for name, system in ROWS.items():
        row = rows[name]
        per = {split: [_result(exp, s, split, system) for s in SEEDS] for split in SPLIT_DIRS}
        assert row[1] == "2" and row[5] == str(per["test"][0]["n"])
        for col, split in ((2, "valid"), (3, "valid2"), (4, "test")):
            _assert_cell(row[col], [r["UA"] for r in per[split]], (name, split))
        for col, attr in ((6, "pitch"), (7, "volume"), (8, "pace")):
            values = [r["style_accuracy"][attr] for r in per["test"]
                      if (r.get("style_accuracy") or {}).get(attr) is not None]
            _assert_cell(row[col], values, (name, attr))
    assert rows["stage 1, explicit CoT answer"][6] != "–"  # explicit answers are scored on their style words

    chats = [json.loads((exp / f"seed{s}" / "chat_consistency.json").read_text()) for s in SEEDS]
    chat_rows = {r[0]: r for r in _table(text, "| conversations | n per seed |")}
    groups = {"all": "overall", "English questions": "en", "Chinese questions": "zh", "English clips": "audio_en",
              "Chinese clips": "audio_zh"}
    assert set(chat_rows) == set(groups)
    for name, group in groups.items():
        assert chat_rows[name][1] == str(chats[0][group]["n"])
        for col, key in ((2, "same_label"), (3, "follow_up_same_label"), (4, "same_language")):
            _assert_cell(chat_rows[name][col], [c[group][key] for c in chats], (name, key))

    seed_rows = {r[0]: r for r in _table(text, "| seed | Gen-SER steps")}
    assert set(seed_rows) == set(SEEDS)
    for s in SEEDS:
        cfg = OmegaConf.load(exp / f"seed{s}" / "head_gen_ser" / "final" / "head" / "config.yaml")
        wall = json.loads((exp / f"seed{s}" / "wall.json").read_text())["wall_s"]
        cpu = sum(60 * int(m) + float(x) for m, x in
                  re.findall(r"(\d+)m([\d.]+)s", (exp / f"seed{s}" / "cpu_times.txt").read_text()))
        assert seed_rows[s][1] == str(cfg.head_stage.gen_ser.steps) and seed_rows[s][4] == str(wall)
        assert abs(int(seed_rows[s][5]) - cpu) <= 0.5 and cpu > 0


def test_robustness_stage_scores_every_system_per_condition_and_is_aggregated(demo_pipeline):
    """Stage 10: each seed's robustness.csv has every system under every condition of the CI run; its clean score
    is the test score of stage 6/8 (same clips, same cached features); RESULTS.md's table is their mean ± std."""
    import csv

    exp, _ = demo_pipeline
    conditions = ["clean", "noise:babble:10", "reverb:0.6+telephone"]
    per_seed = {}
    for s in SEEDS:
        with open(exp / f"seed{s}" / "robustness" / "robustness.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [(r["system"], r["condition"]) for r in rows] == [(k, c) for k in ROWS.values() for c in conditions]
        ua = {(r["system"], r["condition"]): float(r["UA"]) for r in rows}
        for system in ROWS.values():
            assert ua[system, "clean"] == pytest.approx(_result(exp, s, "test", system)["UA"], abs=1e-9), (s, system)
            # each condition wrote its own predictions (one line per test clip) and results, the condition in them
            for c, d in zip(conditions, ("clean", "noise_babble_10", "reverb_0.6+telephone")):
                run = exp / f"seed{s}" / "robustness" / system / d
                assert len((run / "predictions.jsonl").read_text().splitlines()) == 8, (s, system, c)
                assert json.loads((run / "results.json").read_text())["condition"] == c, (s, system, c)
        assert all(int(r["n"]) == 8 for r in rows)
        per_seed[s] = ua
        assert (exp / f"seed{s}" / "robustness" / "robustness.png").stat().st_size > 5000
    text = (exp / "RESULTS.md").read_text()
    rows = {r[0]: r for r in _table(text, "| system | seeds | clean |")}
    assert set(rows) == set(ROWS)
    for name, system in ROWS.items():
        assert rows[name][1] == "2" and len(rows[name]) == 2 + len(conditions)
        for col, c in enumerate(conditions, start=2):
            _assert_cell(rows[name][col], [per_seed[s][system, c] for s in SEEDS], (name, c))
    assert (exp / "robustness.png").read_bytes()[:4] == b"\x89PNG"


def test_chat_check_asked_balanced_clips_in_both_languages(demo_pipeline):
    exp, _ = demo_pipeline
    for s in SEEDS:
        chat = json.loads((exp / f"seed{s}" / "chat_consistency.json").read_text())
        clips = {(r["key"], r["clip_language"], r["emotion"]) for r in chat["records"]}
        cells = sorted((lang, emo) for _, lang, emo in clips)
        assert cells == sorted((lang, e) for lang in ("en", "zh") for e in ("neutral", "happy", "sad", "angry"))
        assert {r["language"] for r in chat["records"]} == {"en", "zh"} and len(chat["records"]) == 16



def test_joint_heads_option_tunes_the_backbone_lora_and_is_aggregated(demo_pipeline, tmp_path):
    """`recipes/tiny/run.sh --joint_heads 1` (the demo's head stage again, LoRA tuned with the head) on a copy of
    seed 0 of the CI demo run: trained, steps chosen on validation, scored on the three splits, in RESULTS."""
    import shutil
    import subprocess
    import sys

    import torch
    from safetensors.torch import load_file

    from conftest import REPO, recipe_env

    exp, _ = demo_pipeline
    copy = tmp_path / "exp"
    shutil.copytree(exp / "seed0", copy / "seed0", symlinks=True)
    for d in (copy / "seed0").glob("eval*/head-*"):  # fingerprinted with the original's paths: stage 8 redoes them
        shutil.rmtree(d)
    proc = subprocess.run(["bash", "recipes/tiny/run.sh", "--exp", str(copy), "--seeds", "0", "--stage", "8",
                           "--stop_stage", "8", "--joint_heads", "1", "--synthetic_held_out", "2,2,2",
                           "--head_overlay", "recipes/tiny/conf/ci_head.yaml"], cwd=REPO, env=recipe_env(),
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "== stage 8 (demo): Gen-SER and CE heads tuned jointly" in out
    seed = copy / "seed0"
    before = load_file(seed / "stage2" / "final" / "lora" / "adapter_model.safetensors")
    for head in ("gen_ser", "ce"):
        final = seed / f"head_{head}_lora" / "final"
        cfg = OmegaConf.load(final / "head" / "config.yaml")
        assert cfg.head_stage.train_backbone == "lora" and cfg.head_stage.lm_loss_weight == 0.5
        assert cfg.head_stage.seed == 0 and cfg.parameters.trainable > cfg.parameters.head
        after = load_file(final / "lora" / "adapter_model.safetensors")
        assert after.keys() == before.keys()
        assert any(not torch.equal(after[k], before[k]) for k in before), head  # the LoRA moved
        for split in SPLIT_DIRS:
            r = _result(copy, "0", split, f"head-{head}_lora")
            assert r is not None and r["n"] == 8, (head, split)
    cfg = OmegaConf.load(seed / "head_gen_ser_lora" / "final" / "head" / "config.yaml")
    assert sorted(int(k) for k in cfg.result.valid_ua_by_steps) == [1, 2, 4, 8]

    sys.path.insert(0, str(REPO / "eval"))
    import aggregate_seeds

    text = aggregate_seeds.table(aggregate_seeds.collect(copy, ["0"]))
    rows = {r[0]: r for r in _table(text, "| system | seeds | valid UA | valid2 UA | test UA |")}
    for name, system in (("Gen-SER head, backbone LoRA tuned jointly", "head-gen_ser_lora"),
                         ("CE head, backbone LoRA tuned jointly", "head-ce_lora")):
        _assert_cell(rows[name][4], [_result(copy, "0", "test", system)["UA"]], name)
    heads = {(r[0], r[1]): r for r in _table(text, "| head | backbone |")}
    for head, kind in (("gen_ser", "Gen-SER"), ("ce", "CE")):
        for suffix, backbone in (("", "frozen"), ("_lora", "LoRA tuned jointly")):
            params = OmegaConf.load(seed / f"head_{head}{suffix}" / "final" / "head" / "config.yaml").parameters
            assert heads[(kind, backbone)][5] == str(params.trainable), (head, suffix)
            assert heads[(kind, backbone)][4] == str(params.head), (head, suffix)


def test_augmented_demo_trains_stage2_and_heads_on_degraded_clips(demo_pipeline, tmp_path):
    """`recipes/tiny/run.sh --augment 1` (what `make demo AUGMENT=1` runs) from its stage 5 (training stage 2) on, on
    seed 0's data, models, features and stage-1 model of the CI demo run: stage 2 and both heads train on degraded
    clips with Emotion2Vec-S online, stage 1 stays the plain one, every system is scored under the asked conditions
    and RESULTS.md carries those scores."""
    import csv
    import subprocess

    from conftest import REPO, recipe_env

    exp, _ = demo_pipeline
    seed = tmp_path / "exp" / "seed0"
    seed.mkdir(parents=True)
    for d in ("data", "models", "features", "stage1"):
        (seed / d).symlink_to(exp / "seed0" / d)
    conditions = ["clean", "noise:white:20"]
    common = ["bash", "recipes/tiny/run.sh", "--exp", str(tmp_path / "exp"), "--seeds", "0", "--augment", "1",
              "--synthetic_held_out", "2,2,2", "--conditions", ",".join(conditions),
              "--overlay", "recipes/tiny/conf/ci_train.yaml", "--head_overlay", "recipes/tiny/conf/ci_head.yaml"]
    for stages in (["--stage", "5", "--stop_stage", "10"], ["--stage", "12"]):
        proc = subprocess.run(common + stages, cwd=REPO, env=recipe_env(), capture_output=True, text=True,
                              timeout=900)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-4000:]

    stage2 = OmegaConf.load(seed / "stage2" / "final" / "config.yaml")
    assert stage2.train.data.augment.enabled and stage2.train.data.augment.volume_group_by == "speaker"
    assert stage2.train.model.ssl.checkpoint.endswith("emotion2vec-tiny-random.pt")  # Emotion2Vec-S online
    assert stage2.result.step == 2  # ci_train.yaml's 2 updates
    assert stage2.train.max_epochs == 32  # demo_augment_stage2.yaml is merged after the user's overlay
    assert not OmegaConf.load(exp / "seed0" / "stage1" / "final" / "config.yaml").train.data.augment.enabled
    for head in ("gen_ser", "ce"):
        cfg = OmegaConf.load(seed / f"head_{head}" / "final" / "head" / "config.yaml")
        assert cfg.head_stage.augment.enabled, head

    systems = ["stage1-explicit", "stage1-implicit", "stage2-explicit", "stage2-implicit", "head-gen_ser", "head-ce"]
    rows = list(csv.DictReader(open(seed / "robustness" / "robustness.csv")))
    assert sorted((r["system"], r["condition"]) for r in rows) == sorted((s, c) for s in systems for c in conditions)
    assert all(int(r["n"]) == 8 for r in rows)
    by = {(r["system"], r["condition"]): float(r["UA"]) for r in rows}
    table = {r[0]: r for r in _table((tmp_path / "exp" / "RESULTS.md").read_text(),
                                     "| system | seeds | " + " | ".join(conditions) + " |")}
    names = {system: name for name, system in ROWS.items()}
    for system in systems:
        row = table[names[system]]
        assert row[1] == "1", row
        for cell, condition in zip(row[2:], conditions):
            _assert_cell(cell, [by[(system, condition)]], (system, condition))
