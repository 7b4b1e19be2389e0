"""Mean ± std over seeds of the demo's systems: validation and test UA, style accuracy, Gen-SER steps, time.

    python eval/aggregate_seeds.py exp/tiny --seeds 0,1,2 [--out exp/tiny/RESULTS.md]

Reads, per seed, ``EXP/seedS/eval/<system>/results.json`` (test), ``EXP/seedS/eval_valid/<system>/results.json``
(validation) and ``EXP/seedS/eval_valid2/<system>/results.json`` (the second validation split, the demo's former
test split: docs/demo.md) as written by ``c2ser eval``, the Gen-SER step count chosen on validation
(``head_gen_ser/final/head/config.yaml``), the heads' parameter counts (with ``--joint_heads 1`` of the demo also
the heads tuned jointly with the backbone's LoRA, ``head_{gen_ser,ce}_lora``, and a table of head and trainable
parameter counts), and ``cpu_times.txt`` / ``wall.json``
(written by recipes/tiny/run.sh), ``chat_consistency.json`` (eval/chat_consistency.py) and
``robustness/robustness.csv`` (eval/robustness.py, the demo's stage 10: test UA per listening condition; with
``--out``, ``robustness.png`` beside it plots the means over seeds). std is the sample
standard deviation (n − 1); a system missing for some seed is reported over the seeds that have it (the count is
shown).
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from pathlib import Path

SYSTEMS = [("stage1-explicit", "stage 1, explicit CoT answer"), ("stage1-implicit", "stage 1, implicit prompt"),
           ("stage2-explicit", "stage 2, explicit CoT answer"), ("stage2-implicit", "stage 2, implicit answer"),
           ("head-gen_ser", "Gen-SER head on the stage-2 backbone"), ("head-ce", "CE head, same conditioning"),
           ("head-gen_ser_lora", "Gen-SER head, backbone LoRA tuned jointly"),
           ("head-ce_lora", "CE head, backbone LoRA tuned jointly")]
# the head directories (EXP/seedS/head_<name>): frozen backbone, and with --joint_heads 1 the jointly tuned ones
HEADS = [("gen_ser", "Gen-SER", "frozen"), ("ce", "CE", "frozen"), ("gen_ser_lora", "Gen-SER", "LoRA tuned jointly"),
         ("ce_lora", "CE", "LoRA tuned jointly")]
STYLE = ("pitch", "volume", "pace")


def mean_std(values: list[float]) -> str:
    """'m ± s' in percent (s = sample std; '–' without values; no ± for one value)."""
    if not values:
        return "–"
    m = 100 * statistics.mean(values)
    return f"{m:.1f}" if len(values) == 1 else f"{m:.1f} ± {100 * statistics.stdev(values):.1f}"


def _results(path: Path) -> dict | None:
    f = path / "results.json"
    return json.loads(f.read_text()) if f.is_file() else None


CHAT_GROUPS = [("overall", "all"), ("en", "English questions"), ("zh", "Chinese questions"),
               ("audio_en", "English clips"), ("audio_zh", "Chinese clips")]


def _chat(path: Path) -> dict | None:
    """The rates of eval/chat_consistency.py, overall and per language (None when it was not run)."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {k: data[k] for k, _ in CHAT_GROUPS if k in data}


def read_robustness(path: Path) -> dict | None:
    """eval/robustness.py's CSV: the conditions in order, clips per condition, {(system, condition): UA}."""
    f = path / "robustness.csv"
    if not f.is_file():
        return None
    with open(f, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    return {"conditions": list(dict.fromkeys(r["condition"] for r in rows)), "n": int(rows[0]["n"]),
            "ua": {(r["system"], r["condition"]): float(r["UA"]) for r in rows}}


def robustness_values(per: dict) -> tuple[list[str], dict, int]:
    """The first seed's conditions, {(system, condition): [UA of each seed that has it]} in SYSTEMS order, and the
    number of seeds with a robustness table."""
    robs = [per[s]["robustness"] for s in per if per[s]["robustness"]]
    if not robs:
        return [], {}, 0
    conditions = robs[0]["conditions"]
    values = {(key, c): [r["ua"][key, c] for r in robs if (key, c) in r["ua"]]
              for key, _ in SYSTEMS for c in conditions}
    return conditions, {k: v for k, v in values.items() if v}, len(robs)


def robustness_means(per: dict) -> tuple[list[str], list[dict]]:
    """The first seed's conditions and, per system and condition, the mean UA over the seeds that have it."""
    conditions, values, _ = robustness_values(per)
    return conditions, [{"system": k, "condition": c, "UA": statistics.mean(v)} for (k, c), v in values.items()]


def cpu_seconds(path: Path) -> float | None:
    """user + sys seconds summed over a bash ``times`` output (lines like '1m2.500s 0m3.000s')."""
    if not path.is_file():
        return None
    parts = re.findall(r"(\d+)m([\d.]+)s", path.read_text())
    return sum(60 * int(m) + float(s) for m, s in parts) if parts else None


def head_info(seed_dir: Path, head: str) -> dict:
    from omegaconf import OmegaConf

    f = seed_dir / f"head_{head}" / "final" / "head" / "config.yaml"
    if not f.is_file():
        return {}
    data = OmegaConf.load(f)
    out = {"steps": int(data.head_stage.gen_ser.steps) if head.startswith("gen_ser") else None}
    if "parameters" in data:  # written by the head stage: head, trainable (head + tuned backbone parts), total
        out["trainable"] = int(data.parameters.trainable)
    try:
        from c2ser.training.head_stage import load_head

        module, _ = load_head(f.parent)
        out["params"] = sum(p.numel() for p in module.parameters())
    except (FileNotFoundError, ValueError, KeyError) as e:  # the table shows '–' for it; say why
        print(f"aggregate_seeds.py: {f.parent}: head not loadable, parameter count left out ({e})", file=sys.stderr)
    return out


def collect(exp: Path, seeds: list[str]) -> dict:
    per = {}
    for s in seeds:
        d = exp / f"seed{s}"
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: no such seed directory (run recipes/tiny/run.sh --seeds {s} first)")
        wall = json.loads((d / "wall.json").read_text()) if (d / "wall.json").is_file() else {}
        per[s] = {"test": {k: _results(d / "eval" / k) for k, _ in SYSTEMS},
                  "valid": {k: _results(d / "eval_valid" / k) for k, _ in SYSTEMS},
                  "valid2": {k: _results(d / "eval_valid2" / k) for k, _ in SYSTEMS},
                  **{h: head_info(d, h) for h, _, _ in HEADS},
                  "chat": _chat(d / "chat_consistency.json"), "robustness": read_robustness(d / "robustness"),
                  "cpu_s": cpu_seconds(d / "cpu_times.txt"), "wall_s": wall.get("wall_s"),
                  "stages": wall.get("stages")}
    return per


def table(per: dict) -> str:
    seeds = list(per)
    lines = [f"## Results: mean ± std over seeds {', '.join(seeds)} (synthetic test split; UA %, chance 25 %)", "",
             "| system | seeds | valid UA | valid2 UA | test UA | test n | style pitch | style volume | style pace |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key, name in SYSTEMS:
        tests = [per[s]["test"][key] for s in seeds if per[s]["test"][key]]
        valids = [per[s]["valid"][key] for s in seeds if per[s]["valid"][key]]
        valids2 = [per[s]["valid2"][key] for s in seeds if per[s]["valid2"][key]]
        if not tests and not valids and not valids2:
            continue
        style = []
        for attr in STYLE:
            vals = [t["style_accuracy"][attr] for t in tests  # c2ser eval: {attribute: accuracy}
                    if (t.get("style_accuracy") or {}).get(attr) is not None]
            style.append(mean_std(vals))
        n = tests[0]["n"] if tests else "–"
        lines.append(f"| {name} | {len(tests)} | {mean_std([v['UA'] for v in valids])} | "
                     f"{mean_std([v['UA'] for v in valids2])} | "
                     f"{mean_std([t['UA'] for t in tests])} | {n} | " + " | ".join(style) + " |")
    chats = [per[s]["chat"] for s in seeds if per[s]["chat"] and per[s]["chat"].get("overall", {}).get("n")]
    if chats:
        lines += ["", "Chat (`c2ser chat` on the stage-2 model: test clips balanced over languages and emotions, each "
                  "asked one EN and one ZH question, then a follow-up asking for the reasoning, all worded unlike any "
                  f"training prompt; {chats[0]['overall']['n']} conversations per seed), over {len(chats)} seeds:",
                  "", "| conversations | n per seed | same label as `c2ser predict` | follow-up same label | "
                  "answer in the question's language |", "|---|---|---|---|---|"]
        for group, label in CHAT_GROUPS:
            have = [c[group] for c in chats if (c.get(group) or {}).get("n")]
            if have:
                lines.append(f"| {label} | {have[0]['n']} | " + " | ".join(
                    mean_std([c[k] for c in have]) for k in ("same_label", "follow_up_same_label", "same_language"))
                    + " |")
    conditions, values, n_seeds = robustness_values(per)
    if values:
        n = next(per[s]["robustness"]["n"] for s in seeds if per[s]["robustness"])
        lines += ["", f"Test UA (%) under listening conditions (eval/robustness.py, the demo's stage 10: the {n} test "
                  "clips degraded per clip key, SNR = mean power of the whole clip over the noise's, reverb = RT60 in "
                  "s, telephone = 300–3400 Hz at 8 kHz; Emotion2Vec-S online on the degraded audio), over "
                  f"{n_seeds} seeds:", "",
                  "| system | seeds | " + " | ".join(conditions) + " |", "|---|---|" + "---|" * len(conditions)]
        for key, name in SYSTEMS:
            mine = [values.get((key, c), []) for c in conditions]
            if any(mine):
                lines.append(f"| {name} | {max(map(len, mine))} | " + " | ".join(map(mean_std, mine)) + " |")
    heads = [(h, kind, backbone) for h, kind, backbone in HEADS if any(per[s][h] for s in seeds)]
    if any(h.endswith("_lora") for h, _, _ in heads):
        lines += ["", "Heads (parameters as the head stage counted them; trainable = the head + the backbone parts it "
                  "tuned):", "", "| head | backbone | seeds | Gen-SER steps per seed (chosen on valid) | head "
                  "parameters | trainable parameters |", "|---|---|---|---|---|---|"]
        for h, kind, backbone in heads:
            have = [per[s][h] for s in seeds if per[s][h]]
            steps = ", ".join(str(i.get("steps")) for i in have) if h.startswith("gen_ser") else "–"
            lines.append(f"| {kind} | {backbone} | {len(have)} | {steps} | {have[0].get('params', '–')} | "
                         f"{have[0].get('trainable', '–')} |")
    lines += ["", "| seed | Gen-SER steps (chosen on valid) | Gen-SER params | CE params | wall s | CPU s (user+sys) |"
              " stages |", "|---|---|---|---|---|---|---|"]
    for s in seeds:
        p = per[s]
        lines.append(f"| {s} | {p['gen_ser'].get('steps', '–')} | {p['gen_ser'].get('params', '–')} | "
                     f"{p['ce'].get('params', '–')} | {p['wall_s'] if p['wall_s'] is not None else '–'} | "
                     f"{round(p['cpu_s']) if p['cpu_s'] is not None else '–'} | {p['stages'] or '–'} |")
    lines += ["", "valid: the validation split (every choice of the demo); valid2: a second validation split, the "
              "demo's former test split, whose scores steered the corpus; test: voices and sentences drawn by a rule "
              "fixed before any result on them (docs/demo.md, \"Protocol\").",
              "", "Style: accuracy of the pitch / volume / pace words of the explicit answers against the measured bins "
              "(each speaker's μ ± σ). The first seed's time includes data preparation, features and models; the "
              "other seeds reuse them."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="aggregate_seeds.py", description=__doc__.splitlines()[0])
    ap.add_argument("exp", help="the demo's experiment directory (holds seedS/ directories)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", help="write the Markdown here too")
    a = ap.parse_args(argv)
    try:
        per = collect(Path(a.exp), [s for s in a.seeds.split(",") if s])
        text = table(per)
    except (ValueError, FileNotFoundError, KeyError, json.JSONDecodeError) as e:
        print(f"aggregate_seeds.py: error: {e}", file=sys.stderr)
        return 1
    print(text)
    if a.out:
        Path(a.out).write_text(text)
        conditions, means = robustness_means(per)
        if means:  # UA against SNR, mean over the seeds (eval/robustness.py's plot)
            from robustness import plot

            plot(means, conditions, Path(a.out).with_name("robustness.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
