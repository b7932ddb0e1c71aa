# Ferry's everyday commands. `make run` and `make test` work on a fresh machine.
VENV := .venv
BIN := $(VENV)/bin
FERRY := $(BIN)/ferry

.PHONY: setup up down status run test test-unit lint format security clean-stack bench-ingest bench-upload

setup:            ## install everything Ferry needs (idempotent)
	@bash scripts/setup.sh

up: setup         ## start the local stack and migrate the database
	@$(FERRY) stack up
	@$(FERRY) db upgrade

down:             ## stop the local stack (data is kept)
	@$(FERRY) stack down

status:
	@$(FERRY) stack status

run: up           ## the whole system with demo uploads, until Ctrl-C
	@$(FERRY) demo

test: up lint     ## lint, then the whole test suite on the local stack
	@$(BIN)/pytest

test-unit: setup
	@$(BIN)/pytest tests/unit

lint: setup
	@$(BIN)/ruff check ferry tests bench
	@$(BIN)/ruff format --check ferry tests bench
	@$(BIN)/mypy

format:
	@$(BIN)/ruff format ferry tests bench
	@$(BIN)/ruff check --fix ferry tests bench

security: setup   ## bandit on ferry/, pip-audit on the dependencies; fails on HIGH findings not in security/allowlist.toml
	@mkdir -p test-artifacts/security
	@rm -f test-artifacts/security/bandit.json test-artifacts/security/pip-audit.json
	@$(BIN)/bandit -r ferry -q -f json -o test-artifacts/security/bandit.json || true
	@$(BIN)/pip-audit --skip-editable --progress-spinner off -f json \
		-o test-artifacts/security/pip-audit.json 2>test-artifacts/security/pip-audit.log || true
	@$(BIN)/python scripts/security.py --allowlist security/allowlist.toml \
		--bandit test-artifacts/security/bandit.json --pip-audit test-artifacts/security/pip-audit.json

bench-ingest: up  ## what the bridge costs on top of Temporal (prints a table, writes JSON)
	@$(BIN)/python bench/ingest.py

bench-upload: up  ## the whole upload workflow: small files/s, one 1 GiB file, thumbnails
	@$(BIN)/python bench/upload.py

clean-stack:      ## stop the stack and wipe its data
	@$(FERRY) stack reset --yes
