# stacktune: the two commands people need are `make demo` and `make test`.
.PHONY: setup demo demo-down plan bench bench-quick test unit lint collection clean

setup:
	scripts/setup

demo: setup
	scripts/demo

demo-down:
	scripts/demo-container down

# The plan for this machine, without deploying anything.
plan: setup
	scripts/stacktune plan

# Benchmarks: defaults vs PGTune vs stacktune, interleaved (README.md, "Benchmarks").
bench: setup
	scripts/bench-prepare
	scripts/bench --order rotate --kit-config bench/kit.json --http-config bench/http.json \
	    --naive-config bench/naive.json --recorder-config bench/recorder.json

bench-quick: setup
	scripts/container-harness bookworm
	scripts/bench --quick

test: setup
	scripts/test

unit: setup
	.venv/bin/pytest -q -n auto tests

lint: setup
	scripts/lint

# The Ansible collection tarball (stacktune.stacktune), in .cache/collection/.
collection: setup
	scripts/build-collection

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis
