# The two commands of the README. Both set up a fresh machine first (scripts/setup.sh is idempotent).
.PHONY: demo test
export HF_HUB_OFFLINE := 1
export DS_ACCELERATOR := cpu

demo:
	bash scripts/setup.sh && . .venv/bin/activate && bash recipes/tiny/run.sh

test:
	bash scripts/setup.sh --dev && . .venv/bin/activate && python -m pytest -q
