#!/usr/bin/env bash
# C2SER recipe: Whisper-medium + Emotion2Vec-S + Qwen2-7B-Instruct with LoRA, trained with accelerate + DeepSpeed.
#   bash recipes/c2ser/run.sh [--stage 0] [--stop_stage 10] [--num_gpus 8] [--accelerate_config recipes/accelerate/ds_zero2.yaml]
# One recipe, two sizes (--size changes only model widths, corpus roots and step counts):
#   --size full  real corpora and weights on GPUs (the paths below, or --name value on the command line)
#   --size tiny  the same stages, launch configs (DeepSpeed ZeRO-2, bf16, 2 processes), data filters, evaluation,
#                heads and results at toy width on CPU, from fake corpora in the real raw layouts (CI runs this)
# Stages: 0 data preparation · 1 chain-of-thought labels · 2 models (tiny: built locally) · 3 Emotion2Vec-S features
#         4 stage 1 (explicit CoT) · 5 stage 2 (self-distillation to implicit CoT) · 6 evaluation
#         7 Gen-SER head + CE baseline · 8 evaluation of the heads · 9 the released checkpoint (--official)
#         10 results table
# Stages 6 and 8 score every system on the test corpora (EXP/eval) and on the training corpora's validation
# splits (EXP/eval_valid; a corpus's second validation split valid2, where it has one, in EXP/eval_valid2):
# choices are made on validation, test is reported beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."

size=full
stage=0; stop_stage=10
exp=                                   # default exp/c2ser (full), exp/rehearsal (tiny)
num_gpus=                              # processes: default 8 (full), 2 (tiny)
accelerate_config=recipes/accelerate/ds_zero2.yaml   # empty: one plain process (no accelerate launch)
whisper=                               # openai-whisper name or checkpoint file (full: medium)
llm=                                   # HF id or local directory (full: Qwen/Qwen2-7B-Instruct)
emotion2vec=                           # Emotion2Vec-S checkpoint.pt
emo_emilia_root=                       # Emo-Emilia-ALL.jsonl + wav/
meld_root=                             # MELD.Raw: CSVs and mp4 folders
casia_root=                            # CASIA: speaker/emotion/id.wav
train_corpora="meld"                   # corpora whose train/valid splits train the model
test_corpora="emo_emilia meld casia"   # corpora evaluated in stages 6, 8, 9
official=auto                          # the released C2SER_llm.pt for stage 9 (auto: none; tiny: a synthetic one)
official_qwen2=                        # the Qwen2-7B directory the release was trained on
overlay=                               # extra training configs merged last, comma-separated ({stage} = stage1 | stage2)
head_overlay=                          # extra head-stage configs merged last, comma-separated, e.g.
                                       # recipes/c2ser/conf/head_lora.yaml: joint LoRA tuning
per_class=8                            # tiny: clips per emotion of each fake corpus
llm_pretrain_steps=200                 # tiny: the tiny LLM is pre-trained this long on the recipe's texts (next-token
                                       # prediction, seeded, seconds) so that the frozen LLM + LoRA of model.yaml
                                       # adapt a language model, not noise (0: random weights, as the CPU demo's)
cot_group_by=                          # chain-of-thought bins per value of this field (e.g. speaker)
synthetic_emotions=neutral,happy,sad,angry   # the synthetic corpus (the CPU demo's)
synthetic_held_out=40,30,60            # its valid, valid2, test clips per emotion
seed=777
. recipes/parse_options.sh

conf=recipes/c2ser/conf
if [ "$size" = tiny ]; then
  export HF_HUB_OFFLINE=1 DS_ACCELERATOR=cpu TOKENIZERS_PARALLELISM=false
  export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$PWD/.torch_extensions}   # DeepSpeed's CPU ops, built once
  : "${exp:=exp/rehearsal}" "${num_gpus:=2}"
  models=$exp/models raw=$exp/raw
  : "${whisper:=$models/whisper-tiny-random.pt}" "${llm:=$models/qwen2-tiny-random}"
  : "${emotion2vec:=$models/emotion2vec-tiny-random.pt}"
  : "${emo_emilia_root:=$raw/Emo-Emilia}" "${meld_root:=$raw/MELD.Raw}" "${casia_root:=$raw/CASIA}"
  [ "$official" = auto ] && official=$models/official-tiny.pt
  : "${official_qwen2:=$llm}"
  size_conf="--config $conf/tiny.yaml" head_size_conf="--config $conf/head_tiny.yaml"
  # the released layout at the tiny widths (the full size needs no override)
  official_set="--set whisper.name_or_path=$whisper --set ssl.dim=48 --set adapter.num_blocks=2 --set adapter.ffn=128"
elif [ "$size" = full ]; then
  : "${exp:=exp/c2ser}" "${num_gpus:=8}" "${whisper:=medium}" "${llm:=Qwen/Qwen2-7B-Instruct}"
  : "${emotion2vec:=/path/to/Emotion2Vec-S/checkpoint.pt}" "${emo_emilia_root:=/path/to/Emo-Emilia}"
  : "${meld_root:=/path/to/MELD.Raw}" "${casia_root:=/path/to/CASIA}" "${official_qwen2:=Qwen/Qwen2-7B}"
  [ "$official" = auto ] && official=none
  size_conf="" head_size_conf="" official_set=""
else
  echo "unknown --size $size (full | tiny)" >&2; exit 1
fi

data=$exp/data
feats=$exp/features
if [ -n "$accelerate_config" ]; then
  launch="accelerate launch --config_file $accelerate_config --num_processes $num_gpus -m c2ser.cli"
else
  launch="python -m c2ser.cli"
fi
configs() { local f; for f in ${1//,/ }; do echo "--config $f"; done; }  # configs A,B: --config A --config B
train_conf() {
  echo "--config $conf/model.yaml --config $conf/$1.yaml $size_conf $(configs "${overlay//\{stage\}/$1}")"; }
test_manifest() {  # the measured (chain-of-thought) version when there is one: style descriptions get scored
  case $1 in casia) echo $data/casia/all.jsonl ;; *) [ -f $data/$1/test.cot.jsonl ] && echo $data/$1/test.cot.jsonl \
    || echo $data/$1/test.jsonl ;; esac; }
test_manifests() { for c in $test_corpora; do test_manifest $c; done; }
valid_corpora() { for c in $train_corpora; do [ -f $data/$c/${1:-valid}.cot.jsonl ] && echo $c; done; }  # [SPLIT]
valid_manifests() { for c in $(valid_corpora ${1:-valid}); do echo $data/$c/${1:-valid}.cot.jsonl; done; }
eval_outs() {  # eval_outs DIR SYSTEM CORPUS...: DIR/SYSTEM for one corpus, else DIR/SYSTEM/<corpus> each
  local dir=$1 system=$2; shift 2
  if [ $# -eq 1 ]; then echo $dir/$system; else for c in "$@"; do echo $dir/$system/$c; done; fi; }
eval_both() {  # eval_both CHECKPOINT SYSTEM MODE...: test and validation sets, every mode, one model load
  local ckpt=$1 system=$2; shift 2
  c2ser eval --checkpoint $ckpt --mode "$@" --feature-dir $feats --group-by language \
    --manifest $(test_manifests) $(valid_manifests) $(valid_manifests valid2) \
    --corpus $test_corpora $(valid_corpora) $(valid_corpora valid2) \
    --out $(eval_outs $exp/eval "$system" $test_corpora) $(eval_outs $exp/eval_valid "$system" $(valid_corpora)) \
    $(eval_outs $exp/eval_valid2 "$system" $(valid_corpora valid2))
}
common="data.train_manifest=$data/train.jsonl data.valid_manifest=$data/valid.jsonl data.feature_dir=$feats
  model.whisper.name_or_path=$whisper model.llm.name_or_path=$llm seed=$seed"

if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  echo "== stage 0: data preparation ($train_corpora | $test_corpora)"
  if [ "$size" = tiny ] && [ -n "$(echo $train_corpora $test_corpora | tr ' ' '\n' | grep -vx synthetic)" ]; then
    # fake corpora in the real raw layouts, spoken by synthetic emotional voices (not needed for synthetic only)
    python data_prep/fake_corpora.py --out $raw --per-class $per_class --seed 0
  fi
  for c in $(echo $train_corpora $test_corpora | tr ' ' '\n' | sort -u); do
    case $c in
      emo_emilia) python data_prep/emo_emilia.py --jsonl $emo_emilia_root/Emo-Emilia-ALL.jsonl \
                    --root $emo_emilia_root --out $data/emo_emilia ;;
      meld) python data_prep/meld.py --root $meld_root --out $data/meld ;;
      casia) python data_prep/casia.py --root $casia_root --out $data/casia ;;
      synthetic) IFS=, read -r n_valid n_valid2 n_test <<< "$synthetic_held_out"
                 python data_prep/synthetic.py --out $data/synthetic --emotions $synthetic_emotions \
                   --per-class $per_class --valid-per-class $n_valid --valid2-per-class $n_valid2 \
                   --test-per-class $n_test ;;
      *) echo "unknown corpus $c" >&2; exit 1 ;;
    esac
  done
fi

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  echo "== stage 1: chain-of-thought targets from measured pitch / loudness / speaking rate"
  for c in $train_corpora; do  # valid (and test) bins from the train statistics
    group=${cot_group_by:+--group-by $cot_group_by}
    python data_prep/cot_labels.py --manifest $data/$c/train.jsonl --out $data/$c/train.cot.jsonl $group
    for split in valid valid2 test; do
      [ -f $data/$c/$split.jsonl ] || continue
      python data_prep/cot_labels.py --manifest $data/$c/$split.jsonl --out $data/$c/$split.cot.jsonl $group \
        --stats-from $data/$c/train.cot.jsonl
    done
  done
  cat $(for c in $train_corpora; do echo $data/$c/train.cot.jsonl; done) > $data/train.jsonl
  cat $(for c in $train_corpora; do echo $data/$c/valid.cot.jsonl; done) > $data/valid.jsonl
fi

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  echo "== stage 2: models"
  if [ "$size" = tiny ]; then  # random weights in the real formats; the BPE tokenizer (and LLM) learn the targets
    official_arg=""; [ "$official" = none ] || official_arg="--official $official"
    c2ser build-tiny $models --texts $data/train.jsonl --llm-pretrain-steps $llm_pretrain_steps $official_arg
  fi
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  echo "== stage 3: Emotion2Vec-S utterance features (eval mode, one .npy per clip)"
  c2ser extract-features $data/train.jsonl $data/valid.jsonl $(valid_manifests valid2) $(test_manifests) \
    --checkpoint $emotion2vec --out-dir $feats --mode tokens
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  echo "== stage 4: stage 1 — explicit chain of thought"
  $launch train $(train_conf stage1) $common output_dir=$exp/stage1
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  echo "== stage 5: stage 2 — self-distillation to implicit chain of thought"
  $launch train $(train_conf stage2) $common init_from=$exp/stage1/final output_dir=$exp/stage2
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  echo "== stage 6: evaluation (greedy decoding, deterministic; one model load per checkpoint)"
  for s in stage1 stage2; do
    eval_both $exp/$s/final "$s-{mode}" explicit implicit
  done
fi

if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  echo "== stage 7: Gen-SER head and the CE baseline on the frozen stage-2 backbone"
  for head in gen_ser ce; do   # data-parallel like stages 4/5; each batch's conditioning is computed on the fly
    $launch train-head --config $conf/head.yaml $head_size_conf $(configs "$head_overlay") seed=$seed \
      kind=$head backbone=$exp/stage2/final corpus=$(echo $train_corpora | cut -d' ' -f1) \
      train_manifest=$data/train.jsonl valid_manifest=$data/valid.jsonl feature_dir=$feats \
      output_dir=$exp/head_$head
  done
fi

if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  echo "== stage 8: evaluation of the heads (one denoiser pass for Gen-SER; no text decoding)"
  for head in gen_ser ce; do
    eval_both $exp/head_$head/final head-$head gen-ser
  done
fi

if [ $stage -le 9 ] && [ $stop_stage -ge 9 ] && [ "$official" != none ]; then
  echo "== stage 9: the released C2SER checkpoint, with the release's prompts (Emotion2Vec-S online)"
  c2ser eval --checkpoint official:$official --qwen2-dir $official_qwen2 --ssl-checkpoint $emotion2vec \
    $official_set --manifest $(test_manifests) --corpus $test_corpora --mode implicit --group-by language \
    --out $exp/eval/official-implicit
fi

if [ $stage -le 10 ] && [ $stop_stage -ge 10 ]; then
  echo "== stage 10: results table"
  c2ser results $exp/eval $(for d in $exp/eval_valid $exp/eval_valid2; do [ -d $d ] && echo $d; done) \
    --out $exp/RESULTS.md
  cat $exp/RESULTS.md
fi
