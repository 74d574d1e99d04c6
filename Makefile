# gradviz -- `make test` is THE test command (CI runs it via .ci/run).
#
#   make setup         venv + torch, evcxr_jupyter, apt data, jupyter kernel, .cargo/config.toml
#   make test          fmt, clippy, cargo test, execute every notebook (--check), notebook workflow tests
#   make report        execute notebooks -> report/ (HTML per notebook, gradviz-report.html/.pdf)
#   make lab           open notebooks/ in JupyterLab (installs it into .venv if missing)
#   make clean-report  remove report/ and target/notebook-check/
#
# `make report PDF=0` skips installing chromium (no PDF then). NB_JOBS notebooks run at the
# same time, each kernel in its own build directory (environment.md, "Several notebooks at once").

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

PY      := $(CURDIR)/.venv/bin/python
PDF     ?= 1
NB_ARGS ?=
NB_JOBS ?= 2
# Belt and braces next to the rpath that .cargo/config.toml and build.rs add:
# cargo passes an exported LD_LIBRARY_PATH on to test binaries and doctests.
TORCH_ENV = LD_LIBRARY_PATH="$$(echo $(CURDIR)/.venv/lib/python3*/site-packages/torch/lib)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}"

.PHONY: all setup test test-notebook-workflow report lab clean-report

all: test

setup:
	bash scripts/setup.sh

test: setup
	cargo fmt --check
	$(TORCH_ENV) cargo clippy --all-targets -- -D warnings
	@# Examples are benchmarks: clippy --all-targets checks them; linking each against libtorch
	@# again here would only cost time.
	$(TORCH_ENV) cargo test --no-fail-fast --lib --bins --tests
	$(TORCH_ENV) cargo test --doc
	$(PY) scripts/run_notebooks.py --check --jobs $(NB_JOBS) $(NB_ARGS)
	$(MAKE) test-notebook-workflow

# Two notebooks at once, the README's notebook cells, progress output, `make lab`, the latency
# benchmark: through the real kernel (after the notebooks, so the build directories are warm).
test-notebook-workflow: setup
	$(PY) -m unittest discover -s tests/notebooks -v

report: export GRADVIZ_PDF = $(PDF)
report: setup
	$(PY) scripts/run_notebooks.py --jobs $(NB_JOBS) $(if $(filter 0,$(PDF)),--no-pdf) $(NB_ARGS)

lab: export GRADVIZ_LAB = 1
lab: setup
	$(PY) scripts/lab.py

clean-report:
	rm -rf report target/notebook-check
