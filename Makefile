# Kluis: `make run` and `make test` do all set-up on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
EARK_VENV := .venv-eark
BIN := $(VENV)/bin
# Debian packages the tests use: pdfsig (independent signature check), certutil (its NSS db),
# SoftHSM2 (the PKCS#11 key source; the tests initialise their own token in a temp dir).
DEB_TEST_PACKAGES := poppler-utils libnss3-tools softhsm2

.PHONY: run test install install-test deb-test-packages check pytest pytest-s3 clean

run: install
	$(BIN)/kluis serve

test: install-test check pytest-s3

install: $(VENV)/.installed
# deploy/constraints*.txt pin every dependency to the versions tested together, so a new
# release on PyPI cannot change a build behind our back (see deploy/README.md).
$(VENV)/.installed: pyproject.toml deploy/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c deploy/constraints.txt -e .
	touch $@

install-test: $(VENV)/.installed-test $(EARK_VENV)/.installed deb-test-packages
$(VENV)/.installed-test: pyproject.toml deploy/constraints.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -c deploy/constraints.txt -e '.[test]'
	touch $@

# eark-validator pins lxml 5.1, which our stack (pyHanko) cannot use: it gets a venv of
# its own and the tests run it as a separate, independent tool.
$(EARK_VENV)/.installed: deploy/constraints-eark.txt
	$(PYTHON) -m venv $(EARK_VENV)
	$(EARK_VENV)/bin/pip install --quiet -c deploy/constraints-eark.txt eark-validator==1.1.3
	touch $@

deb-test-packages:
	@missing=""; \
	command -v pdfsig >/dev/null || missing="$$missing poppler-utils"; \
	command -v certutil >/dev/null || missing="$$missing libnss3-tools"; \
	command -v softhsm2-util >/dev/null || missing="$$missing softhsm2"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

check:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest

# Ceph RGW for the S3 tests (deploy/ceph/start.sh installs the Debian packages if missing): a
# fresh memstore cluster, stopped and wiped afterwards even when pytest fails. With
# KLUIS_REQUIRE_BACKENDS=fs,s3 a missing S3 server fails the tests instead of skipping them.
CEPH_ENV := S3_DATA_DIR=/tmp/kluis-ceph CEPH_OBJECTSTORE=memstore S3_PYTHON=$(BIN)/python
pytest-s3:
	@set -eo pipefail; \
	trap '$(CEPH_ENV) S3_WIPE=1 bash deploy/ceph/stop.sh' EXIT; \
	endpoint=$$($(CEPH_ENV) bash deploy/ceph/start.sh | tail -n 1); \
	echo "S3 (Ceph RGW) at $$endpoint"; \
	KLUIS_TEST_S3_ENDPOINT=$$endpoint KLUIS_REQUIRE_BACKENDS=fs,s3 $(BIN)/pytest

clean:
	rm -rf $(VENV) $(EARK_VENV) var .mypy_cache .ruff_cache .pytest_cache
