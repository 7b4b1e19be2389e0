#!/usr/bin/env bash
# C2SER full recipe (Whisper-medium + Emotion2Vec-S + Qwen2-7B-Instruct with LoRA) on GPUs.
#   bash recipes/c2ser/run.sh --stage 0 --stop_stage 8 [--num_gpus 8] [--accelerate_config recipes/accelerate/ds_zero2.yaml]
# Stages: 0 data prep · 1 Emotion2Vec-S features · 2 chain-of-thought labels · 3 stage 1 (explicit CoT)
#         4 stage 2 (self-distillation to implicit CoT) · 5 evaluation (Emo-Emilia, MELD, CASIA)
#         6 Gen-SER head + CE baseline · 7 evaluation of the heads · 8 results table
# Paths to corpora and checkpoints are variables below (or --name value on the command line).
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0; stop_stage=8
exp=exp/c2ser
num_gpus=8
accelerate_config=recipes/accelerate/ds_zero2.yaml
whisper=medium                                   # openai-whisper name or checkpoint file
llm=Qwen/Qwen2-7B-Instruct                       # HF id or local directory
emotion2vec=/path/to/Emotion2Vec-S/checkpoint.pt
emo_emilia_root=/path/to/Emo-Emilia              # Emo-Emilia-ALL.jsonl + wav/
meld_root=/path/to/MELD.Raw                      # train/ dev/ test CSVs and mp4 folders
casia_root=/path/to/CASIA                        # speaker/emotion/id.wav
train_corpora="meld"                             # corpora whose train split is used for training
. recipes/parse_options.sh

conf=recipes/c2ser/conf
data=$exp/data
feats=$exp/features
launch="accelerate launch --config_file $accelerate_config --num_processes $num_gpus -m c2ser.cli"
model_args="model.whisper.name_or_path=$whisper model.llm.name_or_path=$llm"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "stage 0: data preparation"
  python data_prep/emo_emilia.py --jsonl $emo_emilia_root/Emo-Emilia-ALL.jsonl --root $emo_emilia_root --out $data/emo_emilia
  python data_prep/meld.py --root $meld_root --out $data/meld
  python data_prep/casia.py --root $casia_root --out $data/casia
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "stage 1: Emotion2Vec-S utterance features (eval mode, cached one .npy per clip)"
  for m in $data/meld/{train,valid,test}.jsonl $data/emo_emilia/test.jsonl $data/casia/all.jsonl; do
    c2ser extract-features $m --checkpoint $emotion2vec --out-dir $feats --mode tokens
  done
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "stage 2: chain-of-thought targets from measured pitch / loudness / speaking rate"
  for c in $train_corpora; do
    for split in train valid; do
      python data_prep/cot_labels.py --manifest $data/$c/$split.jsonl --out $data/$c/$split.cot.jsonl
    done
  done
  cat $(for c in $train_corpora; do echo $data/$c/train.cot.jsonl; done) > $data/train.jsonl
  cat $(for c in $train_corpora; do echo $data/$c/valid.cot.jsonl; done) > $data/valid.jsonl
fi

common="data.train_manifest=$data/train.jsonl data.valid_manifest=$data/valid.jsonl data.feature_dir=$feats $model_args"
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "stage 3: stage 1 — explicit chain of thought"
  $launch train --config $conf/model.yaml --config $conf/stage1.yaml $common output_dir=$exp/stage1
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "stage 4: stage 2 — self-distillation to implicit chain of thought"
  $launch train --config $conf/model.yaml --config $conf/stage2.yaml $common init_from=$exp/stage1/final \
    output_dir=$exp/stage2
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "stage 5: evaluation (greedy decoding, deterministic)"
  for s in stage1 stage2; do
    for mode in explicit implicit; do
      c2ser eval --checkpoint $exp/$s/final --manifest $data/emo_emilia/test.jsonl --corpus emo_emilia \
        --feature-dir $feats --mode $mode --group-by language --out $exp/eval/$s/$mode/emo_emilia
      c2ser eval --checkpoint $exp/$s/final --manifest $data/meld/test.jsonl --corpus meld \
        --feature-dir $feats --mode $mode --out $exp/eval/$s/$mode/meld
      c2ser eval --checkpoint $exp/$s/final --manifest $data/casia/all.jsonl --corpus casia \
        --feature-dir $feats --mode $mode --out $exp/eval/$s/$mode/casia
    done
  done
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  echo "stage 6: Gen-SER head and the CE baseline on the frozen stage-2 backbone"
  for head in gen_ser ce; do   # the backbone is frozen: one process, conditioning cached once
    c2ser train-head --config $conf/head.yaml kind=$head backbone=$exp/stage2/final \
      train_manifest=$data/train.jsonl valid_manifest=$data/valid.jsonl feature_dir=$feats \
      output_dir=$exp/head_$head
  done
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  echo "stage 7: evaluation of the heads"
  for head in gen_ser ce; do
    for c in emo_emilia meld casia; do
      m=$data/$c/test.jsonl; [ $c = casia ] && m=$data/casia/all.jsonl
      c2ser eval --checkpoint $exp/head_$head/final --manifest $m --corpus $c --feature-dir $feats \
        --mode gen-ser --out $exp/eval/head_$head/$c
    done
  done
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  echo "stage 8: results table"
  c2ser results $exp/eval --out $exp/RESULTS.md
  cat $exp/RESULTS.md
fi
