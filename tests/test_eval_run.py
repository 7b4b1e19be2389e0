"""``c2ser eval`` end to end on a tiny checkpoint: deterministic, resumable without duplicates, report written."""
import json

import pytest
import torch

from c2ser.checkpoint import save_checkpoint
from c2ser.cli import main
from c2ser.evaluation.predictions import read_predictions
from c2ser.models.build import build_model
from c2ser.testing import make_toy_corpus, tiny_model_config
from checks import flip_rate


@pytest.fixture(scope="module")
def setup(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    torch.manual_seed(0)
    ckpt = save_checkpoint(build_model(tiny_model_config(tiny_models)), root / "ckpt")
    return ckpt, make_toy_corpus(root / "corpus", per_class=3)


def _eval(ckpt, corpus, out, *extra):
    return main(["eval", "--checkpoint", str(ckpt), "--manifest", str(corpus["train"]), "--corpus", "synthetic",
                 "--feature-dir", str(corpus["features"]), "--out", str(out), "--max-new-tokens", "8", *extra])


def test_two_runs_give_identical_predictions_and_a_report(setup, tmp_path):
    ckpt, corpus = setup
    assert _eval(ckpt, corpus, tmp_path / "a") == 0
    assert _eval(ckpt, corpus, tmp_path / "b") == 0
    a, b = read_predictions(tmp_path / "a" / "predictions.jsonl"), read_predictions(tmp_path / "b" / "predictions.jsonl")
    assert len(a) == 12 and [r["prediction"] for r in a] == [r["prediction"] for r in b]
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["n"] == 12 and res["decoding"]["preset"] == "greedy" and (tmp_path / "a" / "confusion.png").exists()


def test_interrupted_run_resumes_without_duplicates(setup, tmp_path):
    ckpt, corpus = setup
    out = tmp_path / "r"
    assert _eval(ckpt, corpus, out, "--limit", "5") == 0  # "interrupted" after 5 clips
    first = read_predictions(out / "predictions.jsonl")
    assert len(first) == 5
    assert _eval(ckpt, corpus, out) == 0
    rows = read_predictions(out / "predictions.jsonl")
    assert len(rows) == 12 and len({r["key"] for r in rows}) == 12 and rows[:5] == first


def test_several_seeds_write_a_stability_report(setup, tmp_path):
    ckpt, corpus = setup
    assert _eval(ckpt, corpus, tmp_path / "s", "--decoding", "sample", "--seeds", "0,1", "--limit", "4") == 0
    st = json.loads((tmp_path / "s" / "stability.json").read_text())
    runs = [tmp_path / "s" / f"predictions.seed{s}.jsonl" for s in (0, 1)]
    assert st["runs"] == 2 and st["flip_rate"] == flip_rate(runs, "synthetic")


def test_a_predictions_file_from_another_checkpoint_is_refused(setup, tiny_models, tmp_path, capsys):
    ckpt, corpus = setup
    torch.manual_seed(1)
    other = save_checkpoint(build_model(tiny_model_config(tiny_models)), tmp_path / "other")  # same config
    out = tmp_path / "o"
    assert _eval(ckpt, corpus, out, "--limit", "2") == 0
    capsys.readouterr()
    assert _eval(other, corpus, out, "--limit", "2") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"c2ser eval: error: {out / 'predictions.jsonl'}: predictions from another run "
                              "(different checkpoint, checkpoint_files)") and "--overwrite" in err[-1]
    assert _eval(ckpt, corpus, out, "--limit", "3", "--decoding", "beam4") == 1  # other decoding
    assert "different decoding" in capsys.readouterr().err
    assert _eval(other, corpus, out, "--limit", "2", "--overwrite") == 0
    fp = json.loads((out / "predictions.fingerprint.json").read_text())
    assert fp["checkpoint"] == str(other.resolve()) and fp["mode"] == "implicit" and fp["corpus"] == "synthetic"


def test_prediction_rows_never_hold_nan(tmp_path):
    from c2ser.evaluation.predictions import PredictionWriter

    with PredictionWriter(tmp_path / "p.jsonl") as w:
        w.write({"key": "a", "label": "sad", "scores": {"sad": 1.0}})
        with pytest.raises(ValueError, match=r"p.jsonl: clip 'b': NaN or infinite value"):
            w.write({"key": "b", "label": "sad", "scores": {"sad": float("nan")}})
    assert [r["key"] for r in read_predictions(tmp_path / "p.jsonl")] == ["a"]


def test_eval_passes_the_model_flags_to_load_for_inference(setup, tmp_path, monkeypatch):
    import c2ser.inference.loading as loading
    ckpt, corpus = setup
    seen = {}

    def fake(checkpoint, ssl_checkpoint, device, overrides, qwen2_dir):
        seen.update(checkpoint=checkpoint, ssl=ssl_checkpoint, device=device, overrides=overrides, qwen2=qwen2_dir)
        raise ValueError("stop here")

    monkeypatch.setattr(loading, "load_for_inference", fake)
    official = tmp_path / "C2SER_llm.pt"
    official.write_bytes(b"x")
    assert main(["eval", "--checkpoint", f"official:{official}", "--qwen2-dir", "/q", "--ssl-checkpoint", "/e.pt",
                 "--set", "llm.dtype=bfloat16", "--manifest", str(corpus["train"]), "--corpus", "synthetic",
                 "--out", str(tmp_path / "x")]) == 1
    assert seen == {"checkpoint": f"official:{official}", "ssl": "/e.pt", "device": "auto", "qwen2": "/q",
                    "overrides": ["whisper.long_audio=crop", "llm.dtype=bfloat16"]}


@pytest.mark.parametrize("cuda, expected", [(True, "cuda"), (False, "cpu")])
def test_device_auto_picks_cuda_when_available(monkeypatch, cuda, expected):
    from c2ser.inference.loading import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_device("auto") == expected and resolve_device(None) == expected
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"


def test_official_decoding_preset_is_the_release_generate_call():
    from c2ser.evaluation.inference import decoding_settings

    # the release's generate() arguments (C2SER-llm/wenet/llm_asr/llmasr_model.py), written out here
    release = {"max_new_tokens": 400, "num_beams": 4, "do_sample": True, "top_p": 0.0, "top_k": 0, "temperature": 1.0,
               "repetition_penalty": 1.05, "length_penalty": 1.0, "min_length": 1}
    settings = decoding_settings("official", None, seed=777)
    assert {k: v for k, v in settings.items() if k not in ("preset", "seed")} == release
    assert decoding_settings("official", None, 0, mode="implicit")["max_new_tokens"] == 400
    assert decoding_settings("official", 64, 0)["max_new_tokens"] == 64       # --max-new-tokens overrides
    assert decoding_settings("greedy", None, 0)["max_new_tokens"] == 128
    assert decoding_settings("greedy", None, 0, mode="implicit")["max_new_tokens"] == 128
    assert decoding_settings("greedy", None, 0, mode="explicit")["max_new_tokens"] == 400   # the release's limit
    assert decoding_settings("greedy", 50, 0, mode="explicit")["max_new_tokens"] == 50


@pytest.mark.parametrize("decoding, mode, extra, expected", [
    ("greedy", "implicit", [], 128), ("greedy", "explicit", [], 400), ("official", "implicit", [], 400),
    ("official", "implicit", ["--max-new-tokens", "7"], 7), ("greedy", "explicit", ["--max-new-tokens", "9"], 9)])
def test_generate_gets_the_presets_max_new_tokens(setup, tmp_path, monkeypatch, decoding, mode, extra, expected):
    """What `c2ser eval` really passes to generate() when --max-new-tokens is left out (None must not reach it: the
    transformers default of 20 tokens would cut every explicit answer; 128 cut long explicit ones)."""
    from c2ser.models.c2ser import C2SERModel

    seen = []

    def fake_generate(self, batch, max_new_tokens=None, return_hit_limit=False, **kwargs):
        seen.append(max_new_tokens)
        texts = ["The emotion of this speech is happy."] * len(batch["keys"])
        return (texts, [False] * len(texts)) if return_hit_limit else texts

    monkeypatch.setattr(C2SERModel, "generate", fake_generate)
    ckpt, corpus = setup
    args = ["eval", "--checkpoint", str(ckpt), "--manifest", str(corpus["train"]), "--corpus", "synthetic",
            "--feature-dir", str(corpus["features"]), "--out", str(tmp_path / "o"), "--limit", "2",
            "--decoding", decoding, "--mode", mode, *extra]
    assert main(args) == 0
    assert seen and set(seen) == {expected}
    fp = json.loads((tmp_path / "o" / "predictions.fingerprint.json").read_text())
    assert fp["decoding"]["max_new_tokens"] == expected   # a run with another limit is not resumed into this one


def test_answers_that_hit_the_limit_are_counted(setup, tmp_path, monkeypatch, capsys):
    """Every other answer has no end-of-answer token: 2 of 4 are counted, in the rows, results.json and the print."""
    from c2ser.models.c2ser import C2SERModel

    def fake_generate(self, batch, max_new_tokens=None, return_hit_limit=False, **kwargs):
        n = len(batch["keys"])
        return ["this speech conveys a happy tone."] * n, [i % 2 == 0 for i in range(n)]

    monkeypatch.setattr(C2SERModel, "generate", fake_generate)
    ckpt, corpus = setup
    out = tmp_path / "t"
    assert main(["eval", "--checkpoint", str(ckpt), "--manifest", str(corpus["train"]), "--corpus", "synthetic",
                 "--feature-dir", str(corpus["features"]), "--out", str(out), "--limit", "4",
                 "--mode", "explicit"]) == 0
    rows = read_predictions(out / "predictions.jsonl")
    assert len(rows) == 4 and sum(r["truncated"] for r in rows) == 2
    assert json.loads((out / "results.json").read_text())["truncated"] == 2
    assert " truncated=2 " in capsys.readouterr().out


def test_hit_limit_is_an_answer_without_the_end_of_answer_token(tiny_models, monkeypatch):
    """C2SERModel.generate(return_hit_limit=True) on hand-made outputs of the LLM: ended (eos then eos padding),
    ended on the very last token, and cut by the limit."""
    from c2ser.models.processor import C2SERProcessor
    from c2ser.testing import tiny_model_config

    torch.manual_seed(0)
    m = build_model(tiny_model_config(tiny_models)).eval()
    eos = m.tokenizer.eos_token_id
    out = torch.tensor([[5, 6, eos, eos], [5, 6, 7, eos], [5, 6, 7, 8]])
    monkeypatch.setattr(m.llm, "generate", lambda **kw: out)
    proc = C2SERProcessor(m.tokenizer)
    items = [{"mel": proc.mel(torch.zeros(16000).numpy()), "ssl": torch.zeros(10, 48), "prompt": "emotion:"}] * 3
    texts, hit = m.generate(proc.collate(items), max_new_tokens=4, return_hit_limit=True)
    assert hit == [False, False, True] and len(texts) == 3


def test_modes_and_manifests_in_one_call_match_separate_runs_with_one_model_load(setup, tmp_path, monkeypatch):
    import c2ser.inference.loading as loading
    ckpt, corpus = setup
    runs = {("train", "explicit"), ("train", "implicit"), ("valid", "explicit"), ("valid", "implicit")}
    for split, mode in runs:  # expected: one call per manifest and mode, as before
        assert main(["eval", "--checkpoint", str(ckpt), "--manifest", str(corpus[split]), "--corpus", "synthetic",
                     "--feature-dir", str(corpus["features"]), "--mode", mode, "--max-new-tokens", "8",
                     "--out", str(tmp_path / "sep" / f"{split}-{mode}")]) == 0
    loads = []
    real = loading.load_for_inference
    monkeypatch.setattr(loading, "load_for_inference", lambda *a, **k: loads.append(a) or real(*a, **k))
    assert main(["eval", "--checkpoint", str(ckpt), "--manifest", str(corpus["train"]), str(corpus["valid"]),
                 "--corpus", "synthetic", "synthetic", "--feature-dir", str(corpus["features"]),
                 "--mode", "explicit", "implicit", "--max-new-tokens", "8",
                 "--out", str(tmp_path / "one" / "train-{mode}"), str(tmp_path / "one" / "valid-{mode}")]) == 0
    assert len(loads) == 1
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == sorted(f"{s}-{m}" for s, m in runs)
    for split, mode in runs:
        sep = read_predictions(tmp_path / "sep" / f"{split}-{mode}" / "predictions.jsonl")
        one = read_predictions(tmp_path / "one" / f"{split}-{mode}" / "predictions.jsonl")
        assert [r["prediction"] for r in one] == [r["prediction"] for r in sep] and len(one) >= 4
        result = json.loads((tmp_path / "one" / f"{split}-{mode}" / "results.json").read_text())
        assert result["mode"] == mode and result["manifest"] == str(corpus[split])


@pytest.mark.parametrize("manifests, corpora, outs, modes, message", [
    (["a", "b"], ["meld", "meld"], ["o"], ["implicit"], "repeats a corpus: give one --out per manifest"),
    (["a", "b"], ["meld"], ["o"], ["implicit"], "2 manifests but 1 corpora"),
    (["a", "b", "c"], ["meld", "casia", "x"], ["o", "p"], ["implicit"], "3 manifests but 2 --out"),
    (["a"], ["meld"], ["o"], ["gen-ser", "implicit"], "gen-ser .* alone"),
    (["a", "b"], ["meld", "casia"], ["o", "o"], ["implicit"], "write the same directory"),
])
def test_eval_output_layout_errors(manifests, corpora, outs, modes, message):
    from c2ser.commands.eval import output_dirs
    with pytest.raises(ValueError, match=message):
        output_dirs(manifests, corpora, outs, modes)


def test_eval_output_layout():
    from c2ser.commands.eval import output_dirs
    assert output_dirs(["t1", "t2"], ["meld", "casia"], ["e"], ["implicit"]) == [
        ("t1", "meld", "implicit", "e/meld"), ("t2", "casia", "implicit", "e/casia")]
    assert output_dirs(["t"], ["meld"], ["e/s-{mode}"], ["explicit", "implicit"]) == [
        ("t", "meld", "explicit", "e/s-explicit"), ("t", "meld", "implicit", "e/s-implicit")]
    assert output_dirs(["t"], ["meld"], ["e"], ["explicit", "implicit"]) == [
        ("t", "meld", "explicit", "e/explicit"), ("t", "meld", "implicit", "e/implicit")]


def test_results_writes_one_table_per_directory(tmp_path, capsys):
    for split, ua in (("eval", 0.5), ("eval_valid", 0.75)):
        d = tmp_path / split / "stage2-implicit"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({"corpus": "meld", "n": 8, "WA": ua, "UA": ua, "macro_F1": ua,
                                                    "unparsed_rate": 0.0}))
        (d / "predictions.jsonl").write_text(json.dumps({"key": f"{split}-k", "emotion": "sad",
                                                         "prediction": "sad"}) + "\n")
    assert main(["results", str(tmp_path / "eval"), str(tmp_path / "eval_valid"), "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    test_part, valid_part = text.split("## Results: eval_valid")
    assert "## Results: eval (" in test_part and "| stage2-implicit | meld | 8 | 50.0 | 50.0 |" in test_part
    assert "| stage2-implicit | meld | 8 | 75.0 | 75.0 |" in valid_part
    assert "clip `eval-k`" in text and "clip `eval_valid-k`" not in text  # sample answers: the first directory's
