# Everything runs from the project's own files: `make test` on a fresh machine needs only
# Python 3.11 and the package registries.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format typecheck unit demo bench bench-peer bench-instructions clean

install: $(STAMP)

# setup.py and the C source: the compiled Avro reader is rebuilt when they change.
$(STAMP): pyproject.toml setup.py consumer/avro/_avro_reader.c
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,fast]'
	@$(BIN)/python -c 'import consumer.avro._avro_reader' 2>/dev/null \
	  || echo "warning: the compiled Avro reader was not built (no C compiler?): decoding uses cavro"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check consumer transforms schemas tests bench
	$(BIN)/ruff format --check consumer transforms schemas tests bench

format: install
	$(BIN)/ruff check --fix consumer transforms schemas tests bench
	$(BIN)/ruff format consumer transforms schemas tests bench

typecheck: install
	$(BIN)/mypy --strict transforms consumer

unit: install
	$(BIN)/pytest -q -m "not integration"

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

demo: install
	$(BIN)/capi-consumer demo

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

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info consumer/*/*.so
