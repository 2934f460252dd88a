# The two set-up commands of the README:
#   make run    install into .venv, then run the default pipeline (config.yaml)
#   make test   install into .venv (with test extras), then run the test suite
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(VENV)/bin

.PHONY: run test install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

run: install
	$(BIN)/snakemake --cores $(CORES)

test: install-test
	$(BIN)/python -m pytest

clean:
	rm -rf results .snakemake
