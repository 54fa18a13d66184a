# The README's commands. Each target sets up what it needs first (system packages, .venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: up down test lint bench hosts-demo system-deps clean

up: $(STAMP)
	$(BIN)/dfs up

down: $(STAMP)
	$(BIN)/dfs down

test: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (style, imports, likely bugs) and mypy (types): part of `make test`, so of CI.
lint: $(STAMP)
	$(BIN)/ruff check dfs nodes mount tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

# master, shadow, 4 workers and a client, each on a host of its own (network namespaces;
# as root): says how to reach them, removes everything on Ctrl-C
hosts-demo: $(STAMP)
	$(BIN)/python -m dfs.local.hosts

# fuse3 for the mount, libglib2.0-bin for `gio` (browsing as file managers do, in the
# tests), iproute2 for `ip` (the hosts of tests/t5_*), chromium for the status page's test
# in a real headless browser, git and rsync for the everyday programs run in a mount
# (tests/t4_programs.py), attr for setfattr/getfattr (tests/t4_xattr.py): installed with
# apt when missing (as root, or through sudo).
SYSTEM_PACKAGES := fuse3 libglib2.0-bin iproute2 chromium git rsync attr
system-deps:
	@if ! command -v fusermount3 >/dev/null 2>&1 || ! command -v gio >/dev/null 2>&1 || \
	    ! PATH="$$PATH:/usr/sbin:/sbin" command -v ip >/dev/null 2>&1 || \
	    ! command -v chromium >/dev/null 2>&1 || ! command -v git >/dev/null 2>&1 || \
	    ! command -v rsync >/dev/null 2>&1 || ! command -v setfattr >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "missing $(SYSTEM_PACKAGES): apt-get install them as root"; exit 1; fi; \
	  echo "installing $(SYSTEM_PACKAGES)"; \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

$(STAMP): setup.cfg requirements.txt pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -e '.[test,mount]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
