# The two commands of the README. Both set up a fresh machine first (scripts/setup.sh is idempotent).
.PHONY: demo test
export HF_HUB_OFFLINE := 1
export DS_ACCELERATOR := cpu

# make demo: one seed; make demo SEEDS=0,1,2: the README's 3-seed table (mean ± std); AUGMENT=1: train stage 2 and
# the heads on noisy, reverberant, level-changed copies of the clips (stage 1 on clean ones) and score every system
# under listening conditions (exp/tiny_augment);
# CONDITIONS=default (or a comma-separated list): the listening conditions without AUGMENT (recipes/tiny/run.sh)
SEEDS ?= 0
AUGMENT ?= 0
CONDITIONS ?=
demo:
	bash scripts/setup.sh && . .venv/bin/activate && \
	  bash recipes/tiny/run.sh --seeds $(SEEDS) --augment $(AUGMENT) --conditions "$(CONDITIONS)"

# make test: two pytest-xdist workers (the machine's 2 cores), a test module at a time (tests/conftest.py says which
# modules share one)
test:
	bash scripts/setup.sh --dev && . .venv/bin/activate && python -m pytest -q -n 2 --dist loadfile
