#!/usr/bin/env bash
# The released system's size on this CPU machine, with random weights: write C2SER_llm.pt in the release's layout,
# predict and evaluate with it (official:, bf16), one update of stage 1 and of stage 2 with the full recipe's training
# settings (recipes/c2ser/conf/model.yaml + stage{1,2}.yaml: frozen bf16 Qwen2, LoRA, gradient checkpointing,
# dropouts; one process), and the Gen-SER head stage on 8 clips. Each step is one process; GNU time records its
# wall time and peak RSS (steps/NAME.time); the table compares them with estimate.json (bench/full_size_cpu.py).
#
#   bash bench/full_size_cpu.sh [--size full|small|tiny] [--work exp/full_size_cpu] [--max_new_tokens 8] \
#        [--steps prepare,write_official,predict,eval,train_stage1,train_stage2,head]
# A step that succeeded before (its steps/NAME.time says exit 0) is not run again; --steps picks the steps to run.
#
# full needs ~40 GB of disk (the official file 16 GiB, the Qwen2 directory 14 GiB, Whisper 3 GiB) and, by design,
# under 24 GB of memory at every step; nothing else should run meanwhile (the steps fill the machine's memory).
# Decoding is capped at --max_new_tokens (default 8): a random 7B model never emits its end token, and each new
# token reads all 16 GB of weights (memory-bound: a few seconds per token on a CPU); the cap is in the table title.
set -euo pipefail
cd "$(dirname "$0")/.."
size=full; work=exp/full_size_cpu; max_new_tokens=8; steps=all
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --max_new_tokens) max_new_tokens=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "unexpected argument: $1" >&2; exit 1 ;;
  esac
done
export HF_HUB_OFFLINE=1 DS_ACCELERATOR=cpu TOKENIZERS_PARALLELISM=false
mkdir -p "$work/steps"
w=$(cd "$work" && pwd)
conf=recipes/c2ser/conf

step() {  # step NAME COMMAND...: run it under GNU time, log in steps/NAME.log; skip when it already succeeded
  local name=$1; shift
  [ "$steps" = all ] || [[ ",$steps," == *",$name,"* ]] || return 0
  if [ -f "$w/steps/$name.time" ] && grep -q "Exit status: 0" "$w/steps/$name.time"; then
    echo "== $name: done before ($w/steps/$name.time)"; return 0
  fi
  echo "== $name: $*"
  if ! /usr/bin/time -v -o "$w/steps/$name.time" "$@" > "$w/steps/$name.log" 2>&1; then
    echo "$name failed: see $w/steps/$name.log" >&2; tail -5 "$w/steps/$name.log" >&2; exit 1
  fi
}

step prepare python bench/full_size_cpu.py prepare --work "$w" --size "$size"
[ -d "$w/qwen2" ] && python bench/full_size_cpu.py estimate --work "$w" --size "$size" > /dev/null
step write_official python bench/full_size_cpu.py write-official --work "$w" --size "$size"

official=(--checkpoint "official:$w/C2SER_llm.pt" --qwen2-dir "$w/qwen2" --ssl-checkpoint "$w/emotion2vec.pt"
          --device cpu --set llm.dtype=bfloat16 --set "whisper.name_or_path=$w/whisper.pt")
case $size in
  small) official+=(--set ssl.dim=512) ;;
  tiny) official+=(--set ssl.dim=48 --set adapter.num_blocks=2 --set adapter.ffn=128) ;;
esac
clip=$([ -f "$w/data/test.cot.jsonl" ] && python -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['audio'])" "$w/data/test.cot.jsonl")
step predict c2ser predict "$clip" "${official[@]}" --max-new-tokens "$max_new_tokens" --json
step eval c2ser eval "${official[@]}" --manifest "$w/data/test.cot.jsonl" --corpus synthetic --mode implicit \
  --max-new-tokens "$max_new_tokens" --out "$w/eval" --overwrite

# the full recipe's model and stage settings; only paths, the run length and data loading change
size_conf=""; [ "$size" = full ] || size_conf="model.ssl.dim=$([ "$size" = tiny ] && echo 48 || echo 512)"
train=(c2ser train --config $conf/model.yaml)
common=(model.whisper.name_or_path="$w/whisper.pt" model.llm.name_or_path="$w/qwen2"
        data.train_manifest="$w/data/train.cot.jsonl" data.feature_dir="$w/features" data.num_workers=0
        max_steps=1 optim.grad_accum=1 $size_conf)
step train_stage1 "${train[@]}" --config $conf/stage1.yaml "${common[@]}" output_dir="$w/stage1"
step train_stage2 "${train[@]}" --config $conf/stage2.yaml "${common[@]}" init_from="$w/stage1/final" \
  output_dir="$w/stage2"
step head c2ser train-head --config $conf/head.yaml backbone="$w/stage2/final" train_manifest="$w/data/train.cot.jsonl" \
  feature_dir="$w/features" corpus=synthetic epochs=1 batch_size=8 warmup=1 output_dir="$w/head"

echo
echo "Full-size CPU run, size=$size, decoding capped at $max_new_tokens new tokens, $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
python bench/full_size_cpu.py table --work "$w"
