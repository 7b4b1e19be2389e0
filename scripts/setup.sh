#!/usr/bin/env bash
# Set up a fresh machine: system tools (apt), a virtual environment in .venv, the pinned Python packages, c2ser.
# Usage: bash scripts/setup.sh [--dev]      (--dev adds the test-only extras: pytest, chromium, funasr)
# Idempotent: a second run only checks (pip is skipped while the requirement files are unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0; [ "${1:-}" = "--dev" ] && dev=1

tools=(espeak-ng sox ffmpeg); pkgs=(espeak-ng sox libsox-fmt-all ffmpeg)
if [ $dev = 1 ]; then tools+=(chromium); pkgs+=(chromium); fi
missing=0; for t in "${tools[@]}"; do command -v "$t" >/dev/null || missing=1; done
if [ $missing = 1 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
stamp=.venv/.c2ser-installed-$dev
want=$(cat requirements*.txt setup.py | sha1sum | cut -c1-16)
if [ "$(cat $stamp 2>/dev/null)" != "$want" ]; then
  pip install -q -r requirements.txt
  # openai-whisper without its triton requirement (useless on CPU; its real needs are in requirements.txt).
  pip install -q --no-deps -r requirements-nodeps.txt
  if [ $dev = 1 ]; then
    pip install -q -r requirements-dev.txt
    # FunASR only as the independent reference for the Emotion2Vec-S parity test (light install, see tests).
    pip install -q --no-deps funasr==1.4.16
  fi
  pip install -q --no-deps -e .
  echo "$want" > $stamp
fi
echo "setup: ok ($(python --version), torch $(python -c 'import torch; print(torch.__version__)'))"
