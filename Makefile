# The two commands a newcomer needs: `make demo` (main job) and `make test`.
PYTHON ?= python3

.PHONY: setup demo test test-latest lint bench

setup:
	bash scripts/setup.sh

demo: setup
	$(PYTHON) -m huajia demo --out demo-out

test: setup
	$(PYTHON) -m ruff check src tests benchmarks scripts && $(PYTHON) scripts/check_imports.py
	$(PYTHON) -m pytest
	PYTHON=$(PYTHON) bash scripts/min_versions.sh

# the suite against the newest versions pyproject allows, not the lock (not in CI)
test-latest:
	PYTHON=$(PYTHON) bash scripts/test_latest.sh

lint:
	$(PYTHON) -m ruff check src tests benchmarks scripts && $(PYTHON) scripts/check_imports.py

bench: setup
	$(PYTHON) benchmarks/verifier_speed.py
	$(PYTHON) benchmarks/dataset_speed.py
