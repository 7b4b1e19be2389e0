"""Every command block of README.md runs, as a user would type it, against the tiny rehearsal's outputs.

Commands are read from the README's ```bash blocks (continuation lines joined, comments dropped) and only their
paths are mapped onto the rehearsal (``exp/c2ser`` → the rehearsal's exp, ``/ckpt/...`` → its tiny models, raw corpus
roots → its fake corpora, outputs → a temporary folder); training commands get the tiny size overlay, as
``--size tiny`` does. A documented command that fails, or prints a traceback, fails this test.
"""
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, recipe_env

# Commands not run here, and why (each is run elsewhere or cannot run on this machine).
NOT_RUN = {
    "make demo": "the demo is recipes/c2ser/run.sh --size tiny with an overlay; the same recipe runs in the rehearsal",
    "make test": "this is the test suite itself (CI runs it)",
    "bash recipes/c2ser/run.sh --size tiny": "the rehearsal fixture runs exactly this command",
    "bash recipes/c2ser/run.sh --size full": "needs GPUs, real corpora and weights; its --size tiny twin runs here",
}


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


def tiny_command(cmd: str, exp: Path, tmp: Path, n: int) -> str:
    """The README command with its paths mapped onto the rehearsal (nothing else changes)."""
    models = exp / "models"
    raw = exp / "raw"
    subs = [
        ("/data/Emo-Emilia", str(raw / "Emo-Emilia")), ("/data/MELD.Raw", str(raw / "MELD.Raw")),
        ("/data/CASIA", str(raw / "CASIA")),
        ("/ckpt/Emotion2Vec-S/checkpoint.pt", str(models / "emotion2vec-tiny-random.pt")),
        ("/ckpt/C2SER_llm.pt", str(models / "official-tiny.pt")), ("/ckpt/Qwen2-7B", str(models / "qwen2-tiny-random")),
        ("exp/c2ser", str(exp)), ("exp/eval", str(tmp / "eval")), ("--num_processes 8", "--num_processes 2"),
    ]
    for a, b in subs:
        cmd = cmd.replace(a, b)
    cmd = re.sub(r"(?<![\w/.-])data/", f"{tmp}/data/", cmd)
    for name in ("a.wav", "b.mp3", "c.mp4"):
        cmd = re.sub(rf"(?<![\w/.-]){re.escape(name)}\b", str(tmp / name), cmd)
    if " train " in f"{cmd} " or cmd.endswith(" train"):
        cmd = re.sub(r"output_dir=\S+", f"output_dir={tmp}/train-{n}", cmd)
        cmd += (f" --config recipes/c2ser/conf/tiny.yaml model.whisper.name_or_path={models}/whisper-tiny-random.pt"
                f" model.llm.name_or_path={models}/qwen2-tiny-random max_steps=2")
    if " train-head " in cmd:
        cmd = re.sub(r"output_dir=\S+", f"output_dir={tmp}/head-{n}", cmd)
        cmd += " --config recipes/c2ser/conf/head_tiny.yaml epochs=1"
    if "official" in cmd:  # the released layout at the tiny widths (the recipe's stage 9 at --size tiny)
        cmd += (f" --set whisper.name_or_path={models}/whisper-tiny-random.pt --set ssl.dim=48"
                " --set adapter.num_blocks=2 --set adapter.ffn=128")
    return cmd


def _audio_files(exp: Path, tmp: Path) -> None:
    wav = sorted((exp / "data" / "meld" / "wav").rglob("*.wav"))[0]
    shutil.copy(wav, tmp / "a.wav")
    for name in ("b.mp3", "c.mp4"):
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(tmp / name)], check=True)


def _run_web(cmd: str) -> None:
    proc = subprocess.Popen(["bash", "-c", f"exec {cmd}"], cwd=REPO, env=recipe_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 240
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                assert urllib.request.urlopen("http://127.0.0.1:7860/", timeout=5).status == 200
                break
            except OSError:
                assert time.time() < deadline, "c2ser web did not answer on 127.0.0.1:7860"
                time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out, out[-3000:]


def test_every_readme_command_runs(rehearsal, tmp_path):
    exp, _ = rehearsal
    _audio_files(exp, tmp_path)
    commands = readme_commands()
    assert len(commands) >= 20
    ran = []
    for n, cmd in enumerate(commands):
        if any(cmd.startswith(skip) for skip in NOT_RUN):
            continue
        tiny = tiny_command(cmd, exp, tmp_path, n)
        if cmd.startswith("c2ser web"):
            _run_web(tiny)
        else:
            stdin = "what emotion is this?\nwhy do you think so?\n/quit\n" if cmd.startswith("c2ser chat") else ""
            proc = subprocess.run(["bash", "-c", tiny], cwd=REPO, env=recipe_env(), input=stdin, capture_output=True,
                                  text=True, timeout=600)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0 and "Traceback" not in out, f"README command failed: {cmd}\n{out[-4000:]}"
        ran.append(cmd)
    assert len(ran) + sum(any(c.startswith(s) for s in NOT_RUN) for c in commands) == len(commands)
    # what the commands were expected to leave behind
    assert (tmp_path / "eval" / "RESULTS.md").is_file()
    assert (tmp_path / "eval" / "official" / "emo_emilia" / "results.json").is_file()
    assert (tmp_path / "data" / "meld" / "test.cot.jsonl").is_file()


@pytest.mark.parametrize("cmd", sorted(NOT_RUN))
def test_commands_not_run_here_are_in_the_readme(cmd):
    assert any(c.startswith(cmd) for c in readme_commands()), f"{cmd!r} is no longer in the README"
