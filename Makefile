# Two commands on a fresh machine: `make demo` and `make test`. Each sets up what is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
APT_PACKAGES := $(shell cat apt-packages.txt 2>/dev/null)

.PHONY: setup test demo bench clean

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

demo: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m clap_rt classify demo --labels "dog,cat,bird,siren,piano,drum,speech,water,bell,engine"

clean:
	rm -rf build *.egg-info $(VENV)
