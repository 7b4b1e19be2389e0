"""The GPU recipe rehearsed on CPU: ``recipes/c2ser/run.sh --size tiny`` end to end, from fake raw corpora to the
results table, with the recipe's own launch config (DeepSpeed ZeRO-2, bf16, 2 processes over gloo) and training
settings (model.yaml's: frozen LLM + LoRA, gradient checkpointing, dropouts; the tiny LLM pre-trained briefly in
stage 2). The run itself is the session fixture ``rehearsal`` (conftest.py); tests/test_readme_commands.py runs the
README against it."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from c2ser.config import load_config
from c2ser.training.config import TrainConfig

from checks import eval_folder
from conftest import REPO, recipe_env

# the rehearsal fixture's run (the whole tiny recipe, minutes) is timed with the first test that uses it
pytestmark = pytest.mark.timeout(1500)


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
            assert eval_folder(exp / "eval" / system / corpus) == result  # a prediction per clip, WA/UA recounted
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


# ---- the full recipe's own training settings (frozen bf16 LLM + LoRA, gradient checkpointing, dropouts) ----------

CONF = REPO / "recipes" / "c2ser" / "conf"
RESUME_WORKER = Path(__file__).parent / "helpers" / "resume_worker.py"


def _run_config(run: Path) -> TrainConfig:
    return load_config(TrainConfig, run / "final" / "config.yaml", section="train")


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _weights(final: Path) -> dict:
    """A checkpoint's tensors under the model's own parameter names (LoRA as peft names them in the model)."""
    w = load_file(final / "model.safetensors")
    for k, v in load_file(final / "lora" / "adapter_model.safetensors").items():
        w["llm." + k.replace(".lora_A.", ".lora_A.default.").replace(".lora_B.", ".lora_B.default.")] = v
    return w


@pytest.fixture(scope="module")
def stage1_start(rehearsal):
    """Stage 1's model as the run built it (same config, same seed, before any update)."""
    from accelerate.utils import set_seed

    from c2ser.models.build import build_model

    cfg = _run_config(rehearsal[0] / "stage1")
    set_seed(cfg.seed)
    return build_model(cfg.model)


def test_the_frozen_llm_is_a_pre_trained_language_model(rehearsal):
    """Stage 2 of the recipe pre-trains the tiny LLM (frozen in training) on the recipe's prompts and targets: given
    a validation clip's task prompt, its loss on the target text is far below a random LLM's (ln V ≈ 6.9)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from c2ser.testing import prompt_answer_pairs

    exp, _ = rehearsal
    llm_dir = exp / "models" / "qwen2-tiny-random"
    tok, llm = AutoTokenizer.from_pretrained(llm_dir), AutoModelForCausalLM.from_pretrained(llm_dir).eval()
    rows = [json.loads(line) for line in (exp / "data" / "valid.jsonl").read_text().splitlines()]
    losses = []
    with torch.no_grad():
        for prompt, answer in prompt_answer_pairs(rows):
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            a = tok(answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            losses.append(llm(input_ids=torch.tensor([p + a]), labels=torch.tensor([[-100] * len(p) + a])).loss)
    assert len(losses) >= 20 and float(sum(losses)) / len(losses) < 1.0


def test_training_ran_with_the_full_recipes_own_settings(rehearsal):
    """tiny.yaml changes widths, batch caps and step counts only: both stages trained with model.yaml's and the stage
    configs' own settings, and the LoRA built into the model is the configured one."""
    exp, _ = rehearsal
    for stage in ("stage1", "stage2"):
        full = load_config(TrainConfig, [CONF / "model.yaml", CONF / f"{stage}.yaml"], ["data.train_manifest=x"])
        run = _run_config(exp / stage)
        m, f = run.model, full.model
        assert m.trainable == f.trainable == "adapter_encoder_lora"
        assert m.whisper.gradient_checkpointing and m.llm.gradient_checkpointing
        assert m.adapter.dropout > 0 and m.lora.dropout > 0
        assert (m.whisper.gradient_checkpointing, m.whisper.long_audio, m.llm.gradient_checkpointing, m.llm.dtype,
                m.llm.eos_token, m.adapter.dropout, m.adapter.heads, m.lora, m.ssl.mode, m.ssl.num_tokens) == \
            (f.whisper.gradient_checkpointing, f.whisper.long_audio, f.llm.gradient_checkpointing, f.llm.dtype,
             f.llm.eos_token, f.adapter.dropout, f.adapter.heads, f.lora, f.ssl.mode, f.ssl.num_tokens)
        o, fo = run.optim, full.optim
        assert (o.betas, o.eps, o.weight_decay, o.scheduler, o.grad_clip, o.grad_accum) == \
            (fo.betas, fo.eps, fo.weight_decay, fo.scheduler, fo.grad_clip, fo.grad_accum)
        d, fd = run.data, full.data
        assert (d.max_frames_in_batch, d.max_tokens_in_batch, d.spec_augment, d.max_duration, d.check_audio) == \
            (fd.max_frames_in_batch, fd.max_tokens_in_batch, fd.spec_augment, fd.max_duration, fd.check_audio)
        assert (run.task, run.seed) == (full.task, full.seed)
        peft = json.loads((exp / stage / "final" / "lora" / "adapter_config.json").read_text())
        assert (peft["r"], peft["lora_alpha"], peft["lora_dropout"], sorted(peft["target_modules"])) == \
            (f.lora.r, f.lora.alpha, f.lora.dropout, sorted(f.lora.target_modules))
        assert not (exp / stage / "final" / "llm").exists()  # the frozen LLM is not stored: it is the base's


def test_the_trained_parts_moved_and_nothing_else(rehearsal, stage1_start):
    """Stage 1: every trained tensor (Whisper encoder, adapter, LoRA) differs from its start, yet stays close to it
    (a start rebuilt with another seed would be ~1.4 away: this is the run's start); LoRA B left its zero start;
    buffers are untouched. Stage 2 moved every trained tensor away from stage 1's weights, where it started."""
    exp, _ = rehearsal
    params, buffers = dict(stage1_start.named_parameters()), dict(stage1_start.named_buffers())
    stage1, stage2 = _weights(exp / "stage1" / "final"), _weights(exp / "stage2" / "final")
    assert stage1.keys() == stage2.keys()
    kinds = {"whisper.": 0, "adapter.": 0, "lora_A": 0, "lora_B": 0}
    for k, v in stage1.items():
        if k in buffers:
            assert torch.equal(v, buffers[k].to(v.dtype)), k
            assert torch.equal(stage2[k], v), k
            continue
        start = params[k].detach().to(v.dtype)
        assert params[k].requires_grad and not torch.equal(v, start), k
        if start.abs().sum() > 0:
            assert (v.float() - start.float()).norm() < 0.5 * start.float().norm(), k
        assert not torch.equal(stage2[k], v), k
        kinds.update({kind: n + 1 for kind, n in kinds.items() if kind in k})
    assert all(kinds.values()), kinds
    assert all(stage1[k].abs().sum() > 0 for k in stage1 if "lora_B" in k)  # peft starts B at zero


def test_stage1_loss_falls(rehearsal):
    losses = [r["loss"] for r in _log(rehearsal[0] / "stage1")]
    assert len(losses) >= 6
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < 0.9 * first, losses


def test_stage2_answers_have_the_targets_form(rehearsal):
    """The frozen pre-trained LLM with LoRA answers in the targets' form on every test corpus: an emotion is read
    from nearly every answer, and explicit answers describe the speaking style (pitch, pace, volume) before
    concluding. A broken speech prefix (adapter, LoRA, bf16 overflow) would derail the frozen LLM's answers. (Seven
    updates per stage at toy width do not teach the emotions: accuracy is not asserted.)"""
    exp, _ = rehearsal
    for corpus in ("emo_emilia", "meld", "casia"):
        for mode in ("explicit", "implicit"):
            result = json.loads((exp / "eval" / f"stage2-{mode}" / corpus / "results.json").read_text())
            assert result["n"] > 0 and result["unparsed_rate"] <= 0.1, (mode, corpus, result["unparsed_rate"])
        rows = [json.loads(line) for line in
                (exp / "eval" / "stage2-explicit" / corpus / "predictions.jsonl").read_text().splitlines()]
        styled = [r for r in rows if any(all(w in r["prediction"] for w in words)
                                         for words in (("pitch", "pace", "voice"), ("语调", "语速", "音量")))]
        assert len(styled) >= 0.9 * len(rows), [r["prediction"] for r in rows[:3]]


def test_a_run_resumed_from_its_deepspeed_state_ends_with_the_same_weights(rehearsal, stage1_start, tmp_path):
    """Stage 1 restarted from the state it saved mid-run (after update 4 of 7, saved with exclude_frozen_parameters,
    so the frozen LLM comes from the base again), as after a crash: under the same launch config (DeepSpeed ZeRO-2,
    2 processes) it continues the run exactly (same losses, same final weights, bit for bit), and every frozen
    tensor of the trained engine's model equals the base."""
    exp, _ = rehearsal
    run = exp / "stage1"
    states = sorted(run.glob("state-*"))
    assert [s.name for s in states] == ["state-4"]
    module = torch.load(states[0] / "pytorch_model" / "mp_rank_00_model_states.pt", map_location="cpu",
                        weights_only=False)["module"]
    frozen = {n for n, p in stage1_start.named_parameters() if not p.requires_grad}
    assert frozen and not frozen & module.keys()
    assert {n for n, p in stage1_start.named_parameters() if p.requires_grad} <= module.keys()
    out = tmp_path / "stage1"
    shutil.copytree(states[0], out / states[0].name)
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           "recipes/accelerate/ds_zero2.yaml", "--num_processes", "2", str(RESUME_WORKER),
                           str(run / "final" / "config.yaml"), str(out)],
                          cwd=REPO, env=recipe_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from {out / 'state-4'} (update 4" in proc.stdout + proc.stderr
    uninterrupted, resumed = _log(run), _log(out)
    assert [r["step"] for r in resumed] == [r["step"] for r in uninterrupted[4:]] and resumed
    assert [r["loss"] for r in resumed] == [r["loss"] for r in uninterrupted[4:]]
    a, b = _weights(run / "final"), _weights(out / "final")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for rank in (0, 1):
        report = json.loads((out / f"frozen_rank{rank}.json").read_text())
        assert report["frozen"] == len(frozen) and report["changed"] == [], report


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
