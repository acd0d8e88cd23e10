# The two commands of the README:
#   make run    set up, build, and run the main job on the embedded default
#   make test   set up, build, and pass the tests
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export VILA2_COMPONENTS := $(CARGO_TARGET_DIR)/wasm32-wasip2/release

# First-party components and the fault-test guest, built for wasm32-wasip2.
COMPONENTS := vila2-recaption vila2-quality vila2-grounding vila2-ocr vila2-spatial vila2-faulty-plugin
VILA2 := $(CARGO_TARGET_DIR)/release/vila2
# The portal's data folder (`make run`).
DATA ?= vila2-data

.PHONY: setup components build run plugin-demo test lint bench demo

setup:
	@scripts/setup.sh

components: setup
	cargo build --target wasm32-wasip2 --release $(addprefix -p ,$(COMPONENTS))

# `vila2` and the portal binary beside it (`vila2 serve|migrate|admin` run `vila2-portal`).
build: components
	cargo build --release -p vila2 -p vila2-web

# The portal on 127.0.0.1:8080, SQLite in vila2-data/, with an admin login (printed).
run: build
	@scripts/run-portal.sh "$(VILA2)" "$(DATA)"

# The first-party components at work through `vila2 plugin run`.
plugin-demo: build
	@scripts/plugin-demo.sh "$(VILA2)" "$(VILA2_COMPONENTS)"

# The miniature VILA² reproduction (~40 min of CPU time, docs/RESULTS.md); `DEMO_ARGS=--preset full` on a GPU.
demo: build
	$(VILA2) demo $(DEMO_ARGS)

# One libtorch thread per test: cargo runs tests in parallel, and the tests' tiny models
# lose more to OpenMP barriers on oversubscribed cores than they gain from a second thread.
test: export OMP_NUM_THREADS ?= 1
test: components
	cargo test --workspace --no-fail-fast

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip2 $(addprefix -p ,$(COMPONENTS)) -- -D warnings

bench: components
	cargo bench -p vila2 --bench quality_filter
