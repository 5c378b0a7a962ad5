# gwsms: `make run` starts the gateway on the embedded SQLite default,
# `make test` runs the whole suite. Both set everything up first.

# The interpreter .venv is made from: the first Python 3.11 here that can
# make a venv, Debian's /usr/bin/python3.11 (PGO and LTO; why: README.md)
# first.  Evaluated only when .venv is made.  It needs Debian's
# python3.11-venv (.ci/run installs it).  `make PYTHON=/path/to/python3.11`
# picks another; a .venv made before keeps its interpreter until
# `make distclean`.
PYTHON ?= $(shell for p in /usr/bin/python3.11 python3.11 python3; do \
	$$p -c 'import sys, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' \
	>/dev/null 2>&1 && { echo $$p; exit 0; }; done; echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= etc/gwsms.toml
TRIAL_JOBS ?= 2

.PHONY: all install run test test-unit bench plugin-cache clean distclean

all: install

install: $(VENV)/.installed

# The stamp is rebuilt whenever the packaging metadata changes.
$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --config-settings editable_mode=compat -e '.[mysql,test]'
	# Independent SMPP oracle/peer for the tests only: they pin an old Twisted,
	# so they are installed without their dependencies.
	$(BIN)/python -m pip install -q --no-deps 'smpp.pdu3>=0.6' 'smpp.twisted3>=0.8'
	$(MAKE) --no-print-directory plugin-cache
	touch $@

plugin-cache:
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"

run: install
	$(BIN)/twistd -n gwsms --config $(CONFIG)

test: install
	$(BIN)/python -m twisted.trial -j$(TRIAL_JOBS) tests

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf _trial_temp* .hypothesis build *.egg-info twisted/plugins/dropin.cache
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) var
