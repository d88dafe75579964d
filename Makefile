# Everything runs from the project's own files: `make test` on a fresh machine needs only
# Python 3.11 and the package registries.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format typecheck unit demo demo-serve bench bench-peer bench-instructions chart-docs \
	clean fuzz image image-test

install: $(STAMP)

# setup.py and the C sources: the extensions are rebuilt when they change.
$(STAMP): pyproject.toml setup.py consumer/avro/_avro_reader.c transforms/_sha256_hex.c \
		consumer/cli/_json_values.c
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,fast]'
	@$(BIN)/python -c 'import consumer.avro._avro_reader' 2>/dev/null \
	  || echo "warning: the compiled Avro reader was not built (no C compiler?): decoding uses cavro"
	@$(BIN)/python -c 'import transforms._sha256_hex' 2>/dev/null \
	  || echo "warning: transforms/_sha256_hex.c was not built (no C compiler?): hashing uses hashlib"
	@$(BIN)/python -c 'import consumer.cli._json_values' 2>/dev/null \
	  || echo "warning: consumer/cli/_json_values.c was not built (no C compiler?): map reads with orjson"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check consumer transforms schemas tests bench scripts
	$(BIN)/ruff format --check consumer transforms schemas tests bench scripts

format: install
	$(BIN)/ruff check --fix consumer transforms schemas tests bench scripts
	$(BIN)/ruff format consumer transforms schemas tests bench scripts

typecheck: install
	$(BIN)/mypy --strict transforms consumer

unit: install
	$(BIN)/pytest -q -m "not integration"

# -rs prints why a test was skipped (the browser test without Chromium, unless REQUIRE_BROWSER=1).
test: lint typecheck
	$(BIN)/pytest -q -rs -p no:cacheprovider

demo: install
	$(BIN)/capi-consumer demo

# The demo kept running: open the printed inspector and sandbox URLs; Ctrl-C stops everything.
demo-serve: install
	$(BIN)/capi-consumer demo --serve

# The chart's README values table, from the `# --` comments in values.yaml.
chart-docs: install
	$(BIN)/python -m scripts.chart_docs

# The Quix Streams peer pins an older confluent-kafka: it gets its own virtualenv.
PEER := bench/.peer-venv
$(PEER)/.installed: bench/peer-requirements.txt
	test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install --quiet -r bench/peer-requirements.txt
	touch $@

bench-peer: $(PEER)/.installed

bench: install bench-peer
	$(BIN)/python -m bench.run

# The same comparisons counted in instructions by valgrind: no noise from a shared machine.
bench-instructions: install bench-peer
	$(BIN)/python -m bench.bench_instructions

# The compiled Avro reader under ASan + UBSan, differentially with fastavro (tests/fuzz/fuzz.py);
# failing inputs are saved in tests/fuzz/crashes/.
FUZZ_SECONDS ?= 60
FUZZ_SEED ?= 0
fuzz: install
	$(BIN)/python -m tests.fuzz.fuzz --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)

# The container image, built and checked with podman (container/image.sh says what is checked).
# PYTHON_IMAGE: the base image; unset, a local one is bootstrapped once with mmdebstrap.
IMAGE ?= localhost/openai-capi-consumer:local
PYTHON_IMAGE ?=
image:
	IMAGE="$(IMAGE)" PYTHON_IMAGE="$(PYTHON_IMAGE)" container/image.sh build

# Checks the image `make image` built.
image-test: install
	IMAGE="$(IMAGE)" PYTHON_IMAGE="$(PYTHON_IMAGE)" container/image.sh test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info consumer/*/*.so
