#!/usr/bin/env bash
# The wheels scripts/gpu_rl.py needs on the lent GPU machine (Python 3.12 there, no network;
# torch, transformers, peft, safetensors, opencv and the rest are installed, diffusers is not).
# They land in .whl/ (ignored by git), which a device call carries: docs/rl.md, "On a GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
diffusers=$(python -c "import diffusers; print(diffusers.__version__)")  # the version tested here
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "diffusers==${diffusers}" "importlib_metadata>=7,<9"
ls .whl
