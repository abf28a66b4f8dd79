# CaseConsultant: `make demo` runs the whole loop on embedded servers; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TEST_PACKAGES := dovecot-imapd postgresql openssl chromium

.PHONY: install demo test test-deps bench bench-full clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
	  echo "installing python3-venv"; apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; }; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[demo,test]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/consultant demo

# Real servers for the tests come from Debian: Dovecot, PostgreSQL, openssl (for test certificates),
# and Chromium for the desk's browser tests (Playwright drives it; it never downloads a browser).
test-deps:
	@missing=""; \
	command -v dovecot >/dev/null 2>&1 || missing="$$missing dovecot-imapd"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing || \
	  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; }; \
	fi

# Two processes, one per core; each file stays on one process (module fixtures are built once).
test: install test-deps
	$(BIN)/pytest -q -n 2 --dist loadfile

# Each bench script prints one JSON line. `make bench` runs them at sizes that take a few minutes;
# `make bench-full` at the issue's sizes (5,000-message backlog, 20,000 scaling, 100,000-question desk).
bench: install test-deps
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/compute.py
	$(BIN)/python bench/lookup.py --ptp-rows 50000 --questions 100
	$(BIN)/python bench/ingest.py --messages 1000 --db both
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/web.py --questions 20000

bench-full: install test-deps
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/compute.py
	$(BIN)/python bench/lookup.py
	$(BIN)/python bench/ingest.py --messages 5000 --db both
	$(BIN)/python bench/ingest.py --messages 5000 --db both --codes wide
	$(BIN)/python bench/ingest.py --scaling
	$(BIN)/python bench/latency.py
	$(BIN)/python bench/latency.py --db postgres
	$(BIN)/python bench/send.py --messages 2000 --rounds 3
	$(BIN)/python bench/web.py

clean:
	rm -rf $(VENV) var .pytest_cache
