# gateway-lab: nginx -> Gunicorn/Flask (WSGI) and Uvicorn/FastAPI (ASGI), watched by Prometheus.
# `make` alone lists the targets. STACK=docker|native|auto (default auto: Docker when an engine answers).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
UV := $(VENV)/bin/uv
STACKCTL := $(VENV_PY) -m stackctl
# Exports the running stack's addresses (PUBLIC_URL, PROMETHEUS_URL, PROMETHEUS_TARGETS_DIR,
# LOCUST_METRICS_BIND, ...: `python -m stackctl env`) into a recipe's shell, so the tools it runs
# reach the stack `make up` started, whatever its profile, STACK_PORT_OFFSET or ports.
STACK_ENV := stack_env="$$($(STACKCTL) env)" || exit 1; set -a; eval "$$stack_env"; set +a
# Debian packages native mode runs (Redis is the chat broker; the exporters feed the
# Grafana/Prometheus views), and the browser the tests open the landing page and the bench report in.
# openssl makes the TLS port's self-signed certificate; h2load (nghttp2-client) is the bench's
# HTTP/2 client; wrk is the load generator of `make bench-overhead`.
APT_PACKAGES := nginx prometheus prometheus-nginx-exporter prometheus-node-exporter \
  redis-server prometheus-redis-exporter chromium openssl nghttp2-client wrk
SYSTEM_PROGRAMS := nginx prometheus promtool prometheus-nginx-exporter prometheus-node-exporter \
  redis-server prometheus-redis-exporter chromium openssl h2load wrk
PYTEST_ARGS ?=
# The dashboard schema check (tests/static/test_grafana_schema.py): Grafana's published TypeScript
# schema and the compiler, pinned in package.json and package-lock.json, installed with npm ci.
GRAFANA_SCHEMA_DIR := tests/static/grafana_schema
NODE_APT_PACKAGES := nodejs npm


.PHONY: bench bench-quick bench-matrix bench-capacity bench-edge bench-littles-law bench-overhead locust reload chaos lab
.PHONY: help setup system-deps node-deps docker-deps up down reload status logs test test-unit test-static test-integration test-docker chaos lint format clean

help: ## list the targets
	@echo "gateway-lab — make targets (STACK=docker|native|auto, default auto):"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}'
	@echo
	@echo "Bench options (environment): BENCH_SCENARIOS=hello,io,cpu,stream,poll,ws_echo,ws_chat"
	@echo "  BENCH_TARGETS=wsgi,asgi|flask-gthread,...|all  BENCH_USERS='io=10,25;hello=50'  BENCH_DURATION=s  BENCH_WARMUP=s"
	@echo "  BENCH_MODEL=closed|open  BENCH_RATES='io=10,30' (open model, req/s offered)"
	@echo "  BENCH_PROFILE=default|quick|matrix  BENCH_URL  BENCH_PROMETHEUS_URL  (see docs/benchmark.md)"
	@echo "  make bench-overhead: BENCH_OVERHEAD_ROUNDS=3 BENCH_OVERHEAD_DURATION=10 BENCH_OVERHEAD_CONNECTIONS=32"
	@echo
	@echo "Quick start: make up   (demo on http://127.0.0.1:8080)   ·   make test   (the suite)"

setup: system-deps $(VENV)/.synced node-deps ## install what the project needs (Debian packages as root, the locked Python and npm deps)

$(VENV)/.synced: pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0])'
	@test -x $(VENV_PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV_PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	@# --inexact keeps uv itself, which lives in the same environment but not in the lock.
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --all-extras --inexact --quiet
	@touch $@

system-deps: ## install nginx, Prometheus, Redis, the exporters and chromium (apt, as root), or say what to install
	@missing=""; for p in $(SYSTEM_PROGRAMS); do \
	  command -v $$p >/dev/null 2>&1 || PATH="$$PATH:/usr/sbin:/sbin" command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing Debian packages for:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null || exit 1; \
	else \
	  echo "Missing programs:$$missing"; \
	  echo "  Debian/Ubuntu: sudo apt-get install $(APT_PACKAGES)"; \
	  echo "  macOS:         brew install nginx prometheus nginx-prometheus-exporter node_exporter redis redis_exporter wrk; brew install --cask chromium"; \
	  exit 1; \
	fi

node-deps: $(GRAFANA_SCHEMA_DIR)/node_modules/.installed ## install Node.js (apt, as root) if missing, then the locked schema checker (npm ci)

$(GRAFANA_SCHEMA_DIR)/node_modules/.installed: $(GRAFANA_SCHEMA_DIR)/package.json $(GRAFANA_SCHEMA_DIR)/package-lock.json
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian packages: $(NODE_APT_PACKAGES)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $(NODE_APT_PACKAGES) >/dev/null || exit 1; \
	  else \
	    echo "Missing programs: node npm"; \
	    echo "  Debian/Ubuntu: sudo apt-get install $(NODE_APT_PACKAGES)"; \
	    echo "  macOS:         brew install node"; \
	    exit 1; \
	  fi; \
	fi
	@# --ignore-scripts: the two packages are type declarations and the compiler; nothing to build.
	cd $(GRAFANA_SCHEMA_DIR) && npm ci --ignore-scripts --loglevel=error
	@touch $@

up: setup ## start the stack (Docker if an engine answers, else native) and wait until healthy
	@$(STACKCTL) up

down: ## stop everything `make up` started and free its ports
	@if [ -x $(VENV_PY) ]; then $(STACKCTL) down; else echo "nothing to stop (no environment yet)"; fi

reload: ## apply config and code changes in place: re-render, then reload nginx, Gunicorn, Uvicorn, Prometheus
	@$(STACKCTL) reload

status: ## show each component's state and health
	@$(STACKCTL) status

logs: ## show the last lines of every component's log (LOGS_FOLLOW=1 to follow)
	@$(STACKCTL) logs $(if $(LOGS_FOLLOW),--follow)

test: setup ## the whole suite: unit, static, integration on a native stack, and the reliability tests (make chaos)
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

test-unit: setup ## unit tests only (no servers)
	$(VENV_PY) -m pytest tests/unit $(PYTEST_ARGS)

test-static: setup ## static checks: nginx -t, promtool, compose and Grafana schemas, Dockerfile lint
	$(VENV_PY) -m pytest -m static $(PYTEST_ARGS)

test-integration: setup ## integration tests against a native stack on ports 18080, 19090, ...
	$(VENV_PY) -m pytest -m integration $(PYTEST_ARGS)

docker-deps: setup ## install a Docker engine (Debian's docker.io, as root), mmdebstrap and the pinned Compose v2 plugin
	$(VENV_PY) -m stackctl.engine install

test-docker: docker-deps ## prove Docker mode for real: starts an engine if none answers, builds stand-in images, runs the contract
	$(VENV_PY) -m pytest -m docker $(PYTEST_ARGS)

chaos: setup ## reliability tests (reload, crash, shutdown, slowloris, outage, fuzzing, limits) on their own stack, ports 28080, ...
	$(VENV_PY) -m pytest -m reliability $(PYTEST_ARGS)

bench: up ## WSGI-vs-ASGI load comparison through nginx -> reports/latest/report.html (~5 min)
	@$(STACK_ENV); set -x; $(VENV_PY) -m loadtests.bench

bench-quick: up ## the same comparison in about 75 s (BENCH_PROFILE=quick)
	@$(STACK_ENV); set -x; BENCH_PROFILE=quick $(VENV_PY) -m loadtests.bench

bench-matrix: up ## every running variant x io, hello, stream, poll, ws_echo in <= 15 min (VARIANTS=all make up first)
	@$(STACK_ENV); set -x; BENCH_PROFILE=matrix $(VENV_PY) -m loadtests.bench

bench-capacity: up ## ws_capacity: ramp 10,000 WebSockets through nginx; held, handshake latency, KiB per connection
	$(VENV_PY) -m loadtests.bench.capacity

bench-edge: up ## HTTP/1.1 vs HTTP/2 at the edge (h2load): req/s side by side for both services
	$(VENV_PY) -m loadtests.bench.edge

bench-littles-law: up ## each running variant's /io?ms=100 at 50 connections (wrk) vs min(50, capacity)/0.1 s (VARIANTS=all make up first)
	@$(STACK_ENV); set -x; $(VENV_PY) -m loadtests.bench.littles_law

bench-overhead: setup ## instrumented vs bare /hello throughput per service, direct, with wrk (~3 min)
	$(VENV_PY) -m loadtests.bench.overhead

locust: up ## Locust web UI on 127.0.0.1:8089, distributed: one master + LOCUST_WORKERS (default one per core)
	@$(STACK_ENV); set -x; $(VENV)/bin/locust \
	  -f loadtests/locustfile.py --host "$$PUBLIC_URL" \
	  --web-host 127.0.0.1 --processes $${LOCUST_WORKERS:--1} --target $${LOCUST_TARGET:-asgi}

lab: setup ## list the labs; NAME=<lab> runs one against the running stack (N=, MS= where it takes them)
	@$(STACK_ENV); $(VENV_PY) -m loadtests.lab $(NAME) $(if $(N),--n $(N)) $(if $(MS),--ms $(MS))

lint: setup ## ruff, hadolint and the nginx config analyser (gixy)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/hadolint services/Dockerfile loadtests/Dockerfile
	@# gixy on the rendered nginx.conf; the checks it skips, each with its reason, live in the test.
	$(VENV_PY) -m pytest -q -p no:cacheprovider tests/static/test_nginx_config.py -k analyser

format: setup ## format the Python code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: down ## stop the stack and remove state, logs and reports
	rm -rf .run reports
