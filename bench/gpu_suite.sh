#!/usr/bin/env bash
# One-shot benchmark suite for a machine with one GPU (random weights, nothing downloaded).
#
#   bash bench/gpu_suite.sh [--size full|small|tiny] [--device cuda|cpu] [--out DIR] [--only a,b,...]
#
# Runs, at --size (default full = Whisper-medium + Qwen2-7B architecture, bf16):
#   training     a stage-1 training step at the official caps (3900 frames / 1900 tokens, LoRA, gradient
#                checkpointing): samples/s, padded frames, peak GPU memory        (bench/training.py)
#   evaluation   Emo-Emilia-sized evaluation throughput: 1400 clips with Emo-Emilia's durations (estimated from
#                its transcripts, ../shared/data/emo_emilia when present), batched greedy (bench/evaluation.py)
#   heads        Gen-SER vs CE head vs implicit / explicit AR decoding: latency and clips/s (bench/heads.py)
#   emotion2vec  Emotion2Vec-S extraction, ours per clip / bucketed batches vs FunASR (bench/emotion2vec.py)
#   whisper      variable-length Whisper encoder vs 30-s padding (bench/whisper_encoder.py)
# Each stage has a time limit (the whole suite stays under 8 minutes); a stage that fails or times out is
# recorded as such and the suite goes on. Output: DIR/<stage>.json and DIR/<stage>.log, DIR/summary.json (every
# stage's status, seconds and results) and DIR/tables.md (the Markdown tables).
#
# Exit codes: 0 = suite ran (see summary.json for each stage's status) or, with --device cuda on a machine without
# CUDA, nothing was run (one line on stderr, no output written); 2 = bad arguments.
# CI: bash bench/gpu_suite.sh --size tiny --device cpu --out /tmp/suite   (tests/test_gpu_suite.py)
set -u
size=full device=cuda out=bench-results only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "gpu_suite: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$size" in tiny|small|full) ;; *) echo "gpu_suite: --size must be tiny, small or full" >&2; exit 2 ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-python}"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "${device%%:*}" = cuda ] && ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_suite: no CUDA device on this machine: nothing run (rehearse with --size tiny --device cpu)" >&2
  exit 0
fi
mkdir -p "$out"
emilia="${C2SER_SHARED:-$root/../shared}/data/emo_emilia/Emo-Emilia-ALL.jsonl"   # the real duration list, if present
# per size: the stage arguments (small problems at tiny so that CI takes seconds, the real ones at full)
if [ "$size" = tiny ]; then
  train_args="--clips 8 --repeats 1"; eval_args="--clips 8 --repeats 1"; heads_args="--random --repeats 1 --latency-clips 1 --steps 1 --explicit-tokens 8"
    e2v_args="--clips 2 --repeats 1"; whisper_args="--repeats 1 --seconds 2 --batch 2"
else
  train_args="--clips 32 --repeats 1"; eval_args="--clips 1400 --repeats 1"; heads_args="--repeats 2 --latency-clips 8"
  e2v_args="--clips 16 --repeats 3 --dtype auto"; whisper_args="--repeats 3"
fi
stages="training evaluation heads emotion2vec whisper"
[ -n "$only" ] && stages="$(echo "$only" | tr ',' ' ')"
for stage in $stages; do
  case "$stage" in
    # time limits (s) sum to 460: the suite ends within 8 minutes whatever happens
    training) cmd="$here/training.py $train_args"; limit=100 ;;
    evaluation) cmd="$here/evaluation.py $eval_args --batched-only --durations $emilia"; limit=120 ;;
    heads) cmd="$here/heads.py $heads_args"; limit=90 ;;
    emotion2vec) cmd="$here/emotion2vec.py $e2v_args"; limit=90 ;;
    whisper) cmd="$here/whisper_encoder.py $whisper_args"; limit=60 ;;
    *) echo "gpu_suite: unknown stage $stage" >&2; exit 2 ;;
  esac
  start=$SECONDS
  # shellcheck disable=SC2086
  timeout "$limit" "$py" $cmd --size "$size" --device "$device" --json "$out/$stage.json" > "$out/$stage.log" 2>&1
  rc=$?
  echo "{\"stage\": \"$stage\", \"rc\": $rc, \"seconds\": $((SECONDS - start))}" > "$out/$stage.status"
  echo "gpu_suite: $stage: rc=$rc" >&2
done
"$py" - "$out" "$size" "$device" $stages <<'EOF'
import json, sys
from pathlib import Path
out, size, device, stages = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
summary = {"size": size, "device": device, "stages": {}}
tables = [f"# Benchmark suite: size={size}, device={device}\n"]
for s in stages:
    st = json.loads((out / f"{s}.status").read_text())
    res = json.loads((out / f"{s}.json").read_text()) if (out / f"{s}.json").is_file() else None
    status = "ok" if st["rc"] == 0 and res else ("timeout" if st["rc"] == 124 else "failed")
    summary["stages"][s] = {"status": status, "rc": st["rc"], "seconds": round(st["seconds"], 1), "result": res}
    tables.append(f"## {s} ({status}, {st['seconds']:.0f} s)\n")
    if res:
        tables.append(res["title"] + "\n")
        tables.append("| " + " | ".join(res["header"]) + " |\n|" + "---|" * len(res["header"]))
        tables += ["| " + " | ".join(str(c) for c in r) + " |" for r in res["rows"]]
    else:
        tables.append(f"no result (rc {st['rc']}); see {s}.log")
    tables.append("")
summary["total_seconds"] = round(sum(v["seconds"] for v in summary["stages"].values()), 1)
(out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
(out / "tables.md").write_text("\n".join(tables) + "\n")
print(f"gpu_suite: {sum(v['status'] == 'ok' for v in summary['stages'].values())}/{len(stages)} stages ok in "
      f"{summary['total_seconds']:.0f} s → {out}/summary.json, {out}/tables.md")
EOF
