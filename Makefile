# The two commands of the README. Both set up a fresh machine first (scripts/setup.sh is idempotent).
.PHONY: demo test
export HF_HUB_OFFLINE := 1
export DS_ACCELERATOR := cpu

# make demo: one seed; make demo SEEDS=0,1,2: the README's 3-seed table (mean ± std)
SEEDS ?= 0
demo:
	bash scripts/setup.sh && . .venv/bin/activate && bash recipes/tiny/run.sh --seeds $(SEEDS)

test:
	bash scripts/setup.sh --dev && . .venv/bin/activate && python -m pytest -q
