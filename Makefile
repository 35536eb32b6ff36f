# Everyday commands. On a fresh Debian or Ubuntu machine, as root, the two that matter are:
#   make demo   install what is missing, then run the main job
#   make test   install what is missing, then lint and run every test tier
# Installing checks before it acts and is fast when everything is there (scripts/install.sh).

SHELL := /bin/bash
PYTHON ?= python3
export PYTHON
TESTBED := $(PYTHON) -m testbed

# The main job of `make demo`: the flagship scenario end to end (deploy, outbreak, detection,
# containment, score, report), then the headline metrics and the report's path.
DEMO := $(TESTBED) run scenarios/basement-launchpad.yaml

.PHONY: help install install-python demo test lint unit privileged docker browser bench clean

help:
	@sed -n "s/^## //p" $(MAKEFILE_LIST)

## install      system packages, Suricata 7, Python deps, Docker engine + testbed image
install:
	@bash scripts/install.sh all

install-python:
	@bash scripts/install.sh python

## demo         install, then run the main job
demo: install
	$(DEMO)

## test         install, then ruff + mypy + lint-imports, then the unit, privileged and docker tiers
test: install
	@bash scripts/test.sh all

## lint         ruff, mypy and lint-imports (the layers' import contracts)
lint: install-python
	@bash scripts/test.sh lint

## unit         the unit tier (no root needed)
unit: install-python
	@bash scripts/test.sh unit

## privileged   the privileged tier (root: namespaces, nftables)
privileged: install
	@bash scripts/test.sh privileged

## docker       the docker tier (root: Docker engine, testbed image)
docker: install
	@bash scripts/test.sh docker

## browser      the browser tier (headless Chromium: the dashboard)
browser: install
	@bash scripts/test.sh browser

## bench        run every benchmarks/*.py and print its figures
bench: install
	@set -e; for script in benchmarks/*.py; do echo "== $$script"; $(PYTHON) $$script; done

## clean        tear down every run (testbed down --all) and remove runs/
clean:
	-$(TESTBED) down --all
	rm -rf runs
