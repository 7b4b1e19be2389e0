"""Does ``c2ser chat`` agree with ``c2ser predict``? Scripted chat questions on test clips, scored against predict.

    python eval/chat_consistency.py --checkpoint exp/tiny/seed0/stage2/final \\
        --manifest exp/tiny/seed0/data/synthetic/test.cot.jsonl --feature-dir exp/tiny/seed0/features [--limit 40] \\
        [--out exp/tiny/seed0/chat_consistency.json]

For each clip, ``predict_files`` (what ``c2ser predict`` runs: the implicit prompt, greedy) gives the reference label.
Then, per language, a fresh :class:`ChatSession` asks a question worded differently from every training prompt
(``QUESTIONS``) and the follow-up "why?" (``FOLLOW_UPS``). Reported, per language and overall: the rate at which the
first answer's parsed label equals predict's (``same_label``), the rate at which the follow-up's label does too
(``follow_up_same_label``), and the rate at which the answer is in the question's language (``same_language``: Chinese
characters outside quotes iff the question is Chinese). Prints a table; ``--out`` writes JSON with every answer.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

QUESTIONS = {"en": "Can you tell me which emotion the speaker has?", "zh": "你觉得说话人是什么情绪？"}
FOLLOW_UPS = {"en": "Why do you think so?", "zh": "为什么这么认为？"}
CJK = re.compile(r"[\u4e00-\u9fff]")
QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")


def answer_language(text: str) -> str:
    """'zh' when the answer has Chinese characters outside quotes (the quoted words may be either language)."""
    return "zh" if CJK.search(QUOTED.sub("", text)) else "en"


def rates(records: list[dict]) -> dict:
    n = len(records)
    if not n:
        return {"n": 0}
    return {"n": n, "same_label": sum(r["label"] == r["predict"] for r in records) / n,
            "follow_up_same_label": sum(r["follow_up_label"] == r["predict"] for r in records) / n,
            "same_language": sum(answer_language(r["answer"]) == r["language"] for r in records) / n}


def run(checkpoint: str, manifest: str, feature_dir: str | None, limit: int | None = None) -> dict:
    from c2ser.data.manifest import read_manifest
    from c2ser.evaluation.parse import parse_emotion
    from c2ser.inference.chat import ChatSession
    from c2ser.inference.loading import load_for_inference
    from c2ser.inference.predict import predict_files

    rows = read_manifest(manifest)
    if limit and len(rows) > limit:  # evenly spread: a manifest sorted by emotion gives every emotion its share
        rows = [rows[i * len(rows) // limit] for i in range(limit)]
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
                            "question": question, "answer": answer, "label": parse_emotion(answer).label,
                            "follow_up": follow, "follow_up_label": parse_emotion(follow).label})
    result = {"checkpoint": checkpoint, "manifest": manifest, "clips": len(rows),
              "overall": rates(records), **{lang: rates([x for x in records if x["language"] == lang])
                                            for lang in QUESTIONS}}
    result["records"] = records
    return result


def table(result: dict) -> str:
    lines = ["| questions | n | same label as predict % | follow-up same label % | answer in question's language % |",
             "|---|---|---|---|---|"]
    for name in ("en", "zh", "overall"):
        r = result[name]
        if r["n"]:
            lines.append(f"| {name} | {r['n']} | {100 * r['same_label']:.1f} | {100 * r['follow_up_same_label']:.1f} | "
                         f"{100 * r['same_language']:.1f} |")
    first = result["records"][0]
    lines += ["", f"e.g. {first['key']} ({first['emotion']}; predict: {first['predict']}): "
                  f"{first['question']} → {first['answer']} | {FOLLOW_UPS[first['language']]} → {first['follow_up']}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="chat_consistency.py", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--manifest", required=True, help="test manifest (audio paths; keys name the feature files)")
    ap.add_argument("--feature-dir", help="cached Emotion2Vec-S features (<dir>/<audio file stem>.npy)")
    ap.add_argument("--limit", type=int, default=40, help="N clips spread evenly over the manifest")
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
