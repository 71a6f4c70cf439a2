# Two entry points, each self-contained on a fresh machine:
#   make book  - install, execute every chapter on the embedded profile, build the HTML book
#   make test  - install, run the unit tests, nbval over every chapter, and the browser check
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := dataset-fashion-mnist chromium npm
# One single-threaded process per core (the pinned numerics, mixuplib/numerics.py), never more.
JOBS ?= $(shell nproc)
MATHJAX := .cache/mathjax/node_modules/mathjax/es5/tex-mml-chtml.js

.PHONY: book test bench system clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Fashion-MNIST comes from Debian's package (no internet needed); Chromium drives the browser
# check, and npm brings the MathJax release the pages load, so the check typesets offline.
system:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
		if [ $$p = npm ]; then command -v npm >/dev/null || echo npm; else dpkg -s $$p >/dev/null 2>&1 || echo $$p; fi; \
	done); \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

book: system $(VENV)/.installed
	$(PY) -m mixuplib.book run --profile embedded --jobs $(JOBS)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

$(MATHJAX):
	npm install --prefix .cache/mathjax --no-save --no-audit --no-fund --loglevel=error mathjax@3

# The chapters first: they are the longest files, and the short unit-test files then fill the
# tail, so both workers finish at about the same time.
test: system $(VENV)/.installed $(MATHJAX)
	$(PY) -m pytest -n $(JOBS) --dist loadfile notebooks tests --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_mixup.py

clean:
	rm -rf _build runs .cache/runs
