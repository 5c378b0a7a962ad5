# gwsms: `make run` starts the gateway on the embedded SQLite default,
# `make test` runs the whole suite. Both set everything up first.

PYTHON ?= python3
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
