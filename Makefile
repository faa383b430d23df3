# The two commands a newcomer runs: `make demo` and `make test`. Each sets itself up (Debian packages, .venv).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# TTS engines and text for the synthetic corpus, sox for effects, ffmpeg libraries for torchcodec
DEB_PACKAGES := flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng sox ffmpeg \
	libsndfile1 fortunes fortunes-min wordnet-base

.PHONY: setup system demo test test-all bench lint format clean-venv

setup: system $(STAMP)

system:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements.lock -e '.[app,dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/audiotok demo

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m "not gpu"

bench: setup
	$(PY) bench/features.py

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean-venv:
	rm -rf $(VENV)
