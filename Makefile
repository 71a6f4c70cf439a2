# Two entry points, each self-contained on a fresh machine:
#   make book  - install, execute every chapter on the embedded profile, build the HTML book
#   make test  - install, run the unit tests, nbval over every chapter, and the browser check
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# One single-threaded process per core (the pinned numerics, mixuplib/numerics.py), never more.
JOBS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu)
MATHJAX := .cache/mathjax/node_modules/mathjax/es5/tex-mml-chtml.js
FASHION_MNIST_DEB ?= /usr/share/datasets/fashion-mnist
# How Debian packages get installed here: apt-get as root, or through sudo without a password;
# empty where neither works (macOS, a university account), and every package is then optional.
APT := $(shell command -v apt-get >/dev/null && command -v dpkg >/dev/null && \
	{ [ "$$(id -u)" = 0 ] && echo apt-get || { sudo -n true 2>/dev/null && echo "sudo apt-get"; }; })

.PHONY: book test bench system data clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Debian's dataset-fashion-mnist brings Fashion-MNIST without internet, chromium drives the
# browser check, and npm brings the MathJax release the pages load, so the check typesets
# offline. Each is optional: without apt-get (or root or sudo), one line says what happens instead.
system:
	@missing=$$([ -f $(FASHION_MNIST_DEB)/train-images-idx3-ubyte.gz ] || echo dataset-fashion-mnist; \
		command -v chromium >/dev/null || echo chromium; command -v npm >/dev/null || echo npm); \
	if [ -n "$$missing" ] && [ -n "$(APT)" ]; then \
		$(APT) update -q && DEBIAN_FRONTEND=noninteractive $(APT) install -y -q $$missing; \
	elif [ -n "$$missing" ]; then \
		for p in $$missing; do case $$p in \
		dataset-fashion-mnist) echo "system: no apt-get, or neither root nor sudo: Fashion-MNIST is downloaded through torchvision instead (checksummed, once)";; \
		chromium) echo "system: no apt-get, or neither root nor sudo: no Chromium, so make test skips the browser check";; \
		npm) echo "system: no apt-get, or neither root nor sudo: no npm, so no local MathJax and make test skips the browser check";; \
		esac; done; \
	fi

# Fashion-MNIST where the chapters read it (data/): Debian's files, else a checksummed download.
data: $(VENV)/.installed
	@$(PY) -m mixuplib.book data

book: system $(VENV)/.installed data
	$(PY) -m mixuplib.book run --profile embedded --jobs $(JOBS)
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

$(MATHJAX):
	@if command -v npm >/dev/null; then \
		npm install --prefix .cache/mathjax --no-save --no-audit --no-fund --loglevel=error mathjax@3; \
	else echo "mathjax: no npm, so no local MathJax"; fi

# The chapters first: they are the longest files, and the short unit-test files then fill the
# tail, so both workers finish at about the same time. Without Chromium or the local MathJax
# the browser check is skipped with its reason (tests/test_browser.py); with both, it must pass.
test: system $(VENV)/.installed data $(MATHJAX)
	@reason=$$({ command -v chromium >/dev/null || echo "Chromium is not installed"; \
		[ -f $(MATHJAX) ] || echo "MathJax is not under .cache/mathjax (npm is needed)"; } | paste -sd ';' -); \
	if [ -n "$$reason" ]; then echo "test: skipping the browser check: $$reason"; fi; \
	MIXUPLIB_SKIP_BROWSER="$$reason" $(PY) -m pytest -n $(JOBS) --dist loadfile notebooks tests --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_mixup.py

clean:
	rm -rf _build runs .cache/runs
