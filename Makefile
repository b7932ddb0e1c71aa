# Ferry's everyday commands. `make run` and `make test` work on a fresh machine.
VENV := .venv
BIN := $(VENV)/bin
FERRY := $(BIN)/ferry

.PHONY: setup up down status run test test-unit lint format security clean-stack bench-ingest bench-upload bench-fairness bench-orchestration chaos

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

# The suite runs under coverage, the Python processes it starts included ([tool.coverage.run]
# in pyproject.toml); the data of all of them is combined into one report in $(COVERAGE):
# html/index.html, coverage.xml and report.txt (the modules below 100%, worst first), of which
# the ten worst and the total are printed. make test fails when a test fails, and when the
# total is under the floor ([tool.coverage.report] fail_under, the one place it is set).
# (PYTEST_ARGS picks tests for a trial run of this target; the floor is for the whole suite.)
COVERAGE := test-artifacts/coverage

test: up lint     ## lint, then the whole test suite on the local stack, with coverage (fails under its floor)
	@$(BIN)/coverage erase
	@tests=0; $(BIN)/coverage run -m pytest $(PYTEST_ARGS) || tests=$$?; \
	$(BIN)/coverage combine --quiet && \
	$(BIN)/coverage html --quiet --fail-under=0 && \
	$(BIN)/coverage xml --quiet --fail-under=0 || exit 1; \
	floor=0; $(BIN)/coverage report > $(COVERAGE)/report.txt || floor=$$?; \
	awk '/^-/ { rules++ } rules >= 2 || (NR <= 12 && rules < 2) { print } \
		NR == 13 && rules < 2 { print "..." }' $(COVERAGE)/report.txt; \
	echo "coverage report: $(COVERAGE)/html/index.html"; \
	exit $$(( tests ? tests : floor ))

test-unit: setup
	@$(BIN)/pytest tests/unit

lint: setup
	@$(BIN)/ruff check ferry tests bench
	@$(BIN)/ruff format --check ferry tests bench
	@$(BIN)/mypy
	@$(BIN)/lint-imports

format:
	@$(BIN)/ruff format ferry tests bench
	@$(BIN)/ruff check --fix ferry tests bench

# The dependency audit: osv-scanner (built by setup.sh) reads the exact installed set (pip freeze,
# Ferry itself excluded) and an offline copy of the PyPA advisories, by default the sibling of the
# repository, else the workplace's /work/shared/vulndb (see its README.md): make security
# VULNDB=/path/to/vulndb for another copy; with none of them the check fails. The names are normalised
# (PEP 503) because osv-scanner drops a requirement whose name has a dot (boolean.py) without a
# word. osv-scanner exits 1 when it finds vulnerabilities: the judge gets its exit code and fails
# on anything else (no database, a crash) with exit 2, whatever the report says.
# (Found by its advisories, not its directory: osv-scanner creates an empty one where it looks.)
VULNDB_ZIP := osv-scanner/PyPI/all.zip
VULNDB ?= $(or $(patsubst %/$(VULNDB_ZIP),%,$(firstword $(wildcard \
	../shared/vulndb/$(VULNDB_ZIP) /work/shared/vulndb/$(VULNDB_ZIP)))),../shared/vulndb)
OSV_SCANNER := $(or $(FERRY_CACHE_DIR),$(HOME)/.cache/ferry)/osv-scanner-2.3.0/bin/osv-scanner
SECURITY := test-artifacts/security

security: setup   ## bandit on ferry/, osv-scanner on the installed dependencies (offline PyPA advisories); fails on findings not in security/allowlist.toml
	@rm -rf $(SECURITY) && mkdir -p $(SECURITY)
	@$(BIN)/pip freeze --exclude-editable \
		| sed -E 's/^[A-Za-z0-9._-]+/\L&/; :n; s/^([a-z0-9-]*[a-z0-9])([._-]{2,}|[._])([a-z0-9])/\1-\3/; tn' \
		> $(SECURITY)/requirements.txt
	@$(BIN)/bandit -r ferry -q -f json -o $(SECURITY)/bandit.json || true
	@status=0; $(OSV_SCANNER) scan --offline --local-db-path $(VULNDB) --all-packages \
		-L requirements.txt:$(SECURITY)/requirements.txt --format json \
		--output $(SECURITY)/osv-scanner.json 2>$(SECURITY)/osv-scanner.log || status=$$?; \
	$(BIN)/python scripts/security.py --allowlist security/allowlist.toml \
		--bandit $(SECURITY)/bandit.json --osv-scanner $(SECURITY)/osv-scanner.json \
		--osv-exit-code $$status --requirements $(SECURITY)/requirements.txt --vulndb $(VULNDB)

bench-ingest: up  ## what the bridge costs on top of Temporal (prints a table, writes JSON)
	@$(BIN)/python bench/ingest.py

bench-upload: up  ## the whole upload workflow: small files/s, one 1 GiB file, thumbnails
	@$(BIN)/python -c 'import pyvips' 2>/dev/null || $(BIN)/pip install -q -e '.[bench]'
	@$(BIN)/python bench/upload.py

bench-fairness: up  ## a quiet tenant's upload behind another's burst, fairness off and on
	@$(BIN)/python bench/fairness.py $(FAIRNESS_ARGS)

bench-orchestration: up  ## Temporal's CPU per workflow by shape, no-op steps: the floor under bench-upload
	@$(BIN)/python bench/orchestration.py

clean-stack:      ## stop the stack and wipe its data
	@$(FERRY) stack reset --yes

chaos: up  ## 10 minutes of mixed traffic under faults, checked from the outside (prints a table, writes JSON)
	@$(BIN)/python bench/chaos.py $(CHAOS_ARGS)
