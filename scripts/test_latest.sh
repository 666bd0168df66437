#!/usr/bin/env bash
# Runs the suite against the newest versions pyproject.toml allows (not the lock), in its own
# virtualenv (.venv-latest), and says which packages differ from requirements.lock. Not part of
# CI: it tells whether the ranges in pyproject still hold for people who install huajia into
# their own environments, and what the next `bash scripts/lock.sh` would bring in.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv-latest
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
py="$VENV/bin/python"
"$py" -m pip install -q --upgrade pip
# PyTorch's CPU build first, so nothing pulls a CUDA build
"$py" -m pip install -q "torch==2.13.0" || "$py" -m pip install -q "torch==2.13.0" \
  --extra-index-url https://download.pytorch.org/whl/cpu
# everything else at the newest version pyproject allows; torch stays the CPU build
"$py" -c "import torch; print('torch==' + torch.__version__)" >"$VENV/torch.txt"
"$py" -m pip install -q --upgrade --upgrade-strategy eager -c "$VENV/torch.txt" -e ".[dev,ray]"
"$py" -m pip install -q --upgrade --no-deps "spandrel>=0.4,<0.5"
echo "test-latest: packages that differ from requirements.lock:"
"$py" -m pip freeze --exclude-editable >"$VENV/freeze.txt"
"$py" -c '
import re, sys
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
lock = {norm(k): v for k, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", open("requirements.lock").read(), re.M)}
for line in open(sys.argv[1]):
    if "==" in line:
        name, version = line.strip().split("==", 1)
        locked = lock.get(norm(name), "(not in the lock)")
        if locked != version:
            print(f"  {name} {locked} -> {version}")
' "$VENV/freeze.txt"
"$py" -m pytest -p no:cacheprovider "$@"
