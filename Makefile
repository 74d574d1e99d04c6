# gradviz -- `make test` is THE test command (CI runs it via .ci/run).
#
#   make setup         venv + torch, evcxr_jupyter, apt data, jupyter kernel, .cargo/config.toml
#   make test          fmt, clippy, cargo test, then execute every notebook (--check)
#   make report        execute notebooks -> report/ (HTML per notebook, gradviz-report.html/.pdf)
#   make clean-report  remove report/ and target/notebook-check/
#
# `make report PDF=0` skips installing chromium (no PDF then).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

PY      := $(CURDIR)/.venv/bin/python
PDF     ?= 1
NB_ARGS ?=
# Belt and braces next to the rpath that .cargo/config.toml and build.rs add:
# cargo passes an exported LD_LIBRARY_PATH on to test binaries and doctests.
TORCH_ENV = LD_LIBRARY_PATH="$$(echo $(CURDIR)/.venv/lib/python3*/site-packages/torch/lib)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}"

.PHONY: all setup test report clean-report

all: test

setup:
	bash scripts/setup.sh

test: setup
	cargo fmt --check
	$(TORCH_ENV) cargo clippy --all-targets -- -D warnings
	$(TORCH_ENV) cargo test
	$(PY) scripts/run_notebooks.py --check $(NB_ARGS)

report: export GRADVIZ_PDF = $(PDF)
report: setup
	$(PY) scripts/run_notebooks.py $(if $(filter 0,$(PDF)),--no-pdf) $(NB_ARGS)

clean-report:
	rm -rf report target/notebook-check
