"""Add measured style (pitch, loudness, rate and their bins) and chain-of-thought targets to a manifest.

    python data_prep/cot_labels.py --manifest data/x/train.jsonl --out data/x/train.cot.jsonl [--group-by speaker]
    python data_prep/cot_labels.py --manifest data/x/test.jsonl --out data/x/test.cot.jsonl [--group-by speaker] \\
        --stats-from data/x/train.cot.jsonl   # bin test clips at the training set's μ ± σ

Rows are checked before anything is measured; rejected rows go to ``<out>.rejects.jsonl`` with the reason and
never enter the μ ± σ statistics:
  * an emotion label that is not canonical (``c2ser.labels.EMOTIONS``) — also reported on stderr as
    ``MANIFEST:LINE: unknown emotion label ...``; a row without key or audio;
  * unreadable audio; clips shorter than 0.3 s (``c2ser.data.cot.MIN_SECONDS``: too short to measure);
  * clips whose pitch, loudness or rate is not finite (e.g. silence: no voiced frame).
``--stats-from`` takes a manifest already measured by this script (e.g. the training set's output): its finite
measurements give the global μ ± σ and, with ``--group-by``, each group's; a group (speaker) absent from it is
binned at its global μ ± σ (the count is printed). Re-running reuses the measurements present in the input rows;
a killed run's measurements are kept in ``<out>.measured.jsonl`` (one line per clip, a torn last line dropped)
and reused by the next run; the output manifest and rejects are written atomically (complete or absent).
Prints kept / rejected counts (kept + rejected = input). Exit 1 with one ``cot_labels.py: error: ...`` line for a
missing, non-UTF-8 or malformed manifest, a stats manifest without measurements, or when no row is kept.
"""
import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from c2ser.atomic import append_line, atomic_write_jsonl, is_write_failure, read_jsonl, write_error
from c2ser.audio import AudioError, load_audio
from c2ser.data.cot import (add_bins, check_row, hf_rewriter, measurable, measure, measurement_problem, style_stats,
                            targets)
from c2ser.data.manifest import Rejects, read_rows_numbered, summary, write_manifest

SHOW_LABEL_ERRORS = 5  # stderr lines for unknown labels; the rest are counted (all are in the rejects file)


class MeasureCache:
    """``<out>.measured.jsonl``: each clip's measured style, appended as soon as it is known, so a killed run
    measures only what is left; a torn last line is dropped (``c2ser.atomic.read_jsonl``). Removed at the end."""

    def __init__(self, path: Path):
        self.path, self.styles = path, {}
        if path.is_file():
            rows, torn = read_jsonl(path, "measurement cache")
            if torn:  # rewritten without the torn piece, or the next line would be appended to it
                atomic_write_jsonl(path, rows)
            for row in rows:
                self.styles[self._id(row)] = row.get("style")
        self._f = None

    @staticmethod
    def _id(r: dict) -> str:
        """What a measurement depends on (the rate counts the text's syllables in its language)."""
        return json.dumps([r.get(f) for f in ("key", "audio", "channel", "start", "end", "text", "language")])

    def get(self, r: dict) -> dict | None:
        return self.styles.get(self._id(r))

    def add(self, r: dict) -> None:
        if self._f is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(self.path, "a", encoding="utf-8")
            except OSError as e:
                if is_write_failure(e):
                    raise write_error(self.path, e) from None
                raise
        fields = ("key", "audio", "channel", "start", "end", "text", "language", "style")
        append_line(self._f, json.dumps({f: r.get(f) for f in fields}, ensure_ascii=False), self.path)

    def remove(self) -> None:
        if self._f is not None:
            self._f.close()
        self.path.unlink(missing_ok=True)


def load_stats(path: str, group_by: str | None) -> dict:
    rows = [r for _, r in read_rows_numbered(path)]
    measured = [r for r in rows if measurement_problem(r.get("style")) is None]
    if not measured:
        raise ValueError(f"{path}: no measured style in its {len(rows)} rows "
                         "(--stats-from needs a manifest written by cot_labels.py)")
    return style_stats(measured, group_by)


def run(a) -> None:
    numbered = read_rows_numbered(a.manifest)
    stats = load_stats(a.stats_from, a.group_by) if a.stats_from else None
    rejects = Rejects(Path(a.out).with_suffix(".rejects.jsonl"))
    todo, label_errors = [], 0
    for n, r in numbered:  # labels and fields first: nothing is measured for a row that would fail later
        problem = check_row(r)
        if problem is None:
            todo.append(r)
            continue
        rejects.add(r.get("key") or f"line-{n}", f"{a.manifest}:{n}", problem)
        if problem.startswith("unknown emotion"):
            label_errors += 1
            if label_errors <= SHOW_LABEL_ERRORS:
                print(f"{a.manifest}:{n}: {problem}", file=sys.stderr)
    if label_errors > SHOW_LABEL_ERRORS:
        print(f"{a.manifest}: {label_errors - SHOW_LABEL_ERRORS} more unknown emotion labels (see {rejects.path})",
              file=sys.stderr)
    kept = []
    cache = MeasureCache(Path(a.out).with_suffix(".measured.jsonl"))
    for r in tqdm(todo, desc="measure", disable=None):
        if measurement_problem(r.get("style")) is not None:
            r["style"] = cache.get(r)
        if measurement_problem(r.get("style")) is not None:
            try:
                wav = load_audio(r["audio"], channel=r.get("channel"), start=r.get("start"), end=r.get("end"))
            except AudioError as e:
                rejects.add(r["key"], r["audio"], str(e))
                continue
            short = measurable(wav)
            if short:
                rejects.add(r["key"], r["audio"], short)
                continue
            r["style"] = measure(wav, r.get("text") or "", r.get("language") or "en")
            cache.add(r)
        problem = measurement_problem(r["style"])
        if problem:
            rejects.add(r["key"], r["audio"], problem)
            continue
        kept.append(r)
    rejects.write()
    if not kept:
        raise ValueError(f"{a.manifest}: no clip kept ({len(rejects.items)} rejected, reasons in {rejects.path})")
    fallback = add_bins(kept, a.group_by, stats)
    rewrite = hf_rewriter(a.rewrite_llm) if a.rewrite_llm else None
    for r in kept:
        r["explicit_target"], r["implicit_target"] = targets(r, rewrite)
    write_manifest(kept, a.out)
    cache.remove()
    line = summary(kept, rejects, a.out)
    if a.stats_from:
        line += f"; bins from {a.stats_from}"
        if a.group_by:
            line += f" ({fallback} clips of {a.group_by} values absent there binned at its global μ ± σ)"
    print(line)


def main():
    ap = argparse.ArgumentParser(prog="cot_labels.py", description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--group-by", help="compute the μ ± σ bins within each value of this field (e.g. speaker)")
    ap.add_argument("--stats-from", help="bin at the μ ± σ of this already-measured manifest (e.g. train.cot.jsonl)")
    ap.add_argument("--rewrite-llm", help="local instruct-LLM directory to paraphrase the explicit targets")
    a = ap.parse_args()
    try:
        run(a)
    except (ValueError, OSError) as e:
        sys.exit(f"cot_labels.py: error: {e}")


if __name__ == "__main__":
    main()
