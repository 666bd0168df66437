#!/usr/bin/env bash
# Runs the embedded model's tests with the lowest transformers/diffusers/tokenizers that
# pyproject.toml allows, in a small second environment (.venv-min) that shares the main one's
# other packages (torch included). `make test` runs it after the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# keep in step with the lower bounds in pyproject.toml
LOWEST=("transformers==4.46.3" "diffusers==0.35.0" "tokenizers==0.20.3")
VENV=.venv-min
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# the main environment's packages (huajia, torch, …) behind this one's, whether $PYTHON is a
# virtualenv or not (--system-site-packages would reach the base interpreter's instead)
parent=$("$PYTHON" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
here=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# torchao (the quant extra) is hidden: diffusers 0.35 fails to import beside torchao 0.18
# ("name 'logger' is not defined"); a None module makes find_spec say it is not installed
echo "import site, sys; site.addsitedir('$parent'); sys.modules['torchao'] = None" \
  >"$here/huajia-main-env.pth"
"$VENV/bin/python" -m pip install -q "${LOWEST[@]}"
"$VENV/bin/python" - <<'PY'
import diffusers, tokenizers, transformers
print(f"lowest versions: transformers {transformers.__version__}, diffusers "
      f"{diffusers.__version__}, tokenizers {tokenizers.__version__}")
PY
# (not the main run's PYTEST_ADDOPTS, e.g. its --junitxml)
env -u PYTEST_ADDOPTS "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/engine/test_embedded.py
