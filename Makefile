# Developer entry points; CI runs .ci/run, which calls the same scripts.
.PHONY: run test lint bench fmt fresh-check api-check ci

run:        ## run the whole platform locally
	deploy/run.sh

test:       ## run the whole test suite (real PostgreSQL and NATS)
	deploy/test.sh

lint:       ## formatting, clippy, buf lint
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	deploy/buf.sh lint

fresh-check: ## set-up and the whole suite in a fresh minimal Debian root (root)
	deploy/fresh-check.sh

api-check:  ## schemathesis over /openapi.json, then /docs in headless Chromium
	deploy/api-check.sh

ci:         ## everything CI runs
	bash .ci/run

bench:      ## benchmarks (print their figures)
	deploy/bench.sh outbox

fmt:
	cargo fmt --all
