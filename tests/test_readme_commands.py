"""Every command block of README.md runs against the tiny rehearsal's outputs, and each command's outputs are checked.

Commands are read from the README's ```bash blocks (continuation lines joined, comments dropped). What is changed
before a command runs is the table ``REWRITES`` (each rewrite has a name and says what it does); the table
``EXPECTED`` says which rewrites each kind of command gets, and the test asserts that exactly those were applied.
In short: paths are mapped onto the rehearsal (``exp/c2ser`` → its exp, ``/ckpt/...`` → its tiny *random* models
and the "released" official checkpoint it generated at tiny widths, raw corpus roots → its fake corpora, outputs →
a temporary folder); training commands get the tiny size overlay and ``max_steps=2``, ``--num_processes 8`` becomes
2, train-head gets the tiny head overlay and ``epochs=1``, the official layout gets the tiny widths. ``c2ser chat``
reads two scripted questions; ``c2ser web`` is stopped (SIGTERM) once its page answers. The commands of
``NOT_RUN`` are not run here, for the reason given.

Each command that runs must exit 0 with no traceback, and its outputs are checked (``CHECKS``): a trained checkpoint
loads and has done 2 updates, data preparation wrote the rows it says it kept, an eval folder has one prediction
per manifest row and metrics recounted from its confusion matrix (tests/checks.py), predict printed a label per
file, results wrote a row per results.json, ...
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from checks import eval_folder, jsonl
from conftest import REPO, recipe_env

# the rehearsal fixture's run (the whole tiny recipe, minutes) is timed with the first test that uses it
pytestmark = pytest.mark.timeout(1500)

# Commands not run here, and why (each is run elsewhere or cannot run on this machine).
NOT_RUN = {
    "make demo": "the demo (recipes/tiny/run.sh, minutes per seed) is not run by this test",
    "make test": "this is the test suite itself (CI runs it)",
    "bash recipes/c2ser/run.sh --size tiny": "the rehearsal fixture runs exactly this command",
    "bash recipes/c2ser/run.sh --size full": "needs GPUs, real corpora and weights; its --size tiny twin runs here",
}


# ---- what is rewritten ---------------------------------------------------------------------------------------------
def _paths(ctx):
    exp, tmp, models, raw = ctx["exp"], ctx["tmp"], ctx["exp"] / "models", ctx["exp"] / "raw"
    return {
        "exp→rehearsal": [("exp/c2ser", str(exp)), ("exp/eval", str(tmp / "eval"))],
        "ckpt→tiny random models": [("/ckpt/Emotion2Vec-S/checkpoint.pt", str(models / "emotion2vec-tiny-random.pt")),
                                    ("/ckpt/Qwen2-7B", str(models / "qwen2-tiny-random"))],
        "official→generated tiny release": [("/ckpt/C2SER_llm.pt", str(models / "official-tiny.pt"))],
        "raw corpora→fake corpora": [("/data/Emo-Emilia", str(raw / "Emo-Emilia")),
                                     ("/data/MELD.Raw", str(raw / "MELD.Raw")), ("/data/CASIA", str(raw / "CASIA"))],
        "8→2 processes": [("--num_processes 8", "--num_processes 2")],
    }


def _sub(pattern, repl):
    return lambda cmd, ctx: re.sub(pattern, repl(ctx) if callable(repl) else repl, cmd)


def _train_overlay(cmd, ctx):
    models = ctx["exp"] / "models"
    cmd = re.sub(r"output_dir=\S+", f"output_dir={ctx['tmp']}/train-{ctx['n']}", cmd)
    return cmd + (f" --config recipes/c2ser/conf/tiny.yaml model.whisper.name_or_path={models}/whisper-tiny-random.pt"
                  f" model.llm.name_or_path={models}/qwen2-tiny-random max_steps=2")


def _head_overlay(cmd, ctx):
    cmd = re.sub(r"output_dir=\S+", f"output_dir={ctx['tmp']}/head-{ctx['n']}", cmd)
    return cmd + " --config recipes/c2ser/conf/head_tiny.yaml epochs=1"


def _official_widths(cmd, ctx):
    return cmd + (f" --set whisper.name_or_path={ctx['exp']}/models/whisper-tiny-random.pt --set ssl.dim=48"
                  " --set adapter.num_blocks=2 --set adapter.ffn=128")


def _audio(cmd, ctx):
    for name in ("a.wav", "b.mp3", "c.mp4"):
        cmd = re.sub(rf"(?<![\w/.-]){re.escape(name)}\b", str(ctx["tmp"] / name), cmd)
    return cmd


# name → (what it does, function); applied in this order, a rewrite counts as applied when it changed the command
REWRITES = {
    **{name: (f"replace {', '.join(a for a, _ in pairs)}", pairs) for name, pairs in _paths(
        {"exp": Path("EXP"), "tmp": Path("TMP")}).items()},
    "data/→tmp": ("relative data/ paths go to a temporary folder", _sub(r"(?<![\w/.-])data/",
                                                                         lambda ctx: f"{ctx['tmp']}/data/")),
    "audio→rehearsal clip": ("a.wav b.mp3 c.mp4 = one rehearsal MELD clip (mp3/mp4 made by ffmpeg)", _audio),
    "train: tiny overlay, max_steps=2": ("recipes/c2ser/conf/tiny.yaml, the tiny Whisper and LLM, max_steps=2, "
                                         "output_dir in the temporary folder", _train_overlay),
    "train-head: tiny overlay, epochs=1": ("recipes/c2ser/conf/head_tiny.yaml, epochs=1, output_dir in the "
                                           "temporary folder", _head_overlay),
    "official: tiny widths": ("--set the tiny Whisper, ssl.dim=48, 2 adapter blocks of width 128 (the generated "
                              "release's widths)", _official_widths),
}
WHEN = {"train: tiny overlay, max_steps=2": lambda cmd: " train " in f"{cmd} ",
        "train-head: tiny overlay, epochs=1": lambda cmd: " train-head " in cmd,
        "official: tiny widths": lambda cmd: "official" in cmd}


def tiny_command(cmd: str, exp: Path, tmp: Path, n: int) -> tuple[str, list[str]]:
    """The README command as run here, and the names of the rewrites that changed it."""
    ctx = {"exp": exp, "tmp": tmp, "n": n}
    pairs, applied = _paths(ctx), []
    for name, (_, how) in REWRITES.items():
        if name in WHEN and not WHEN[name](cmd):
            continue
        new = cmd
        if name in pairs:
            for a, b in pairs[name]:
                new = new.replace(a, b)
        else:
            new = how(new, ctx)
        if new != cmd:
            applied.append(name)
        cmd = new
    return cmd, applied


_EVAL = ["exp→rehearsal", "ckpt→tiny random models"]
_HEAD_LAUNCH = "accelerate launch --config_file recipes/accelerate/ds_zero2.yaml --num_processes 8 -m c2ser.cli train-head"
# command prefix → the rewrites it must get (the longest matching prefix counts)
EXPECTED = {
    "c2ser train ": ["exp→rehearsal", "train: tiny overlay, max_steps=2"],
    "accelerate launch": ["exp→rehearsal", "8→2 processes", "train: tiny overlay, max_steps=2"],
    _HEAD_LAUNCH: ["exp→rehearsal", "8→2 processes", "train-head: tiny overlay, epochs=1"],
    "python data_prep/emo_emilia.py": ["raw corpora→fake corpora", "data/→tmp"],
    "python data_prep/meld.py": ["raw corpora→fake corpora", "data/→tmp"],
    "python data_prep/casia.py": ["raw corpora→fake corpora", "data/→tmp"],
    "python data_prep/": ["data/→tmp"],
    "c2ser validate-manifest": ["data/→tmp"],
    "c2ser extract-features": ["ckpt→tiny random models", "data/→tmp"],
    "c2ser eval --checkpoint exp/": ["exp→rehearsal"],
    "c2ser eval --checkpoint official:": [*_EVAL, "official→generated tiny release", "official: tiny widths"],
    "c2ser score": ["exp→rehearsal"],
    "c2ser results": ["exp→rehearsal"],
    "c2ser train-head": ["exp→rehearsal", "train-head: tiny overlay, epochs=1"],
    "c2ser predict a.wav b.mp3": [*_EVAL, "audio→rehearsal clip"],
    "c2ser predict a.wav --checkpoint official": ["ckpt→tiny random models", "official→generated tiny release",
                                                  "audio→rehearsal clip", "official: tiny widths"],
    "c2ser chat": [*_EVAL, "audio→rehearsal clip"],
    "c2ser web": _EVAL,
    "c2ser plan": [],
    "python eval/robustness.py": _EVAL,  # loads nothing (meta device): runs at the recipe's full size as written
}


def expected_rewrites(cmd: str) -> list[str]:
    prefixes = [p for p in EXPECTED if cmd.startswith(p)]
    assert prefixes, f"README command with no entry in EXPECTED (add what it is rewritten with): {cmd}"
    return EXPECTED[max(prefixes, key=len)]


# ---- the README's commands -----------------------------------------------------------------------------------------
def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def count_commands_line_by_line() -> int:
    """The number of commands in the README's bash blocks, counted another way: line by line, a line starts a
    command unless it is blank, a comment, or continues the line before (which ended with a backslash)."""
    count, inside, continued = 0, False, False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.strip().startswith("```"):
            inside, continued = line.strip() == "```bash" and not inside, False
            continue
        if inside:
            stripped = line.strip()
            if stripped and not stripped.startswith("#") and not continued:
                count += 1
            continued = stripped.endswith("\\")
    return count


# ---- how each command's outputs are checked -------------------------------------------------------------------------
def _arg(cmd: str, flag: str, n: int = 1) -> list[str]:
    words = shlex.split(cmd)
    i = words.index(flag)
    return words[i + 1: i + 1 + n]


def _kv(cmd: str, key: str) -> str:
    return re.search(rf"(?:^|\s){re.escape(key)}=(\S+)", cmd).group(1)


def check_train(cmd, out, ctx):
    from c2ser.inference.loading import load_for_inference

    final = Path(_kv(cmd, "output_dir")) / "final"
    cfg = OmegaConf.load(final / "config.yaml")
    assert cfg.result.step == 2, cfg.result
    if "--num_processes" in cmd:
        assert cfg.launch.num_processes == int(_arg(cmd, "--num_processes")[0])
    model, _ = load_for_inference(str(final), device="cpu")
    assert sum(p.numel() for p in model.parameters()) > 0


def check_prepare(cmd, out, ctx):
    out_dir = Path(_arg(cmd, "--out")[0])
    rows = [r for f in sorted(out_dir.glob("*.jsonl")) if "rejects" not in f.name for r in jsonl(f)]
    kept = sum(int(k) for k in re.findall(r": kept (\d+), rejected", out))
    assert rows and len(rows) == kept, (len(rows), kept)
    assert all(Path(r["audio"]).is_file() for r in rows)
    if "--per-class" in cmd and "synthetic" in cmd:
        per = int(_arg(cmd, "--per-class")[0])
        train = jsonl(out_dir / "train.jsonl")
        counts = {e: sum(r["emotion"] == e for r in train) for e in {r["emotion"] for r in train}}
        assert set(counts.values()) == {per}, counts


def check_fake_corpora(cmd, out, ctx):
    root = Path(_arg(cmd, "--out")[0])
    for name, pattern in (("MELD.Raw", "*.mp4"), ("CASIA", "*.wav"), ("Emo-Emilia", "*.jsonl")):
        assert any((root / name).rglob(pattern)), f"{root / name}: no {pattern}"


def check_cot(cmd, out, ctx):
    source, written = jsonl(_arg(cmd, "--manifest")[0]), jsonl(_arg(cmd, "--out")[0])
    rejects = Path(_arg(cmd, "--out")[0]).with_suffix(".rejects.jsonl")
    assert len(written) + (len(jsonl(rejects)) if rejects.is_file() else 0) == len(source) and written
    assert all(r["explicit_target"] and r["implicit_target"] and r["style"]["pitch_bin"] for r in written)


def check_validate(cmd, out, ctx):
    path = shlex.split(cmd)[2]
    assert f"{path}: {len(jsonl(path))} rows, 0 problems" in out.splitlines(), out[-500:]


def check_features(cmd, out, ctx):
    keys, out_dir = [r["key"] for r in jsonl(shlex.split(cmd)[2])], Path(_arg(cmd, "--out-dir")[0])
    written = {p.stem for p in out_dir.glob("*.npy")}
    rejected = [r["key"] for r in jsonl(out_dir / "rejects.jsonl")] if (out_dir / "rejects.jsonl").is_file() else []
    assert written and sorted(written | set(rejected)) == sorted(keys) and not written & set(rejected)
    assert f"written {len(written)}, already there 0, rejected {len(rejected)}" in out


def _values(cmd: str, flag: str) -> list[str]:
    """Every value after ``flag`` up to the next option."""
    words = shlex.split(cmd)
    i = words.index(flag) + 1
    j = next((k for k in range(i, len(words)) if words[k].startswith("--")), len(words))
    return words[i:j]


def check_eval(cmd, out, ctx):
    manifests, outs = _values(cmd, "--manifest"), _values(cmd, "--out")
    modes = _values(cmd, "--mode") if "--mode" in cmd else ["implicit"]
    seeds = _values(cmd, "--seeds")[0].split(",") if "--seeds" in cmd else ["0"]
    assert len(manifests) == len(outs)
    for manifest, template in zip(manifests, outs):
        for mode in modes if "{mode}" in template else modes[:1]:
            folder = Path(template.replace("{mode}", mode))
            result = eval_folder(folder, Path(manifest), seeds)
            if "--group-by" in cmd:
                field = _values(cmd, "--group-by")[0]
                assert set(result["groups"]) == {str(r.get(field)) for r in jsonl(manifest)}
            if len(seeds) > 1:
                assert json.loads((folder / "stability.json").read_text())["runs"] == len(seeds)


def check_score(cmd, out, ctx):
    predictions = Path(shlex.split(cmd)[2])
    new, old = (json.loads((d / "results.json").read_text()) for d in (Path(_arg(cmd, "--out")[0]),
                                                                        predictions.parent))
    assert (new["n"], new["WA"], new["UA"]) == (old["n"], old["WA"], old["UA"])  # same predictions, same scores


def check_results(cmd, out, ctx):
    root, table = Path(shlex.split(cmd)[2]), Path(_arg(cmd, "--out")[0]).read_text()
    files = sorted(root.rglob("results.json"))
    assert len(files) >= 5
    for f in files:
        r = json.loads(f.read_text())
        row = f"| {f.parent.relative_to(root)} | {r['corpus']} | {r['n']} | {100 * r['WA']:.1f} | {100 * r['UA']:.1f} |"
        assert row in table, row


def check_head(cmd, out, ctx):
    final = Path(_kv(cmd, "output_dir")) / "final"
    assert (final / "config.yaml").is_file() and any(final.glob("*.safetensors")), sorted(final.iterdir())


def check_predict(cmd, out, ctx):
    from c2ser.labels import EMOTIONS

    files = [w for w in shlex.split(cmd)[2:] if re.search(r"\.(wav|mp3|mp4)$", w)]
    if "--json" in cmd:
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        labels = [(r["emotion"], r["text"]) for r in rows]
    else:
        lines = [ln.split("\t") for ln in out.splitlines() if "\t" in ln]
        rows, labels = [{"file": ln[0]} for ln in lines], [(ln[1], ln[2]) for ln in lines]
    assert [r["file"] for r in rows] == files, out[-2000:]
    # a label per file; a tiny random model may answer with no emotion word: then "?" and its raw answer
    assert all(label in EMOTIONS or label in (None, "?") and text.strip() for label, text in labels), labels
    assert f"{len(files)}/{len(files)} files predicted" in out


def check_chat(cmd, out, ctx):
    assert "loaded " in out and out.count("c2ser> ") == 2, out[-2000:]  # the clip, then two answered questions


def check_plan(cmd, out, ctx):
    """The figures the README quotes for this command are the ones it prints."""
    readme = (REPO / "README.md").read_text()
    trained, total = re.search(r"prints ([\d.]+) M trained of ([\d.]+) G parameters", readme).groups()
    in_all = re.search(r"([\d.]+) GiB in all", readme).group(1)
    counts = re.search(r"([\d,]+) total, ([\d,]+) trained", out).groups()
    assert f"{int(counts[1].replace(',', '')) / 1e6:.1f}" == trained, (counts, trained)
    assert f"{int(counts[0].replace(',', '')) / 1e9:.2f}" == total, (counts, total)
    assert re.search(rf"^total\s+{re.escape(in_all)}\s+fits", out, flags=re.M), out[-1500:]


def check_robustness(cmd, out, ctx):
    """Every system × condition has its own scored run, and the summary table carries that run's numbers."""
    import csv

    root, manifest = Path(_arg(cmd, "--out")[0]), _arg(cmd, "--manifest")[0]
    systems, conditions = _values(cmd, "--checkpoint"), _values(cmd, "--conditions")
    rows = list(csv.DictReader(open(root / "robustness.csv")))
    assert [(r["checkpoint"], r["condition"]) for r in rows] == [(s, c) for s in systems for c in conditions], rows
    for r in rows:
        folder = root / re.sub(r"[^A-Za-z0-9.+-]+", "_", r["system"]).strip("_") / re.sub(r"[^A-Za-z0-9.+-]+", "_",
                                                                                         r["condition"])
        result = json.loads((folder / "results.json").read_text())
        assert result["condition"] == r["condition"] and result["n"] == len(jsonl(manifest)) == int(r["n"])
        assert float(r["UA"]) == result["UA"], (r, result["UA"])
    assert (root / "robustness.png").stat().st_size > 0 and (root / "robustness.md").is_file()


CHECKS = {"c2ser train ": check_train, "accelerate launch": check_train, _HEAD_LAUNCH: check_head, "python data_prep/fake_corpora.py":
          check_fake_corpora, "python data_prep/cot_labels.py": check_cot, "python data_prep/": check_prepare,
          "c2ser validate-manifest": check_validate, "c2ser extract-features": check_features,
          "c2ser eval": check_eval, "c2ser score": check_score, "c2ser results": check_results,
          "c2ser train-head": check_head, "c2ser predict": check_predict, "c2ser chat": check_chat,
          "c2ser plan": check_plan, "python eval/robustness.py": check_robustness}


def _check_for(cmd: str):
    prefixes = [p for p in CHECKS if cmd.startswith(p)]
    return CHECKS[max(prefixes, key=len)] if prefixes else None


def _audio_files(exp: Path, tmp: Path) -> None:
    wav = sorted((exp / "data" / "meld" / "wav").rglob("*.wav"))[0]
    shutil.copy(wav, tmp / "a.wav")
    for name in ("b.mp3", "c.mp4"):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(tmp / name)], check=True)


def _run_web(cmd: str) -> str:
    proc = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=REPO, env=recipe_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                page = urllib.request.urlopen("http://127.0.0.1:7860/", timeout=5)
                assert page.status == 200 and "C2SER demo" in page.read().decode()
                break
            except OSError:
                assert time.time() < deadline, "c2ser web did not answer on 127.0.0.1:7860"
                time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out, out[-3000:]
    return out


def test_the_readme_command_list_is_complete_and_every_rewrite_is_declared():
    """Cheap (no rehearsal): the parser finds every command, and each gets exactly its declared rewrites."""
    commands = readme_commands()
    assert len(commands) == count_commands_line_by_line()
    for cmd in commands:
        if not any(cmd.startswith(s) for s in NOT_RUN):
            _, applied = tiny_command(cmd, Path("/EXP"), Path("/TMP"), 0)
            assert applied == expected_rewrites(cmd), (cmd, applied)
            assert _check_for(cmd) or cmd.startswith("c2ser web"), f"no output check for {cmd}"
    for skip in NOT_RUN:
        assert sum(c.startswith(skip) for c in commands) == 1, f"{skip!r}: not exactly one README command"


def test_every_readme_command_runs(rehearsal, tmp_path):
    exp, _ = rehearsal
    _audio_files(exp, tmp_path)
    commands = readme_commands()
    ran, checked = [], []
    for n, cmd in enumerate(commands):
        if any(cmd.startswith(skip) for skip in NOT_RUN):
            continue
        tiny, applied = tiny_command(cmd, exp, tmp_path, n)
        assert applied == expected_rewrites(cmd), (cmd, applied)
        if cmd.startswith("c2ser web"):
            _run_web(tiny)  # the check: its page answered
            checked.append(cmd)
        else:
            stdin = "what emotion is this?\nwhy do you think so?\n/quit\n" if cmd.startswith("c2ser chat") else ""
            proc = subprocess.run(["bash", "-c", tiny], cwd=REPO, env=recipe_env(), input=stdin, capture_output=True,
                                  text=True, timeout=600)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0 and "Traceback" not in out, f"README command failed: {cmd}\n{out[-4000:]}"
            _check_for(cmd)(tiny, out, {"exp": exp, "tmp": tmp_path})
            checked.append(cmd)
        ran.append(cmd)
    assert checked == ran and len(ran) == len(commands) - len(NOT_RUN)
