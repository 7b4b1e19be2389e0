#!/usr/bin/env bash
# The end-to-end CPU demo (`make demo`): the C2SER recipe (recipes/c2ser/run.sh) at --size tiny, with an overlay:
# the synthetic emotional-speech corpus (espeak-ng + sox, 4 emotions, held-out sentences and voices in test),
# one fp32 process and longer training (recipes/tiny/conf/). Options are the recipe's, e.g.
#   bash recipes/tiny/run.sh [--stage 0] [--stop_stage 10] [--exp exp/tiny] [--per_class 100]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash recipes/c2ser/run.sh --size tiny --exp exp/tiny --train_corpora synthetic --test_corpora synthetic \
  --per_class 100 --accelerate_config= --cot_group_by speaker --official none \
  --overlay 'recipes/tiny/conf/demo_{stage}.yaml' --head_overlay recipes/tiny/conf/head.yaml "$@"
