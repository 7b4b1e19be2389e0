#!/usr/bin/env bash
# The end-to-end CPU demo (`make demo`): the C2SER recipe (recipes/c2ser/run.sh) at --size tiny, with an overlay:
# the synthetic emotional-speech corpus (espeak-ng + sox, 4 emotions; valid, valid2 and test use held-out sentences
# and held-out voices, disjoint from each other and from training; docs/demo.md says which split chose what), one
# fp32 process (recipes/tiny/conf/). Options:
#   bash recipes/tiny/run.sh [--seeds 0 (default; 0,1,2 for the README's table)] [--stage 0] [--stop_stage 12]
#                            [--exp exp/tiny] [--per_class 250] [--chat_clips 40] [--overlay F] [--head_overlay F]
#                            [--joint_heads 0 (default) | 1] [--augment 0 (default) | 1] [--conditions C,C,...]
# (--augment 1: stage 2 and the heads train on noisy, reverberant, level-changed copies of the clips, stage 1 on the
# clean clips, recipes/tiny/conf/demo_augment_{stage}.yaml and head_augment.yaml; its default --exp is exp/tiny_augment)
# (--seed S = --seeds S; --overlay / --head_overlay files are merged after the demo's own, e.g. the CI's
# recipes/tiny/conf/ci_*.yaml; any other --name value goes to recipes/c2ser/run.sh, e.g. --synthetic_held_out 40,30,60
# = valid, valid2, test clips per emotion). Each seed trains in EXP/seedS (the head stage too: its seed is the
# run's); the seeds share the first seed's data, models and features (the seed changes the training runs only).
# Stages 0–9 are the recipe's (its stage 10, a per-run table, is replaced by the demo's 10 and 12); the demo adds:
#   after 1   valid, valid2 and test style bins at their own speakers' μ ± σ (as training's: --cot_group_by speaker)
#   after 7   the Gen-SER sampling step count chosen on validation (eval/select_gen_ser_steps.py)
#   after 8   with --joint_heads 1: both heads again, now tuning the stage-2 backbone's LoRA jointly with the head
#             (recipes/tiny/conf/head_lora.yaml; EXP/seedS/head_{gen_ser,ce}_lora), steps chosen on validation,
#             scored on test and both validation splits like the frozen heads (~12 min more per seed)
#   10        test UA of every system under listening conditions (--conditions C,C,... or `default` = clean, white
#             and babble noise at 20 and 10 dB, reverb:0.6, telephone; the default with --augment 1, none without,
#             which keeps the one-seed `make demo` short): eval/robustness.py, Emotion2Vec-S online on the degraded
#             audio, EXP/seedS/robustness/ (robustness.{csv,md,png}), ~4 min per seed
#   11        scripted EN/ZH chat questions on test clips balanced over languages and emotions vs `c2ser predict`
#             (EXP/seedS/chat_consistency.json)
#   12        EXP/RESULTS.md: valid, valid2 and test UA and style accuracy, mean ± std over the seeds, time per seed
# (the recipe's stages 6 and 8 score every system on test, EXP/seedS/eval, and on the validation splits,
# EXP/seedS/eval_valid and EXP/seedS/eval_valid2)
set -euo pipefail
cd "$(dirname "$0")/../.."

seeds=0; stage=0; stop_stage=12; exp=; per_class=250; chat_clips=40; joint_heads=0; augment=0; conditions=
default_conditions=clean,noise:white:20,noise:white:10,noise:babble:20,noise:babble:10,reverb:0.6,telephone
overlay=recipes/tiny/conf/demo_{stage}.yaml; head_overlay=recipes/tiny/conf/head.yaml
passthrough=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds|--seed) seeds=$2; shift 2 ;;
    --stage) stage=$2; shift 2 ;;
    --stop_stage) stop_stage=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --per_class) per_class=$2; shift 2 ;;
    --chat_clips) chat_clips=$2; shift 2 ;;
    --joint_heads) joint_heads=$2; shift 2 ;;
    --augment) augment=$2; shift 2 ;;
    --conditions) conditions=$2; shift 2 ;;
    --overlay) overlay=$overlay,$2; shift 2 ;;
    --head_overlay) head_overlay=$head_overlay,$2; shift 2 ;;
    --*=*) passthrough+=("$1"); shift ;;
    --*) passthrough+=("$1" "${2:?missing value for $1}"); shift 2 ;;
    *) echo "unexpected argument: $1" >&2; exit 1 ;;
  esac
done
case "$augment" in 0|1) ;; *) echo "--augment $augment: expected 0 or 1" >&2; exit 1 ;; esac
if [ "$augment" = 1 ]; then  # the augmented run sits beside the plain one
  overlay=$overlay,recipes/tiny/conf/demo_augment_{stage}.yaml; head_overlay=$head_overlay,recipes/tiny/conf/head_augment.yaml
  exp=${exp:-exp/tiny_augment}; conditions=${conditions:-default}
fi
exp=${exp:-exp/tiny}
if [ "$conditions" = default ]; then conditions=$default_conditions; fi

export HF_HUB_OFFLINE=1 DS_ACCELERATOR=cpu TOKENIZERS_PARALLELISM=false
# one thread per process: the tiny model's 64-wide matrices gain little wall time from a second thread, for much more
# CPU time (a one-off profile of a stage-1 epoch, docs/demo.md "Time")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
corpus_dir() { echo "$1/data/synthetic"; }
recipe() {  # recipe SEED_EXP SEED FROM TO
  [ "$3" -le "$4" ] || return 0
  bash recipes/c2ser/run.sh --size tiny --exp "$1" --seed "$2" --stage "$3" --stop_stage "$4" \
    --train_corpora synthetic --test_corpora synthetic --per_class "$per_class" --accelerate_config= \
    --cot_group_by speaker --official none --llm_pretrain_steps 0 --overlay "$overlay" --head_overlay "$head_overlay" \
    ${passthrough[@]+"${passthrough[@]}"}
}
in_range() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
max() { [ "$1" -ge "$2" ] && echo "$1" || echo "$2"; }
min() { [ "$1" -le "$2" ] && echo "$1" || echo "$2"; }

run_seed() {  # run_seed SEED FIRST_SEED
  local s=$1 e=$exp/seed$1 from=$stage
  mkdir -p "$e"
  if [ "$s" != "$2" ]; then  # data, models and features: the first seed's
    for d in data models features; do [ -e "$e/$d" ] || ln -s "../seed$2/$d" "$e/$d"; done
    from=$(max "$stage" 4)
  fi
  local d; d=$(corpus_dir "$e")
  recipe "$e" "$s" "$from" "$(min "$stop_stage" 1)"
  if [ "$s" = "$2" ] && in_range 1; then
    echo "== stage 1 (demo): valid, valid2 and test style bins at their own speakers' μ ± σ"
    for split in valid valid2 test; do   # held-out voices: training has no statistics of them
      [ -f "$d/$split.cot.jsonl" ] || continue
      python data_prep/cot_labels.py --manifest "$d/$split.cot.jsonl" --out "$d/$split.cot.jsonl" --group-by speaker
    done
    cat "$d/valid.cot.jsonl" > "$e/data/valid.jsonl"
  fi
  recipe "$e" "$s" "$(max "$from" 2)" "$(min "$stop_stage" 7)"
  if in_range 7; then
    echo "== stage 7 (demo): Gen-SER sampling steps chosen on validation"
    python eval/select_gen_ser_steps.py --checkpoint "$e/head_gen_ser/final" --manifest "$d/valid.cot.jsonl" \
      --corpus synthetic --feature-dir "$e/features" --steps 1,2,4,8 --write
  fi
  recipe "$e" "$s" "$(max "$from" 8)" "$(min "$stop_stage" 9)"
  if [ "$joint_heads" = 1 ] && in_range 8; then
    echo "== stage 8 (demo): Gen-SER and CE heads tuned jointly with the stage-2 backbone's LoRA"
    local head
    for head in gen_ser ce; do
      c2ser train-head --config recipes/c2ser/conf/head.yaml --config recipes/c2ser/conf/head_tiny.yaml \
        $(for f in ${head_overlay//,/ } recipes/tiny/conf/head_lora.yaml; do echo "--config $f"; done) seed="$s" \
        kind=$head backbone="$e/stage2/final" corpus=synthetic train_manifest="$e/data/train.jsonl" \
        valid_manifest="$e/data/valid.jsonl" feature_dir="$e/features" output_dir="$e/head_${head}_lora"
    done
    python eval/select_gen_ser_steps.py --checkpoint "$e/head_gen_ser_lora/final" --manifest "$d/valid.cot.jsonl" \
      --corpus synthetic --feature-dir "$e/features" --steps 1,2,4,8 --write
    for head in gen_ser ce; do
      c2ser eval --checkpoint "$e/head_${head}_lora/final" --mode gen-ser --feature-dir "$e/features" \
        --group-by language --manifest "$d/test.cot.jsonl" "$d/valid.cot.jsonl" "$d/valid2.cot.jsonl" \
        --corpus synthetic synthetic synthetic --out "$e/eval/head-${head}_lora" "$e/eval_valid/head-${head}_lora" \
        "$e/eval_valid2/head-${head}_lora"
    done
  fi
  if in_range 10 && [ -n "$conditions" ]; then
    echo "== stage 10 (demo): test UA of every system under listening conditions ($conditions)"
    local ckpts=() modes=() names=() sys ck mode
    for sys in stage1-explicit stage1-implicit stage2-explicit stage2-implicit head-gen_ser head-ce \
               head-gen_ser_lora head-ce_lora; do
      case $sys in
        stage*) ck=$e/${sys%%-*}/final; mode=${sys#*-} ;;
        *) ck=$e/head_${sys#head-}/final; mode=gen-ser ;;
      esac
      [ -d "$ck" ] || continue
      ckpts+=("$ck"); modes+=("$mode"); names+=("$sys")
    done
    python eval/robustness.py --checkpoint "${ckpts[@]}" --mode "${modes[@]}" --name "${names[@]}" \
      --manifest "$d/test.cot.jsonl" --corpus synthetic --ssl-checkpoint "$e/models/emotion2vec-tiny-random.pt" \
      --feature-dir "$e/features" --conditions ${conditions//,/ } --out "$e/robustness"
  fi
  if in_range 11; then
    echo "== stage 11 (demo): scripted chat questions vs c2ser predict ($chat_clips test clips)"
    python eval/chat_consistency.py --checkpoint "$e/stage2/final" --manifest "$d/test.cot.jsonl" \
      --feature-dir "$e/features" --limit "$chat_clips" --out "$e/chat_consistency.json"
  fi
}

first=${seeds%%,*}
# (a run of stage 12 alone runs no seed: it keeps the seeds' wall.json and cpu_times.txt)
for s in ${seeds//,/ }; do
  [ "$stage" -le 11 ] || break
  start=$(date +%s)
  # wall and CPU seconds of the seed (the CPU of every process it started; data preparation in the first seed only)
  ( run_seed "$s" "$first"; times > "$exp/seed$s/cpu_times.txt" )  # not piped: a pipe would fork a fresh shell
  echo "{\"wall_s\": $(( $(date +%s) - start )), \"stages\": \"$stage-$stop_stage\"}" > "$exp/seed$s/wall.json"
done

if in_range 12; then
  echo "== stage 12 (demo): results over seeds $seeds"
  python eval/aggregate_seeds.py "$exp" --seeds "$seeds" --out "$exp/RESULTS.md"
fi
