"""Score checkpoints under listening conditions: a table (Markdown + CSV) and a plot of UA against SNR.

    python eval/robustness.py --checkpoint exp/tiny/seed0/stage2/final exp/tiny/seed0/head_gen_ser/final \\
        --mode implicit gen-ser --name "stage 2 implicit" "Gen-SER" \\
        --manifest exp/tiny/seed0/data/synthetic/test.cot.jsonl --corpus synthetic \\
        --ssl-checkpoint exp/tiny/seed0/models/emotion2vec-tiny-random.pt --feature-dir exp/tiny/seed0/features \\
        --conditions clean noise:white:20 noise:white:10 noise:babble:20 noise:babble:10 reverb:0.6 telephone \\
        --out exp/tiny/seed0/robustness

Each system (a checkpoint and its answer mode; ``--mode`` and ``--name`` give one value each or one for all) is
loaded once and evaluated under every condition with ``c2ser eval``'s own function
(:func:`c2ser.evaluation.run.evaluate`, ``--condition`` semantics: drawn per clip key, Emotion2Vec-S online on the
degraded audio, so ``--ssl-checkpoint`` is needed when the model uses SSL features; ``--feature-dir`` is used for
``clean`` only). Per run: ``OUT/<system>/<condition>/`` (predictions, resumable, and report files). Summary:
``OUT/robustness.csv`` (one row per system × condition), ``OUT/robustness.md`` (UA %, systems × conditions) and
``OUT/robustness.png`` (UA against SNR, one line per system and noise kind; the clean score at the right).
Bad input: one ``robustness.py: error: ...`` line, exit 1 (conditions are checked before any model is loaded).
"""
from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

DEFAULT_CONDITIONS = ["clean", "noise:white:20", "noise:white:10", "noise:babble:20", "noise:babble:10",
                      "reverb:0.6", "telephone"]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "system"


def per_system(values: list[str] | None, n: int, what: str, default: list[str]) -> list[str]:
    """One value per system: ``values`` (one for all, or one each) or ``default``."""
    values = values or default
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{len(values)} {what} for {n} checkpoints: give one, or one per checkpoint")
    return values


def robustness(checkpoints: list[str], manifest: str, corpus: str, conditions: list[str], out: str,
               modes: list[str] | None = None, names: list[str] | None = None, ssl_checkpoint: str | None = None,
               feature_dir: str | None = None, device: str = "auto", max_new_tokens: int | None = None,
               limit: int | None = None, overrides: list[str] = ()) -> list[dict]:
    """Evaluate every (system, condition); write the CSV, Markdown and PNG summaries; return their rows."""
    from c2ser.data.augment import parse_condition
    from c2ser.evaluation.run import evaluate
    from c2ser.inference.loading import load_for_inference

    for c in conditions:
        parse_condition(c)
    modes = per_system(modes, len(checkpoints), "modes", ["implicit"])
    names = names or [f"{Path(c).parent.name}/{m}" for c, m in zip(checkpoints, modes)]
    if len(names) != len(checkpoints):
        raise ValueError(f"{len(names)} names for {len(checkpoints)} checkpoints: give one per checkpoint")
    if len(set(names)) < len(names):
        raise ValueError(f"--name {' '.join(names)}: two systems share a name")
    rows = []
    for ckpt, mode, name in zip(checkpoints, modes, names):
        loaded = load_for_inference(ckpt, ssl_checkpoint, device, list(overrides))
        for c in conditions:
            r = evaluate(ckpt, manifest, corpus, str(Path(out) / slug(name) / slug(c)), mode,
                         feature_dir if c == "clean" else None, max_new_tokens=max_new_tokens, device=device,
                         limit=limit, overrides=list(overrides), ssl_checkpoint=ssl_checkpoint, loaded=loaded,
                         condition=c)
            rows.append({"system": name, "checkpoint": ckpt, "mode": mode, "condition": c, "n": r["n"],
                         "UA": r["UA"], "WA": r["WA"], "macro_F1": r["macro_F1"],
                         "unparsed_rate": r["unparsed_rate"]})
            print(f"{name} · {c}: UA {100 * r['UA']:.2f} (n={r['n']})")
        del loaded
    write_summary(rows, conditions, Path(out))
    return rows


def write_summary(rows: list[dict], conditions: list[str], out: Path) -> None:
    """robustness.csv, robustness.md (UA %, systems × conditions) and robustness.png."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "robustness.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    systems = list(dict.fromkeys(r["system"] for r in rows))
    ua = {(r["system"], r["condition"]): r["UA"] for r in rows}
    lines = ["| system | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
    for s in systems:
        lines.append(f"| {s} | " + " | ".join(f"{100 * ua[s, c]:.1f}" for c in conditions) + " |")
    n = rows[0]["n"]
    (out / "robustness.md").write_text(f"UA % on {n} clips per condition (SNR over the whole clip; reverb: RT60 in "
                                       "s; telephone: 300–3400 Hz at 8 kHz)\n\n" + "\n".join(lines) + "\n")
    plot(rows, conditions, out / "robustness.png")


def plot(rows: list[dict], conditions: list[str], path: Path) -> None:
    """UA against SNR: one line per system and noise kind, the clean score at the right end of each line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from c2ser.data.augment import parse_condition

    noise = {c: parse_condition(c)[0][1:] for c in conditions
             if len(parse_condition(c)) == 1 and parse_condition(c)[0][0] == "noise"}
    snrs = sorted({snr for _, snr in noise.values()})
    clean_x = (max(snrs) + 10) if snrs else 0.0
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for s in dict.fromkeys(r["system"] for r in rows):
        mine = {r["condition"]: r["UA"] for r in rows if r["system"] == s}
        for kind in dict.fromkeys(k for k, _ in noise.values()):
            pts = sorted((snr, 100 * mine[c]) for c, (k, snr) in noise.items() if k == kind)
            if "clean" in mine:
                pts.append((clean_x, 100 * mine["clean"]))
            ax.plot(*zip(*pts), marker="o", label=f"{s} · {kind}")
        if not noise and "clean" in mine:
            ax.plot([clean_x], [100 * mine["clean"]], marker="o", label=s)
    if snrs:
        with_clean = "clean" in conditions
        ax.set_xticks(snrs + [clean_x] * with_clean, [f"{x:g}" for x in snrs] + ["clean"] * with_clean)
    ax.set_xlabel("SNR (dB, whole clip)")
    ax.set_ylabel("UA (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="robustness.py", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, nargs="+", help="checkpoint directories (a head stage's for gen-ser)")
    p.add_argument("--mode", nargs="+", help="answer mode per checkpoint (or one for all): implicit | explicit | "
                                             "gen-ser; default implicit")
    p.add_argument("--name", nargs="+", help="system name per checkpoint (default: checkpoint's parent/mode)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--corpus", required=True)
    p.add_argument("--conditions", nargs="+", default=DEFAULT_CONDITIONS,
                   help=f"condition specs (c2ser eval --condition); default: {' '.join(DEFAULT_CONDITIONS)}")
    p.add_argument("--out", required=True)
    p.add_argument("--ssl-checkpoint", help="Emotion2Vec-S checkpoint (features online: needed under conditions)")
    p.add_argument("--feature-dir", help="cached Emotion2Vec-S features, used for the clean condition only")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--limit", type=int, help="the first N clips only")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    try:
        robustness(args.checkpoint, args.manifest, args.corpus, args.conditions, args.out, args.mode, args.name,
                   args.ssl_checkpoint, args.feature_dir, args.device, args.max_new_tokens, args.limit,
                   args.overrides)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"robustness.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
