#!/usr/bin/env bash
# Installs everything huajia needs on a fresh machine: a CJK font (Chinese text in pictures),
# and every Python package at the version in requirements.lock (PyTorch's CPU build included),
# then huajia itself. Safe to run again: it skips what is there.
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

# Everything Python from requirements.lock (scripts/lock.sh writes it): the versions the suite
# was tested with, PyTorch's CPU build included. --no-deps installs exactly the lock, so pip never
# pulls a CUDA torch or torchvision (spandrel asks for it; huajia stands in for what needs it).
torch_source=()
if ! compgen -G "${PIP_FIND_LINKS:-/opt/wheels}/torch-2.13.0+cpu-*.whl" >/dev/null; then
  torch_source=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
echo "setup: installing requirements.lock"
"$PYTHON" -m pip install -q --no-deps "${torch_source[@]}" -r requirements.lock
"$PYTHON" -m pip install -q --no-deps -e .
