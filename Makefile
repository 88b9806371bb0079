# faxgate build and run targets. `make run` and `make test` install everything
# they need themselves: the virtual environment, the Python packages and the
# spandsp system library.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := libspandsp2 libtiff6 fonts-dejavu-core
# Test-only tools: OCR and Ghostscript for the benchmarks, swaks for one SMTP
# test, systemd for `systemd-analyze verify` on the unit file, openssl for the
# notifier tests' self-signed smarthost certificate.
TEST_SYSTEM_PACKAGES := tesseract-ocr ghostscript swaks systemd openssl

.PHONY: run test lint typecheck unit system-deps test-system-deps bench clean

run: $(STAMP) system-deps
	$(BIN)/faxgate --config config/faxgate.toml serve

test: $(STAMP) system-deps test-system-deps lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check faxgate tests $(wildcard bench/*.py)

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@./scripts/ensure-system-packages $(SYSTEM_PACKAGES)

test-system-deps:
	@./scripts/ensure-system-packages --optional $(TEST_SYSTEM_PACKAGES)

bench: $(STAMP) system-deps test-system-deps
	$(BIN)/python bench/modem.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/legibility.py
	$(BIN)/python bench/api.py
	$(BIN)/python bench/smtp.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
