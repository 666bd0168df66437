#!/usr/bin/env bash
# Writes requirements.lock: every runtime and dev dependency pinned to one tested version, so
# scripts/setup.sh (make test, make demo, CI) installs exactly what the suite passed with.
# Run it after changing a dependency in pyproject.toml, then run `make test` and commit both.
# pyproject.toml keeps ranges for people who install huajia into their own environments.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -m uv --version >/dev/null 2>&1 || "$PYTHON" -m pip install -q "uv>=0.13"
if compgen -G "${PIP_FIND_LINKS:-/opt/wheels}/torch-2.13.0+cpu-*.whl" >/dev/null; then
  torch_source=(--find-links "${PIP_FIND_LINKS:-/opt/wheels}")
else
  torch_source=(--extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match)
fi
"$PYTHON" -m uv pip compile pyproject.toml --extra dev --extra ray --extra upscale --extra quant --extra curate \
  --constraints scripts/lock-constraints.txt --excludes scripts/lock-excludes.txt \
  "${torch_source[@]}" \
  --python-version 3.11 --no-emit-find-links --no-emit-index-url \
  --custom-compile-command "bash scripts/lock.sh" --quiet -o requirements.lock
echo "lock: wrote requirements.lock ($(grep -c '==' requirements.lock) packages)"
