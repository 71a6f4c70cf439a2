# Two entry points, each self-contained on a fresh machine:
#   make book  - install, execute every chapter on the embedded profile, build the HTML book
#   make test  - install, run the unit tests, nbval over every chapter, and the browser check
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := dataset-fashion-mnist chromium

.PHONY: book test bench system clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Fashion-MNIST comes from Debian's package (no internet needed); Chromium drives the browser check.
system:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

book: system $(VENV)/.installed
	$(PY) -m mixuplib.book run --profile embedded
	$(VENV)/bin/jupyter-book build . --warningiserror --nitpick --keep-going

test: system $(VENV)/.installed
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_mixup.py

clean:
	rm -rf _build runs
