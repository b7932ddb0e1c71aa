# Ferry's everyday commands. `make run` and `make test` work on a fresh machine.
VENV := .venv
BIN := $(VENV)/bin
FERRY := $(BIN)/ferry

.PHONY: setup up down status run test test-unit lint format bench-ingest clean-stack

setup:            ## install everything Ferry needs (idempotent)
	@bash scripts/setup.sh

up: setup         ## start the local stack
	@$(FERRY) stack up

down:             ## stop the local stack (data is kept)
	@$(FERRY) stack down

status:
	@$(FERRY) stack status

run: up           ## the whole system with demo uploads, until Ctrl-C
	@$(FERRY) demo

test: up          ## the whole test suite on the local stack
	@$(BIN)/pytest

test-unit: setup
	@$(BIN)/pytest tests/unit

lint:
	@$(BIN)/ruff check ferry tests bench
	@$(BIN)/ruff format --check ferry tests bench
	@$(BIN)/mypy

format:
	@$(BIN)/ruff format ferry tests bench
	@$(BIN)/ruff check --fix ferry tests bench

clean-stack:      ## stop the stack and wipe its data
	@$(FERRY) stack reset --yes
