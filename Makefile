# Two commands on a fresh machine: `make demo` and `make test`. Each sets up what is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
APT_PACKAGES := $(shell cat apt-packages.txt 2>/dev/null)

.PHONY: setup test demo clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py CMakeLists.txt apt-packages.txt
	@if [ "$$(id -u)" = "0" ] && [ -n "$(APT_PACKAGES)" ]; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps aisfx==0.1.2
	$(BIN)/python -m pip install -q --no-build-isolation -e .
	touch $(STAMP)

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q tests

DEMO_LABELS := dog,door,thunder,car horn,gunshot

# The main job: a bundled recording played as a live stream (real-time pace) into `listen`.
demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/clap-rt listen --input demo/soundscape.flac --labels "$(DEMO_LABELS)" \
	  --json --no-view $(DEMO_ARGS)
	@echo "true events (demo/truth.json):" && cat demo/truth.json

clean:
	rm -rf build *.egg-info $(VENV)
