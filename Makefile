# stacktune: the two commands people need are `make demo` and `make test`.
.PHONY: setup demo test unit lint molecule clean

setup:
	scripts/setup

demo: setup
	scripts/demo

test: setup
	scripts/test

unit: setup
	.venv/bin/pytest -q tests

lint: setup
	scripts/lint

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis
