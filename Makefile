# CaseConsultant: `make demo` runs the whole loop on embedded servers; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TEST_PACKAGES := dovecot-imapd postgresql openssl chromium

.PHONY: install demo test test-deps bench clean

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

test: install test-deps
	$(BIN)/pytest -q

bench: install test-deps
	@for script in bench/*.py; do $(BIN)/python $$script; done

clean:
	rm -rf $(VENV) var .pytest_cache
