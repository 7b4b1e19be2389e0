"""A validation search's score: per condition, the mean over seeds of the mean over splits of UA, minus a target.

    python eval/search_margins.py RUN --seeds 0,1,2 [--splits valid valid2] [--system stage2-implicit]
        [--target clean=95 noise:white:20=90 noise:babble:20=90 noise:white:10=80 noise:babble:10=80]

Reads ``RUN/seedS/SPLIT/robustness.csv`` (``eval/robustness.py --out RUN/seedS/SPLIT``), prints a Markdown table
(per seed and split, then the means and standard deviations over seeds) and the smallest margin, the number the
demo's augmentation searches compare (docs/demo.md, "Choosing the augmentation on validation"). A missing file or
condition is an error naming it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from aggregate_seeds import read_robustness  # eval/aggregate_seeds.py: the CSV reader of the demo's RESULTS.md

DEFAULT_TARGETS = ["clean=95", "noise:white:20=90", "noise:babble:20=90", "noise:white:10=80", "noise:babble:10=80"]


def read_ua(path: Path, system: str) -> dict[str, float]:
    """{condition: UA %} of ``system`` in ``path/robustness.csv``."""
    table = read_robustness(path)
    if table is None:
        raise SystemExit(f"{path / 'robustness.csv'}: not found or empty (run eval/robustness.py --out {path})")
    got = {c: 100 * ua for (s, c), ua in table["ua"].items() if s == system}
    if not got:
        raise SystemExit(f"{path / 'robustness.csv'}: no rows of system {system!r}")
    return got


def margins(run: Path, seeds: list[str], splits: list[str], targets: dict[str, float],
            system: str = "stage2-implicit") -> tuple[dict, dict[str, float]]:
    """UA per (seed, split, condition) and, per condition, mean over seeds of the mean over splits minus its target."""
    ua = {}
    for s in seeds:
        for split in splits:
            path = run / f"seed{s}" / split
            got = read_ua(path, system)
            for c in targets:
                if c not in got:
                    raise SystemExit(f"{path / 'robustness.csv'}: no condition {c!r} (has {', '.join(got)})")
                ua[(s, split, c)] = got[c]
    out = {c: statistics.mean(statistics.mean(ua[(s, sp, c)] for sp in splits) for s in seeds) - t
           for c, t in targets.items()}
    return ua, out


def parse_targets(items: list[str]) -> dict[str, float]:
    targets = {}
    for item in items:
        cond, sep, value = item.rpartition("=")
        try:
            targets[cond] = float(value)
        except ValueError:
            sep = ""
        if not sep or not cond:
            raise SystemExit(f"--target {item}: expected CONDITION=UA, e.g. clean=95")
    return targets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--splits", nargs="+", default=["valid", "valid2"])
    ap.add_argument("--system", default="stage2-implicit")
    ap.add_argument("--target", nargs="+", default=DEFAULT_TARGETS)
    a = ap.parse_args(argv)
    seeds, targets = a.seeds.split(","), parse_targets(a.target)
    ua, m = margins(a.run, seeds, a.splits, targets, a.system)
    print("| seed | split | " + " | ".join(targets) + " |\n|---|---|" + "---|" * len(targets))
    for s in seeds:
        for sp in a.splits:
            print(f"| {s} | {sp} | " + " | ".join(f"{ua[(s, sp, c)]:.1f}" for c in targets) + " |")
    for sp in a.splits:
        print(f"| mean | {sp} | " + " | ".join(f"{statistics.mean(ua[(s, sp, c)] for s in seeds):.1f}"
                                              for c in targets) + " |")
    if len(seeds) > 1:  # the sample standard deviation over seeds, as the demo's tables report it
        for sp in a.splits:
            print(f"| std | {sp} | " + " | ".join(f"{statistics.stdev(ua[(s, sp, c)] for s in seeds):.1f}"
                                                 for c in targets) + " |")
    print("| margin | | " + " | ".join(f"{m[c]:+.2f}" for c in targets) + " |")
    worst, first = min(m, key=m.get), next(iter(targets))
    lowest = min((ua[(s, sp, first)], s, sp) for s in seeds for sp in a.splits)
    print(f"smallest margin {m[worst]:+.2f} ({worst}); lowest {first} UA of a seed and split: "
          f"{lowest[0]:.1f} (seed {lowest[1]}, {lowest[2]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
