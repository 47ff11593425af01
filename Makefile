# Developer entry points; CI runs .ci/run, which calls the same scripts.
.PHONY: run test lint bench fmt

run:        ## run the whole platform locally
	deploy/run.sh

test:       ## run the whole test suite (real PostgreSQL and NATS)
	deploy/test.sh

lint:       ## formatting, clippy, buf lint
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	deploy/buf.sh lint

bench:      ## benchmarks (print their figures)
	deploy/bench.sh outbox

fmt:
	cargo fmt --all
