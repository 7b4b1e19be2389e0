"""Bad-input matrix: every (command, bad input) pair, run as a user would (``main([...])`` in process, stdin
scripted for chat). For each bad input: the exit code is the documented one, exactly one output line names the
file and the reason, no traceback, and the good inputs are still used (kept + rejected = input).

Outcomes are tallied (clear error / traceback / silent failure) and printed by the last test.
"""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml

from c2ser.cli import main
from inference_fixtures import make_checkpoint_and_clips

TALLY = {"clear": 0, "traceback": 0, "silent": 0}
BAD_AUDIO = ("missing", "directory", "not_audio", "ms10", "ms21", "nan", "inf")
BAD_NPY = ("npy_corrupt", "npy_nan", "npy_shape")
REASONS = {"missing": "file not found", "directory": "is a directory", "not_audio": "unreadable audio",
           "ms10": "too short", "ms21": "too short", "nan": "NaN or infinite", "inf": "NaN or infinite",
           "npy_corrupt": "not a readable .npy", "npy_nan": "NaN or Inf", "npy_shape": "of shape",
           "duplicate": "duplicate key", "label": ("not in the label set", "unknown emotion"),
           "field": ("missing field", "missing emotion"), "long": "is longer than"}


def _wav(path, seconds, value=None, seed=0):
    x = (0.1 * np.random.default_rng(seed).standard_normal(max(1, int(16000 * seconds)))).astype(np.float32)
    if value is not None:
        x[len(x) // 2] = value
    sf.write(path, x, 16000, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def env(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    ckpt, feats, clips = make_checkpoint_and_clips(tiny_models, root, n=2)
    rng = np.random.default_rng(1)
    files = {"good0": clips[0], "good1": clips[1], "missing": root / "missing.wav", "directory": root / "adir.wav",
             "not_audio": root / "not_audio.wav", "ms10": _wav(root / "ms10.wav", 0.010),
             "ms21": _wav(root / "ms21.wav", 0.021), "nan": _wav(root / "nan.wav", 1.0, np.nan),
             "inf": _wav(root / "inf.wav", 1.0, np.inf), "long": _wav(root / "long.wav", 31.0)}
    files["directory"].mkdir()
    files["not_audio"].write_bytes(b"this is not audio at all" * 10)
    for name in ("long", "ms10", "ms21", "nan", "inf", "not_audio"):
        np.save(feats / f"{files[name].stem}.npy", rng.standard_normal((10, 48)).astype(np.float32))
    for name in BAD_NPY:  # a good clip whose cached features are bad
        files[name] = _wav(root / f"{name}.wav", 1.0, seed=3)
    (feats / "npy_corrupt.npy").write_bytes(b"\x93NUMPY garbage")
    np.save(feats / "npy_nan.npy", np.full((10, 48), np.nan, np.float32))
    np.save(feats / "npy_shape.npy", np.zeros((7, 48), np.float32))
    return {"root": root, "ckpt": ckpt, "feats": feats, "files": files, "models": tiny_models}


def _row(key, path, emotion="happy", **kw):
    try:
        duration = round(sf.info(str(path)).duration, 4)
    except Exception:  # the bad files: any positive number
        duration = 1.0
    return {"key": key, "audio": str(path), "duration": duration, "emotion": emotion, "corpus": "toy", "split": "test",
            "explicit_target": "A clip. The emotion is happy.", "implicit_target": "The emotion is happy.", **kw}


def _manifest(env, with_npy=True):
    """Good rows, one row per bad input, and the bad-row cases (duplicate key, unknown label, missing field)."""
    f = env["files"]
    names = ["good0", *BAD_AUDIO, "long", *(BAD_NPY if with_npy else ()), "good1"]
    rows = [_row(f[n].stem, f[n]) for n in names]
    rows += [_row(f["good0"].stem, f["good1"]),                      # duplicate key
             _row("label", f["good1"], emotion="bored"),             # unknown label
             {k: v for k, v in _row("field", f["good1"]).items() if k != "emotion"}]  # missing field
    bad = [n for n in names if n not in ("good0", "good1", "long")] + ["duplicate", "label", "field"]
    path = env["root"] / f"manifest{'_npy' if with_npy else ''}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows, bad


def _where(env, name):
    """What the error line for ``name`` must mention."""
    f = env["files"]
    if name.startswith("npy_"):
        return str(env["feats"] / f"{name}.npy")
    return {"duplicate": "'clip0'", "label": "'bored'", "field": "emotion"}.get(name, str(f.get(name, name)))


def _run(capsys, argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    try:
        code = main(argv)
    except BaseException as e:  # noqa: BLE001 — anything escaping main() is a traceback for the user
        out = capsys.readouterr()
        TALLY["traceback"] += 1
        pytest.fail(f"{argv[0]}: {type(e).__name__} escaped: {e}\n{out.err[-2000:]}")
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return code, out.out, out.err


def _check_lines(env, text, bads, marker):
    """Exactly one line with ``marker`` per bad input, naming it and giving its reason."""
    lines = [ln for ln in text.splitlines() if marker in ln]
    for name in bads:
        where = _where(env, name)
        reasons = REASONS[name] if isinstance(REASONS[name], tuple) else (REASONS[name],)
        hits = [ln for ln in lines if where in ln and any(r in ln for r in reasons)]
        if len(hits) == 1:
            TALLY["clear"] += 1
        else:
            TALLY["silent"] += 1
        assert len(hits) == 1, f"{name}: expected one line with {where!r} and {REASONS[name]!r}, got {hits}\n{text}"
    assert len(lines) == len(bads), "\n".join(lines)


def _model_flags(env):
    return ["--checkpoint", str(env["ckpt"]), "--ssl-features", str(env["feats"]), "--max-new-tokens", "4"]


def test_predict(env, capsys):
    f = env["files"]
    names = ["good0", *BAD_AUDIO, "long", *BAD_NPY, "good1"]
    code, out, err = _run(capsys, ["predict", *[str(f[n]) for n in names], "--json", "--batch-size", "4",
                                   *_model_flags(env)])
    assert code == 0  # something was predicted
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["file"] for r in rows] == [str(f["good0"]), str(f["long"]), str(f["good1"])]
    assert [r["cropped"] for r in rows] == [False, True, False]
    assert [ln for ln in err.splitlines() if "warning" in ln] == [
        f"c2ser predict: warning: {f['long']}: longer than 30 s, only the first 30 s were used (cropped)"]
    _check_lines(env, err, [*BAD_AUDIO, *BAD_NPY], "c2ser predict: error:")
    assert "3/13 files predicted" in err


def test_predict_exits_1_only_when_nothing_is_predicted(env, capsys):
    f = env["files"]
    code, out, err = _run(capsys, ["predict", str(f["ms10"]), str(f["nan"]), *_model_flags(env)])
    assert code == 1 and out == ""
    _check_lines(env, err, ["ms10", "nan"], "c2ser predict: error:")


def test_predict_long_audio_error_rejects_the_long_clip(env, capsys):
    f = env["files"]
    code, out, err = _run(capsys, ["predict", str(f["long"]), str(f["good0"]), "--long-audio", "error", "--json",
                                   *_model_flags(env)])
    assert code == 0 and [json.loads(x)["file"] for x in out.splitlines()] == [str(f["good0"])]
    [line] = [ln for ln in err.splitlines() if "error:" in ln]
    assert str(f["long"]) in line and "longer than the encoder's 30 s" in line
    TALLY["clear"] += 1


def test_chat(env, capsys, monkeypatch):
    f = env["files"]
    bads = [*BAD_AUDIO, *BAD_NPY]
    script = "".join(f"/load {f[n]}\n" for n in ["good0", *bads]) + "what emotion?\n" + f"/load {f['long']}\n/quit\n"
    code, out, err = _run(capsys, ["chat", *_model_flags(env)], stdin=script, monkeypatch=monkeypatch)
    assert code == 0  # interactive: each bad /load is reported and the session goes on
    assert out.count("loaded ") == 2 and "c2ser> " in out  # the good clip stayed loaded through the bad ones
    _check_lines(env, err, bads, "c2ser chat: error:")
    assert [ln for ln in err.splitlines() if "warning" in ln] == [
        f"c2ser chat: warning: {f['long']}: longer than 30 s, only the first 30 s are used (cropped)"]


def _eval_args(env, manifest, out, *extra):
    return ["eval", "--checkpoint", str(env["ckpt"]), "--manifest", str(manifest), "--corpus", "synthetic",
            "--feature-dir", str(env["feats"]), "--out", str(out), "--max-new-tokens", "4", *extra]


def test_eval(env, capsys):
    manifest, rows, bads = _manifest(env)
    out = env["root"] / "eval"
    code, stdout, err = _run(capsys, _eval_args(env, manifest, out))
    assert code == 0
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["key"] for p in preds) == ["clip0", "clip1", "long"]
    assert [p["key"] for p in preds if p.get("cropped")] == ["long"]
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(preds) + len(rejects) == len(rows) and len(rejects) == len(bads)
    assert json.loads((out / "results.json").read_text())["n"] == 3
    _check_lines(env, err, bads, "rejected:")
    assert "kept 3, rejected 13 of 16 clips" in err
    warn = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warn) == 1 and str(env["files"]["long"]) in warn[0] and "cropped" in warn[0]


def test_eval_whole_run_errors_are_one_line(env, capsys):
    root = env["root"]
    (root / "latin1.jsonl").write_bytes(json.dumps(_row("x", env["files"]["good0"])).encode() + b"\n\xe9t\xe9\n")
    bad_ckpt = root / "ckpt_corrupt"
    shutil.copytree(env["ckpt"], bad_ckpt)
    data = (bad_ckpt / "model.safetensors").read_bytes()
    (bad_ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    manifest, _, _ = _manifest(env, with_npy=False)
    cases = [(_eval_args(env, root / "latin1.jsonl", root / "e1"), f"{root / 'latin1.jsonl'}:2: not UTF-8"),
             (["eval", "--checkpoint", str(bad_ckpt), *_eval_args(env, manifest, root / "e2")[3:]],
              f"{bad_ckpt / 'model.safetensors'}: corrupt or unreadable safetensors"),
             (["predict", str(env["files"]["good0"]), *_model_flags(env)[2:], "--checkpoint", str(bad_ckpt)],
              f"{bad_ckpt / 'model.safetensors'}: corrupt or unreadable safetensors")]
    for argv, expected in cases:
        code, _, err = _run(capsys, argv)
        lines = [ln for ln in err.splitlines() if "error:" in ln]
        assert code == 1 and len(lines) == 1 and expected in lines[0], err
        TALLY["clear"] += 1


def test_eval_refuses_a_foreign_predictions_file_and_overwrite_starts_over(env, capsys):
    manifest, _, _ = _manifest(env, with_npy=False)
    out = env["root"] / "eval_fp"
    assert _run(capsys, _eval_args(env, manifest, out, "--limit", "1"))[0] == 0
    code, _, err = _run(capsys, _eval_args(env, manifest, out, "--mode", "explicit"))  # another mode
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert code == 1 and len(lines) == 1 and "predictions from another run (different mode" in lines[0]
    assert "--overwrite" in lines[0]
    code, _, _ = _run(capsys, _eval_args(env, manifest, out, "--mode", "explicit", "--overwrite"))
    assert code == 0
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert {p["mode"] for p in preds} == {"explicit"} and len(preds) == 3


def test_validate_manifest_audio(env, capsys):
    manifest, rows, bads = _manifest(env, with_npy=False)
    code, out, _ = _run(capsys, ["validate-manifest", str(manifest), "--audio"])
    assert code == 1
    problems = [ln for ln in out.splitlines() if "note:" not in ln and not ln.endswith("problems")]
    # an unknown label and a missing field are reported by the field check, the rest by opening the files
    _check_lines(env, "\n".join(problems), bads, "")
    assert out.splitlines()[-1] == f"{manifest}: {len(rows)} rows, {len(bads)} problems"
    assert sum("note: longer than 30 s" in ln for ln in out.splitlines()) == 1


def test_extract_features(env, capsys):
    manifest, rows, _ = _manifest(env, with_npy=False)
    lines = manifest.read_text().splitlines()
    manifest = env["root"] / "fx.jsonl"
    manifest.write_text("\n".join(ln for ln in lines if '"long"' not in ln) + "\n")  # 31 s: slow on 2 cores
    rows = [r for r in rows if r["key"] != "long"]
    out = env["root"] / "fx"
    from c2ser.testing import build_tiny_emotion2vec

    e2v = build_tiny_emotion2vec(env["root"] / "e2v.pt")
    code, stdout, err = _run(capsys, ["extract-features", str(manifest), "--checkpoint", str(e2v),
                                      "--out-dir", str(out)])
    assert code == 0
    written = sorted(p.stem for p in out.glob("*.npy"))
    assert written == ["clip0", "clip1", "field", "label"]  # labels are not this command's business
    bads = [*BAD_AUDIO, "duplicate"]
    _check_lines(env, err, bads, "rejected:")
    rejects = (out / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == len(bads) and len(written) + len(rejects) == len(rows)
    assert f"written {len(written)}, already there 0, rejected {len(bads)}" in stdout


def test_train_rejects_bad_rows_and_refuses_over_the_threshold(env, capsys, tmp_path):
    from c2ser.config import to_dict
    from c2ser.testing import tiny_model_config

    manifest, rows, bads = _manifest(env)
    conf = tmp_path / "train.yaml"
    conf.write_text(yaml.safe_dump({"model": to_dict(tiny_model_config(env["models"])), "output_dir": str(tmp_path),
                                    "data": {"train_manifest": str(manifest), "feature_dir": str(env["feats"])},
                                    "max_steps": 1, "task": "explicit"}))
    code, _, err = _run(capsys, ["train", "--config", str(conf)])
    assert code == 1
    # the tiny model's long_audio is "error": the 31-s clip is rejected too
    _check_lines(env, err, [*bads, "long"], "rejected:")
    [refusal] = [ln for ln in err.splitlines() if "error:" in ln]
    assert f"{manifest}: 14 of 16 rows rejected, more than data.max_reject_fraction=0.05" in refusal
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 14


def test_summary(capsys):
    with capsys.disabled():
        print(f"\nbad-input matrix: {TALLY['clear']} clear errors, {TALLY['traceback']} tracebacks, "
              f"{TALLY['silent']} silent failures")
    assert TALLY["traceback"] == 0 and TALLY["silent"] == 0 and TALLY["clear"] > 0
