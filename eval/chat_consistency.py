"""Does ``c2ser chat`` agree with ``c2ser predict``? Scripted chat questions on test clips, scored against predict.

    python eval/chat_consistency.py --checkpoint exp/tiny/seed0/stage2/final \\
        --manifest exp/tiny/seed0/data/synthetic/test.cot.jsonl --feature-dir exp/tiny/seed0/features [--limit 40] \\
        [--out exp/tiny/seed0/chat_consistency.json]

The clips (``--limit``) are balanced over the manifest's languages and emotions (``balanced_rows``: an equal share
per language × emotion cell, spread evenly within each cell). For each clip, ``predict_files`` (what ``c2ser
predict`` runs: the implicit prompt, greedy) gives the reference label. Then, per question language, a fresh
:class:`ChatSession` asks a question and a follow-up asking for the reasoning, both worded unlike every training
prompt of c2ser/prompts.py (``QUESTIONS``, ``FOLLOW_UPS``; tests/test_demo_chat.py checks it). Reported overall, per
question language (``en``, ``zh``) and per clip language (``audio_en``, ``audio_zh``): the rate at which the first
answer's parsed label equals predict's (``same_label``; an unparsed answer never counts), the rate at which the
follow-up's label does too (``follow_up_same_label``), and the rate at which the answer is in the question's language
(``same_language``: Chinese characters outside quotes iff the question is Chinese). Prints a table; ``--out`` writes JSON with every answer.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

QUESTIONS = {"en": "Can you tell me which emotion the speaker has?", "zh": "你能听出录音里这个人的感受吗？"}
FOLLOW_UPS = {"en": "Which cues in the voice led you to that answer?", "zh": "你是根据声音里的哪些特点得出这个结论的？"}
GROUPS = ("overall", "en", "zh", "audio_en", "audio_zh")
CJK = re.compile(r"[\u4e00-\u9fff]")
QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")


def answer_language(text: str) -> str:
    """'zh' when the answer has Chinese characters outside quotes (the quoted words may be either language)."""
    return "zh" if CJK.search(QUOTED.sub("", text)) else "en"


def balanced_rows(rows: list[dict], limit: int | None) -> list[dict]:
    """``limit`` rows with an equal share per (language, emotion) cell (the first cells in sorted order get one more
    when it does not divide), spread evenly within each cell; a cell with fewer rows gives all of them."""
    if not limit or len(rows) <= limit:
        return rows
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r.get("language", ""), r["emotion"]), []).append(r)
    keys = sorted(cells)
    share = {k: limit // len(keys) + (i < limit % len(keys)) for i, k in enumerate(keys)}
    out = []
    for k in keys:
        cell, n = cells[k], min(share[k], len(cells[k]))
        out += [cell[i * len(cell) // n] for i in range(n)]
    return out


def rates(records: list[dict]) -> dict:
    n = len(records)
    if not n:
        return {"n": 0}
    # an unparsed answer (label None) agrees with nothing, not even an unparsed predict
    return {"n": n, "same_label": sum(r["label"] is not None and r["label"] == r["predict"] for r in records) / n,
            "follow_up_same_label": sum(r["follow_up_label"] is not None and r["follow_up_label"] == r["predict"]
                                        for r in records) / n,
            "same_language": sum(answer_language(r["answer"]) == r["language"] for r in records) / n}


def run(checkpoint: str, manifest: str, feature_dir: str | None, limit: int | None = None) -> dict:
    from c2ser.data.manifest import read_manifest
    from c2ser.evaluation.parse import parse_emotion
    from c2ser.inference.chat import ChatSession
    from c2ser.inference.loading import load_for_inference
    from c2ser.inference.predict import predict_files

    rows = balanced_rows(read_manifest(manifest), limit)
    if not rows:
        raise ValueError(f"{manifest}: no clips")
    model, processor = load_for_inference(checkpoint, None, "cpu", [], None)
    preds = predict_files(model, processor, [r["audio"] for r in rows], mode="implicit", ssl_features=feature_dir,
                          max_new_tokens=64)
    chat = ChatSession(model, processor, "implicit", max_new_tokens=96, ssl_features=feature_dir)
    records = []
    for r, p in zip(rows, preds):
        if p.error:
            raise ValueError(p.error)
        for lang, question in QUESTIONS.items():
            chat.load_audio(r["audio"])
            answer = chat.ask(question)
            follow = chat.ask(FOLLOW_UPS[lang])
            records.append({"key": r["key"], "emotion": r["emotion"], "predict": p.emotion, "language": lang,
                            "clip_language": r.get("language"), "question": question, "answer": answer,
                            "label": parse_emotion(answer).label,
                            "follow_up": follow, "follow_up_label": parse_emotion(follow).label})
    result = {"checkpoint": checkpoint, "manifest": manifest, "clips": len(rows), "overall": rates(records),
              **{lang: rates([x for x in records if x["language"] == lang]) for lang in QUESTIONS},
              **{f"audio_{lang}": rates([x for x in records if x["clip_language"] == lang]) for lang in QUESTIONS}}
    result["records"] = records
    return result


def table(result: dict) -> str:
    lines = ["| conversations | n | same label as predict % | follow-up same label % | answer in question's "
             "language % |", "|---|---|---|---|---|"]
    names = {"en": "English questions", "zh": "Chinese questions", "audio_en": "English clips",
             "audio_zh": "Chinese clips", "overall": "all"}
    for name in ("en", "zh", "audio_en", "audio_zh", "overall"):
        r = result[name]
        if r["n"]:
            lines.append(f"| {names[name]} | {r['n']} | {100 * r['same_label']:.1f} | "
                         f"{100 * r['follow_up_same_label']:.1f} | {100 * r['same_language']:.1f} |")
    first = result["records"][0]
    lines += ["", f"e.g. {first['key']} ({first['emotion']}; predict: {first['predict']}): "
                  f"{first['question']} → {first['answer']} | {FOLLOW_UPS[first['language']]} → {first['follow_up']}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="chat_consistency.py", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--manifest", required=True, help="test manifest (audio paths; keys name the feature files)")
    ap.add_argument("--feature-dir", help="cached Emotion2Vec-S features (<dir>/<audio file stem>.npy)")
    ap.add_argument("--limit", type=int, default=40,
                    help="N clips balanced over the manifest's languages and emotions")
    ap.add_argument("--out", help="write the rates and every answer as JSON here")
    a = ap.parse_args(argv)
    try:
        result = run(a.checkpoint, a.manifest, a.feature_dir, a.limit)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"chat_consistency.py: error: {e}", file=sys.stderr)
        return 1
    print(table(result))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
