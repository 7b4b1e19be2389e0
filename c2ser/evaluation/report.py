"""Scoring a predictions file and writing results: JSON (everything), Markdown table, confusion PNG + CSV.

A prediction row has ``key``, ``emotion`` (reference), and either ``prediction`` (free text, parsed here)
or ``label`` (a head's class), plus optional ``language``, ``fold``, ``style`` (measured bins).
Every report file is written atomically (``c2ser.atomic``): complete or absent.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from c2ser.atomic import atomic_path, atomic_write_json, atomic_write_text, remove_leftovers
from c2ser.evaluation.metrics import ser_metrics
from c2ser.evaluation.parse import parse_emotion
from c2ser.evaluation.style import parse_style
from c2ser.labels import corpus_classes

def score_predictions(rows: list[dict], corpus: str, group_by: str | None = None) -> dict:
    """Metrics overall and per group (``language`` or ``fold``), unparsed examples, style accuracy."""
    classes = corpus_classes(corpus)
    preds, reasons = [], defaultdict(int)
    for r in rows:
        if "label" in r and r.get("label") is not None and "prediction" not in r:
            res = parse_emotion(r["label"], classes)
        else:
            res = parse_emotion(r.get("prediction") or "", classes)
        preds.append(res.label if res.valid else None)
        if not res.valid:
            reasons[res.reason.split(":")[0]] += 1
    refs = [r["emotion"] for r in rows]
    result = {"corpus": corpus, "classes": classes, **ser_metrics(refs, preds, classes),
              "unparsed_reasons": dict(reasons)}
    result["hallucination_rate"] = result["unparsed_rate"]
    if group_by:
        groups = defaultdict(list)
        for i, r in enumerate(rows):
            groups[str(r.get(group_by))].append(i)
        result["groups"] = {g: ser_metrics([refs[i] for i in idx], [preds[i] for i in idx], classes)
                            for g, idx in sorted(groups.items())}
    styled = [r for r in rows if r.get("style") and r.get("mode", "explicit") == "explicit" and r.get("prediction")]
    if styled:
        acc = {}
        for field in ("pitch", "pace", "volume"):
            pairs = [(r["style"].get(f"{field}_bin"), parse_style(r["prediction"])[field]) for r in styled
                     if r["style"].get(f"{field}_bin")]
            if pairs:
                acc[field] = sum(a == b for a, b in pairs) / len(pairs)
        result["style_accuracy"] = acc
    return result


REPORT_FILES = ("results.json", "confusion.csv", "confusion.png", "results.md")


def write_report(result: dict, out_dir: str | Path, title: str = "", settings: dict | None = None) -> Path:
    """results.json, results.md, confusion.csv and confusion.png in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in REPORT_FILES:  # what a report killed while writing left half done: never read, written again below
        remove_leftovers(out, name)
    full = {**result, "decoding": settings or {}}
    atomic_write_json(out / "results.json", full, indent=1, ensure_ascii=False)
    conf = result["confusion"]
    with atomic_path(out / "confusion.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["reference \\ prediction", *conf["cols"]])
        for name, row in zip(conf["rows"], conf["matrix"]):
            w.writerow([name, *row])
    fig, ax = plt.subplots(figsize=(1 + 0.8 * len(conf["cols"]), 1 + 0.7 * len(conf["rows"])))
    ax.imshow(conf["matrix"], cmap="Blues")
    ax.set_xticks(range(len(conf["cols"])), conf["cols"], rotation=45, ha="right")
    ax.set_yticks(range(len(conf["rows"])), conf["rows"])
    for i, row in enumerate(conf["matrix"]):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("reference")
    ax.set_title(title or result["corpus"])
    fig.tight_layout()
    with atomic_path(out / "confusion.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    lines = [f"# {title or result['corpus']}", "", "| set | n | WA | UA | macro-F1 | unparsed |", "|---|---|---|---|---|---|"]
    rows = [("all", result)] + list(result.get("groups", {}).items())
    for name, m in rows:
        lines.append(f"| {name} | {m['n']} | {100 * m['WA']:.2f} | {100 * m['UA']:.2f} | {100 * m['macro_F1']:.2f} | "
                     f"{100 * m['unparsed_rate']:.2f} |")
    if result.get("style_accuracy"):
        lines += ["", "Style description accuracy: " + ", ".join(f"{k} {100 * v:.1f} %"
                                                             for k, v in result["style_accuracy"].items())]
    if settings:
        lines += ["", "Decoding: " + ", ".join(f"{k}={v}" for k, v in settings.items())]
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    return out
