# make serve: set up, import the bundled model, serve on :8001.  make test: set up, run all tests.
# make test-fast: every test that starts no server and is not slow (markers: pyproject.toml).
# make container-test: build the Bento's image with podman, run it, segment a photo (root, minutes).
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8001

.PHONY: setup serve test test-fast bench container-test
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[import,train,dev]"  # serving + import + training + tests
	touch $@

serve: setup
	$(PY) -m models_import
	$(VENV)/bin/bentoml serve . --port $(PORT)

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not e2e and not slow"

bench: setup
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) -m bench.run

container-test: setup
	PYTHON=$(PY) BENTOML=$(VENV)/bin/bentoml deploy/container_test.sh
