#!/usr/bin/env bash
# Installs everything huajia needs on a fresh machine: a CJK font (Chinese text in pictures),
# PyTorch's CPU build (before anything that depends on torch, so pip never pulls CUDA wheels)
# and the package itself with its dev tools. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if ! fc-list :lang=zh 2>/dev/null | grep -q . ; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing a Chinese font (fonts-wqy-microhei)"
    (apt-get install -y -q fonts-wqy-microhei >/dev/null 2>&1 ||
      (apt-get update -q >/dev/null && apt-get install -y -q fonts-wqy-microhei >/dev/null))
  else
    echo "setup: no Chinese font found; install fonts-wqy-microhei (or set HUAJIA_FONT)" >&2
  fi
fi

# Debian's Chromium: the web page's browser test drives it with Playwright (no browser download)
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Chromium (browser tests)"
    (apt-get install -y -q chromium >/dev/null 2>&1 ||
      (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) ||
      echo "setup: could not install chromium; the browser test will be skipped" >&2
  else
    echo "setup: no chromium found; the browser test will be skipped" >&2
  fi
fi

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  "$PYTHON" -m pip install -q "torch==2.13.0"
fi
# Ray is optional for users ([ray]); the suite tests serve/batch/curate on a local Ray
"$PYTHON" -m pip install -q -e ".[dev,ray]"
# spandrel (upscalers) without its torchvision requirement: see [upscale] in pyproject.toml
if ! "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('spandrel') is None)"; then
  "$PYTHON" -m pip install -q --no-deps "spandrel>=0.4,<0.5"
fi
