"""The GPU recipe rehearsed on CPU: ``recipes/c2ser/run.sh --size tiny`` end to end, from fake raw corpora to the
results table, with the recipe's own launch config (DeepSpeed ZeRO-2, bf16, 2 processes over gloo). The run itself
is the session fixture ``rehearsal`` (conftest.py); tests/test_readme_commands.py runs the README against it."""
import json
import subprocess

import pytest
from omegaconf import OmegaConf

from conftest import recipe_env


def test_every_stage_ran_and_the_results_table_has_every_system(rehearsal):
    exp, out = rehearsal
    for n in range(11):
        assert f"== stage {n}:" in out
    table = (exp / "RESULTS.md").read_text()
    for system in ("stage1-explicit", "stage1-implicit", "stage2-explicit", "stage2-implicit", "head-gen_ser",
                   "head-ce", "official-implicit"):
        for corpus in ("emo_emilia", "meld", "casia"):
            assert f"{system}/{corpus}" in table, (system, corpus)
            result = json.loads((exp / "eval" / system / corpus / "results.json").read_text())
            assert result["n"] > 0 and 0.0 <= result["UA"] <= 1.0
    # every trained system on the training corpus's validation split too (one train corpus: no corpus level)
    valid = table.split("## Results: eval_valid")[1]
    for system in ("stage1-explicit", "stage1-implicit", "stage2-explicit", "stage2-implicit", "head-gen_ser",
                   "head-ce"):
        result = json.loads((exp / "eval_valid" / system / "results.json").read_text())
        assert result["corpus"] == "meld" and result["manifest"].endswith("meld/valid.cot.jsonl") and result["n"] > 0
        assert f"| {system} | meld | {result['n']} |" in valid


def test_training_used_the_recipe_launch_config(rehearsal):
    """DeepSpeed (ds_zero2.yaml, bf16) on 2 processes, as on the GPU cluster."""
    exp, _ = rehearsal
    for stage in ("stage1", "stage2"):
        cfg = OmegaConf.load(exp / stage / "final" / "config.yaml")
        assert cfg.launch.distributed_type == "DEEPSPEED" and cfg.launch.num_processes == 2
        assert cfg.launch.mixed_precision == "bf16"
        assert cfg.model.llm.dtype == "bfloat16"
        log = [json.loads(line) for line in (exp / stage / "log.jsonl").read_text().splitlines()]
        assert log and all(r["lr_applied"] == pytest.approx(r["lr"]) for r in log)


def test_the_data_filters_ran_on_the_real_raw_layouts(rehearsal):
    exp, out = rehearsal
    # MELD's train split has a clip over 30 s (as the real one): prepared, then left out of training, with a count
    meld_train = [json.loads(line) for line in (exp / "data" / "meld" / "train.jsonl").read_text().splitlines()]
    assert any(r["duration"] > 30 for r in meld_train)
    assert "longer than data.max_duration=30 s left out" in out
    # stage 2 ends on implicit batches: the explicit probability reaches 0 at the last update
    log = [json.loads(line) for line in (exp / "stage2" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["explicit"] is False
    for split in ("train", "valid"):
        rows = [json.loads(line) for line in (exp / "data" / f"{split}.jsonl").read_text().splitlines()]
        assert rows and all(r["explicit_target"] and r["implicit_target"] for r in rows)


def test_checkpoints_load_from_any_working_directory(rehearsal, tmp_path):
    exp, _ = rehearsal
    code = ("from c2ser.checkpoint import load_model; import sys; "
            "m = load_model(sys.argv[1]); print(type(m).__name__)")
    proc = subprocess.run(["python", "-c", code, str(exp / "stage2" / "final")], cwd=tmp_path, env=recipe_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "C2SERModel" in proc.stdout, proc.stderr[-2000:]


def test_head_stage_ran_data_parallel_under_the_recipe_launch_config(rehearsal):
    """Stage 7 (Gen-SER and CE) through the recipe's accelerate launch: 2 processes, DeepSpeed ZeRO-2, bf16; one
    log line per update (written by the main process only) and validation on every valid clip."""
    exp, out = rehearsal
    stage7 = out.split("== stage 7:")[1].split("== stage 8:")[0]
    assert stage7.count("data-parallel over 2 processes (DEEPSPEED, mixed precision bf16)") == 2
    n_valid = len((exp / "data" / "valid.jsonl").read_text().splitlines())
    for head in ("gen_ser", "ce"):
        cfg = OmegaConf.load(exp / f"head_{head}" / "final" / "head" / "config.yaml")
        assert cfg.launch.distributed_type == "DEEPSPEED" and cfg.launch.num_processes == 2
        assert cfg.launch.mixed_precision == "bf16" and cfg.head_stage.kind == head
        assert cfg.result.valid_clips == n_valid
        log = [json.loads(line) for line in (exp / f"head_{head}" / "log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log] == list(range(1, cfg.result.steps + 1))
