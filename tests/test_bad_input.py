"""Bad-input matrix: every (command, bad input) pair, run as a user would (``main([...])`` in process, stdin
scripted for chat). For each bad input: the exit code is the documented one, exactly one output line names the
file and the reason, no traceback, and the good inputs are still used (kept + rejected = input).

Each (command, bad input) pair is classified (clear error / traceback / silent failure) and recorded as soon as its
command has run, before any assertion of its test can stop it; the last test prints the tally and checks that
every pair of the matrix was recorded.
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

OUTCOMES: dict[tuple[str, str], str] = {}  # (command case, bad input) → "clear" | "traceback" | "silent"
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


class Run:
    """One command run in process: exit code, stdout, stderr, and what escaped ``main()`` (None if nothing did)."""

    def __init__(self, capsys, argv, stdin=None, monkeypatch=None):
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        self.code, self.escaped = None, None
        try:
            self.code = main(argv)
        except BaseException as e:  # noqa: BLE001 — anything escaping main() is a traceback for the user
            self.escaped = f"{argv[0]}: {type(e).__name__} escaped: {e}"
        out = capsys.readouterr()
        self.out, self.err = out.out, out.err
        if self.escaped is None and "Traceback" in self.out + self.err:
            self.escaped = f"{argv[0]}: printed a traceback"

    def ok(self):
        """For runs outside the matrix: nothing escaped, no traceback printed."""
        assert self.escaped is None, f"{self.escaped}\n{self.err[-2000:]}"
        return self


def _record(case, outcomes: dict[str, str]) -> None:
    """Record every bad input's outcome of one command run (before the test asserts anything about it)."""
    for name, outcome in outcomes.items():
        assert (case, name) not in OUTCOMES, f"{case}/{name} recorded twice"
        OUTCOMES[(case, name)] = outcome


def _assert_all_clear(case, outcomes: dict[str, str], run: Run, detail: str = "") -> None:
    bad = {n: o for n, o in outcomes.items() if o != "clear"}
    assert not bad, f"{case}: {bad}\n{run.escaped or ''}\n{detail}\n{run.err[-3000:]}"


def _check_lines(env, case, run, text, bads, marker):
    """Exactly one line with ``marker`` per bad input, naming it and giving its reason (recorded, then asserted)."""
    lines = [ln for ln in text.splitlines() if marker in ln]
    outcomes, wrong = {}, []
    for name in bads:
        where = _where(env, name)
        reasons = REASONS[name] if isinstance(REASONS[name], tuple) else (REASONS[name],)
        hits = [ln for ln in lines if where in ln and any(r in ln for r in reasons)]
        outcomes[name] = "traceback" if run.escaped else "clear" if len(hits) == 1 else "silent"
        if len(hits) != 1:
            wrong.append(f"{name}: expected one line with {where!r} and {REASONS[name]!r}, got {hits}")
    _record(case, outcomes)
    _assert_all_clear(case, outcomes, run, "\n".join(wrong) + "\n" + text)
    assert len(lines) == len(bads), "\n".join(lines)


def _model_flags(env):
    return ["--checkpoint", str(env["ckpt"]), "--ssl-features", str(env["feats"]), "--max-new-tokens", "4"]


def test_predict(env, capsys):
    f = env["files"]
    names = ["good0", *BAD_AUDIO, "long", *BAD_NPY, "good1"]
    run = Run(capsys, ["predict", *[str(f[n]) for n in names], "--json", "--batch-size", "4", *_model_flags(env)])
    _check_lines(env, "predict", run, run.err, [*BAD_AUDIO, *BAD_NPY], "c2ser predict: error:")
    assert run.code == 0  # something was predicted
    rows = [json.loads(x) for x in run.out.splitlines()]
    assert [r["file"] for r in rows] == [str(f["good0"]), str(f["long"]), str(f["good1"])]
    assert [r["cropped"] for r in rows] == [False, True, False]
    assert [ln for ln in run.err.splitlines() if "warning" in ln] == [
        f"c2ser predict: warning: {f['long']}: longer than 30 s, only the first 30 s were used (cropped)"]
    assert "3/13 files predicted" in run.err


def test_predict_exits_1_only_when_nothing_is_predicted(env, capsys):
    f = env["files"]
    run = Run(capsys, ["predict", str(f["ms10"]), str(f["nan"]), *_model_flags(env)])
    _check_lines(env, "predict-nothing-left", run, run.err, ["ms10", "nan"], "c2ser predict: error:")
    assert run.code == 1 and run.out == ""


def test_predict_long_audio_error_rejects_the_long_clip(env, capsys):
    f = env["files"]
    run = Run(capsys, ["predict", str(f["long"]), str(f["good0"]), "--long-audio", "error", "--json",
                       *_model_flags(env)])
    lines = [ln for ln in run.err.splitlines() if "error:" in ln]
    hits = [ln for ln in lines if str(f["long"]) in ln and "longer than the encoder's 30 s" in ln]
    outcome = {"long": "traceback" if run.escaped else "clear" if len(lines) == len(hits) == 1 else "silent"}
    _record("predict-long-audio-error", outcome)
    _assert_all_clear("predict-long-audio-error", outcome, run)
    assert run.code == 0 and [json.loads(x)["file"] for x in run.out.splitlines()] == [str(f["good0"])]


def test_chat(env, capsys, monkeypatch):
    f = env["files"]
    bads = [*BAD_AUDIO, *BAD_NPY]
    script = "".join(f"/load {f[n]}\n" for n in ["good0", *bads]) + "what emotion?\n" + f"/load {f['long']}\n/quit\n"
    run = Run(capsys, ["chat", *_model_flags(env)], stdin=script, monkeypatch=monkeypatch)
    _check_lines(env, "chat", run, run.err, bads, "c2ser chat: error:")
    assert run.code == 0  # interactive: each bad /load is reported and the session goes on
    assert run.out.count("loaded ") == 2 and "c2ser> " in run.out  # the good clip stayed loaded through the bad ones
    assert [ln for ln in run.err.splitlines() if "warning" in ln] == [
        f"c2ser chat: warning: {f['long']}: longer than 30 s, only the first 30 s are used (cropped)"]


def _eval_args(env, manifest, out, *extra):
    return ["eval", "--checkpoint", str(env["ckpt"]), "--manifest", str(manifest), "--corpus", "synthetic",
            "--feature-dir", str(env["feats"]), "--out", str(out), "--max-new-tokens", "4", *extra]


def test_eval(env, capsys):
    manifest, rows, bads = _manifest(env)
    out = env["root"] / "eval"
    run = Run(capsys, _eval_args(env, manifest, out))
    _check_lines(env, "eval", run, run.err, bads, "rejected:")
    assert run.code == 0
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["key"] for p in preds) == ["clip0", "clip1", "long"]
    assert [p["key"] for p in preds if p.get("cropped")] == ["long"]
    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(preds) + len(rejects) == len(rows) and len(rejects) == len(bads)
    assert json.loads((out / "results.json").read_text())["n"] == 3
    assert "kept 3, rejected 13 of 16 clips" in run.err
    warn = [ln for ln in run.err.splitlines() if "warning" in ln]
    assert len(warn) == 1 and str(env["files"]["long"]) in warn[0] and "cropped" in warn[0]


def test_eval_whole_run_errors_are_one_line(env, capsys):
    root = env["root"]
    (root / "latin1.jsonl").write_bytes(json.dumps(_row("x", env["files"]["good0"])).encode() + b"\n\xe9t\xe9\n")
    bad_ckpt = root / "ckpt_corrupt"
    shutil.copytree(env["ckpt"], bad_ckpt)
    data = (bad_ckpt / "model.safetensors").read_bytes()
    (bad_ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    manifest, _, _ = _manifest(env, with_npy=False)
    cases = {"eval-latin1-manifest": (_eval_args(env, root / "latin1.jsonl", root / "e1"),
                                      f"{root / 'latin1.jsonl'}:2: not UTF-8"),
             "eval-corrupt-checkpoint": (["eval", "--checkpoint", str(bad_ckpt),
                                          *_eval_args(env, manifest, root / "e2")[3:]],
                                         f"{bad_ckpt / 'model.safetensors'}: corrupt or unreadable safetensors"),
             "predict-corrupt-checkpoint": (["predict", str(env["files"]["good0"]), *_model_flags(env)[2:],
                                             "--checkpoint", str(bad_ckpt)],
                                            f"{bad_ckpt / 'model.safetensors'}: corrupt or unreadable safetensors")}
    outcomes, errs = {}, {}
    for name, (argv, expected) in cases.items():  # every case runs and is recorded before anything is asserted
        run = Run(capsys, argv)
        lines = [ln for ln in run.err.splitlines() if "error:" in ln]
        clear = run.code == 1 and len(lines) == 1 and expected in lines[0]
        outcomes[name] = "traceback" if run.escaped else "clear" if clear else "silent"
        errs[name] = f"exit {run.code}: {run.escaped or ''}\n{run.err[-2000:]}"
    _record("whole-run", outcomes)
    assert all(o == "clear" for o in outcomes.values()), {n: (o, errs[n]) for n, o in outcomes.items() if o != "clear"}


def test_eval_refuses_a_foreign_predictions_file_and_overwrite_starts_over(env, capsys):
    manifest, _, _ = _manifest(env, with_npy=False)
    out = env["root"] / "eval_fp"
    assert Run(capsys, _eval_args(env, manifest, out, "--limit", "1")).ok().code == 0
    run = Run(capsys, _eval_args(env, manifest, out, "--mode", "explicit")).ok()  # another mode
    lines = [ln for ln in run.err.splitlines() if "error:" in ln]
    assert run.code == 1 and len(lines) == 1 and "predictions from another run (different mode" in lines[0]
    assert "--overwrite" in lines[0]
    assert Run(capsys, _eval_args(env, manifest, out, "--mode", "explicit", "--overwrite")).ok().code == 0
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert {p["mode"] for p in preds} == {"explicit"} and len(preds) == 3


def test_validate_manifest_audio(env, capsys):
    manifest, rows, bads = _manifest(env, with_npy=False)
    run = Run(capsys, ["validate-manifest", str(manifest), "--audio"])
    problems = [ln for ln in run.out.splitlines() if "note:" not in ln and not ln.endswith("problems")]
    # an unknown label and a missing field are reported by the field check, the rest by opening the files
    _check_lines(env, "validate-manifest", run, "\n".join(problems), bads, "")
    assert run.code == 1
    assert run.out.splitlines()[-1] == f"{manifest}: {len(rows)} rows, {len(bads)} problems"
    assert sum("note: longer than 30 s" in ln for ln in run.out.splitlines()) == 1


def test_extract_features(env, capsys):
    manifest, rows, _ = _manifest(env, with_npy=False)
    lines = manifest.read_text().splitlines()
    manifest = env["root"] / "fx.jsonl"
    manifest.write_text("\n".join(ln for ln in lines if '"long"' not in ln) + "\n")  # 31 s: slow on 2 cores
    rows = [r for r in rows if r["key"] != "long"]
    out = env["root"] / "fx"
    from c2ser.testing import build_tiny_emotion2vec

    e2v = build_tiny_emotion2vec(env["root"] / "e2v.pt")
    run = Run(capsys, ["extract-features", str(manifest), "--checkpoint", str(e2v), "--out-dir", str(out)])
    bads = [*BAD_AUDIO, "duplicate"]
    _check_lines(env, "extract-features", run, run.err, bads, "rejected:")
    assert run.code == 0
    written = sorted(p.stem for p in out.glob("*.npy"))
    assert written == ["clip0", "clip1", "field", "label"]  # labels are not this command's business
    rejects = (out / "rejects.jsonl").read_text().splitlines()
    assert len(rejects) == len(bads) and len(written) + len(rejects) == len(rows)
    assert f"written {len(written)}, already there 0, rejected {len(bads)}" in run.out


def test_train_rejects_bad_rows_and_refuses_over_the_threshold(env, capsys, tmp_path):
    from c2ser.config import to_dict
    from c2ser.testing import tiny_model_config

    manifest, rows, bads = _manifest(env)
    conf = tmp_path / "train.yaml"
    conf.write_text(yaml.safe_dump({"model": to_dict(tiny_model_config(env["models"])), "output_dir": str(tmp_path),
                                    "data": {"train_manifest": str(manifest), "feature_dir": str(env["feats"])},
                                    "max_steps": 1, "task": "explicit"}))
    run = Run(capsys, ["train", "--config", str(conf)])
    # the tiny model's long_audio is "error": the 31-s clip is rejected too
    _check_lines(env, "train", run, run.err, [*bads, "long"], "rejected:")
    assert run.code == 1
    [refusal] = [ln for ln in run.err.splitlines() if "error:" in ln]
    assert f"{manifest}: 14 of 16 rows rejected, more than data.max_reject_fraction=0.05" in refusal
    assert len((tmp_path / "rejects.jsonl").read_text().splitlines()) == 14


# Every (case, bad input) pair of the matrix, written out independently of the tests above: the summary checks that
# each was recorded (a test stopped by a fixture error or run alone leaves pairs unrecorded, and the summary fails).
_ROW_CASES = ("duplicate", "label", "field")
MATRIX = {"predict": [*BAD_AUDIO, *BAD_NPY], "predict-nothing-left": ["ms10", "nan"],
          "predict-long-audio-error": ["long"], "chat": [*BAD_AUDIO, *BAD_NPY],
          "eval": [*BAD_AUDIO, *BAD_NPY, *_ROW_CASES],
          "whole-run": ["eval-latin1-manifest", "eval-corrupt-checkpoint", "predict-corrupt-checkpoint"],
          "validate-manifest": [*BAD_AUDIO, *_ROW_CASES], "extract-features": [*BAD_AUDIO, "duplicate"],
          "train": [*BAD_AUDIO, *BAD_NPY, *_ROW_CASES, "long"]}


def test_summary(capsys):
    counts = {k: sum(o == k for o in OUTCOMES.values()) for k in ("clear", "traceback", "silent")}
    with capsys.disabled():
        print(f"\nbad-input matrix: {counts['clear']} clear errors, {counts['traceback']} tracebacks, "
              f"{counts['silent']} silent failures ({len(OUTCOMES)} of {sum(map(len, MATRIX.values()))} "
              "(command, bad input) pairs recorded)")
    expected = {(case, name) for case, names in MATRIX.items() for name in names}
    assert set(OUTCOMES) == expected, f"unrecorded: {sorted(expected - set(OUTCOMES))}"
    assert counts["traceback"] == 0 and counts["silent"] == 0
