#!/usr/bin/env bash
# The end-to-end demo: every C2SER stage on CPU with tiny models built locally (random weights, real formats)
# and a synthetic emotional-speech corpus (espeak-ng + sox), in about 10 minutes.
#   bash recipes/tiny/run.sh [--stage 0] [--stop_stage 9] [--exp exp/tiny] [--emotions neutral,happy,sad,angry]
# Stages: 0 synthetic corpus · 1 chain-of-thought labels · 2 tiny models · 3 Emotion2Vec-S features
#         4 stage 1 (explicit CoT) · 5 stage 2 (self-distillation) · 6 evaluation · 7 Gen-SER + CE heads
#         8 head evaluation · 9 results table and sample answers
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 DS_ACCELERATOR=cpu TOKENIZERS_PARALLELISM=false

stage=0; stop_stage=9
exp=exp/tiny
emotions=neutral,happy,sad,angry
per_class=100
. recipes/parse_options.sh

conf=recipes/tiny/conf
data=$exp/data
feats=$exp/features
models=$exp/models
model_args="model.whisper.name_or_path=$models/whisper-tiny-random.pt model.llm.name_or_path=$models/qwen2-tiny-random"
common="data.train_manifest=$data/train.jsonl data.valid_manifest=$data/valid.jsonl data.feature_dir=$feats $model_args"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "== stage 0: synthetic emotional-speech corpus ($emotions, $per_class training clips per emotion)"
  python data_prep/synthetic.py --out $data/synthetic --emotions $emotions --per-class $per_class
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "== stage 1: chain-of-thought labels from measured pitch / loudness / speaking rate (bins per voice)"
  for split in train valid test; do
    python data_prep/cot_labels.py --manifest $data/synthetic/$split.jsonl --out $data/$split.jsonl --group-by speaker
  done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "== stage 2: tiny models (Whisper checkpoint, Qwen2 dir + BPE tokenizer trained on the targets, Emotion2Vec-S)"
  c2ser build-tiny $models --texts $data/train.jsonl
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "== stage 3: Emotion2Vec-S utterance tokens, cached"
  for split in train valid test; do
    c2ser extract-features $data/$split.jsonl --checkpoint $models/emotion2vec-tiny-random.pt --out-dir $feats
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "== stage 4: stage 1 — explicit chain of thought"
  c2ser train --config $conf/model.yaml --config $conf/stage1.yaml $common output_dir=$exp/stage1
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "== stage 5: stage 2 — self-distillation to implicit chain of thought"
  c2ser train --config $conf/model.yaml --config $conf/stage2.yaml $common init_from=$exp/stage1/final \
    output_dir=$exp/stage2
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  echo "== stage 6: evaluation on the held-out test split (held-out sentences and voices; greedy decoding)"
  for s in stage1 stage2; do
    for mode in explicit implicit; do
      c2ser eval --checkpoint $exp/$s/final --manifest $data/test.jsonl --corpus synthetic --feature-dir $feats \
        --mode $mode --group-by language --max-new-tokens 64 --out $exp/eval/$s-$mode
    done
  done
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  echo "== stage 7: output heads on the frozen stage-2 backbone: Gen-SER and the CE baseline"
  for head in gen_ser ce; do
    c2ser train-head --config $conf/head.yaml kind=$head backbone=$exp/stage2/final \
      train_manifest=$data/train.jsonl valid_manifest=$data/valid.jsonl feature_dir=$feats \
      output_dir=$exp/head_$head
  done
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  echo "== stage 8: head evaluation (one denoiser pass for Gen-SER; no text decoding)"
  for head in gen_ser ce; do
    c2ser eval --checkpoint $exp/head_$head/final --manifest $data/test.jsonl --corpus synthetic \
      --feature-dir $feats --mode gen-ser --group-by language --out $exp/eval/head-$head
  done
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ]; then
  echo "== stage 9: results"
  c2ser results $exp/eval --out $exp/RESULTS.md
fi
