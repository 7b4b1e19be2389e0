"""eval/answer_lengths.py: answer lengths in the model's tokens and how many a limit would cut."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "eval"))

from answer_lengths import main  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models["llm"])


def test_counts_lengths_and_limits(tokenizer, tiny_models, tmp_path, capsys):
    texts = [" ".join(["happy"] * k) + " sad" for k in (1, 5, 30, 60)]
    true = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert len(set(true)) == 4, true  # four distinct lengths, so each limit splits them differently
    f = tmp_path / "predictions.jsonl"
    f.write_text("".join(json.dumps({"key": str(i), "prediction": t, "truncated": i == 3}) + "\n"
                         for i, t in enumerate(texts)))
    limits = sorted(true)[1], sorted(true)[2]  # strictly longer than the 2nd / 3rd: 2 and 1 answers
    assert main([str(f), "--tokenizer", str(tiny_models["llm"]), "--limits", f"{limits[0]},{limits[1]}"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    s = sorted(true)
    assert cells[1:] == ["4", str(s[3]), str((s[1] + s[2]) / 2),
                         "1", "2", "1"], (cells, true)


def test_a_bad_row_is_one_line_naming_the_file_and_line(tiny_models, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"key": "a", "prediction": "happy"}) + "\n{not json\n")
    r = subprocess.run([sys.executable, str(REPO / "eval" / "answer_lengths.py"), str(f), "--tokenizer",
                        str(tiny_models["llm"])], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and f"{f}:2: not a prediction row" in r.stderr, r.stderr
