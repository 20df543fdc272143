# Entry points. Everything is installed under $(THREETIER_CACHE) (default ~/.cache/threetier-k8s),
# never into the repo or the system. See README.md. scripts/ holds what a user or maintainer runs (setup, the
# tool builds, the EE build, the doc generators, the demo); tests/harness/ holds what the tests run on (the local
# cluster, the real node, the e2e images, the benchmarks).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ENV := . scripts/env.sh
PYTEST_ARGS ?=

.PHONY: help setup lint test unit charts audit integration e2e e2e-ci demo-down e2e-setup e2e-images e2e-up e2e-down demo cluster-up cluster-down cluster-status lock changelog build network-docs bench bench-converge docs chart-gen ee

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## Install the pinned Python and Go toolchain into the cache (seconds when warm)
	scripts/setup.sh

lint: setup ## ansible-lint (production), yamllint, ruff, ansible-test sanity
	$(ENV) && python -m pytest tests/lint $(PYTEST_ARGS)

# tests/audit (`make audit`) needs two advisory services that give no verdict on the project's machines
# (docs/security.md): it is the one tier `make test` leaves out, and it says so first.
test: setup ## Every test tier but the live dependency audits (make audit); a tier that cannot run fails the run unless it is allowed to skip
	@echo "not run by make test: tests/audit (make audit), PyPI's and npm's advisory services give no verdict on the project's machines (docs/security.md)"
	$(ENV) && python -m pytest tests --ignore=tests/audit $(PYTEST_ARGS)

unit: setup ## Filter plugin unit and property tests
	$(ENV) && python -m pytest tests/unit $(PYTEST_ARGS)

charts: setup ## Chart tier: lint, render, schema, Pod Security, security scan
	$(ENV) && python -m pytest tests/charts $(PYTEST_ARGS)

audit: setup ## Dependency audits (pip-audit, npm audit) judged by security/policy.yml; needs PyPI's and npm's advisory services
	$(ENV) && python -m pytest tests/audit $(PYTEST_ARGS)

integration: setup ## Molecule default scenario on the local (KWOK) cluster, RDS mode on moto
	$(ENV) && python -m pytest tests/integration $(PYTEST_ARGS)

e2e: e2e-images ## Real-node tier: molecule test -s e2e, every proof (root; not part of `make test`)
	$(ENV) && tests/harness/real_node/run.sh e2e

e2e-ci: e2e-images ## The real-node pass CI runs: converge, idempotence and the functional proofs (root)
	$(ENV) && tests/harness/real_node/run.sh e2e-ci

e2e-setup: ## Install the e2e tier's Debian packages and build its Go tools (kubelet, kube-proxy, CoreDNS, kube-router, Traefik)
	scripts/setup.sh --e2e

e2e-images: e2e-setup ## Build the e2e tier's images without Docker (system add-ons, example app, toolbox)
	$(ENV) && tests/harness/images/build-images.sh

e2e-up: e2e-images ## Start the real node with its add-ons, PostgreSQL 17 and moto's S3 (kept until e2e-down)
	$(ENV) && tests/harness/real_node/node.sh up && E2E_PG_LISTEN=$${THREETIER_E2E_NODE_IP:-10.213.0.1} E2E_PG_CLIENT_CIDR=10.244.0.0/16 tests/harness/real_node/postgres.sh start \
	  && E2E_S3_LISTEN=$${THREETIER_E2E_NODE_IP:-10.213.0.1} tests/harness/real_node/s3.sh start

e2e-down: ## Stop the real node, PostgreSQL and moto's S3, removing every trace
	$(ENV) && tests/harness/real_node/node.sh down && tests/harness/real_node/postgres.sh stop && tests/harness/real_node/s3.sh stop

demo: setup ## site.yml -i inventories/local on the real node (KWOK where it cannot run); prints the app's URL
	$(ENV) && scripts/demo.sh

demo-down: ## Stop what `make demo` started on the real node
	$(ENV) && scripts/demo.sh down

cluster-up: setup ## Start the local KWOK cluster (kubeconfig path is printed)
	$(ENV) && tests/harness/local_cluster/cluster.sh up

cluster-down: ## Stop the local cluster
	$(ENV) && tests/harness/local_cluster/cluster.sh down

cluster-status: ## Show whether the local cluster runs
	$(ENV) && tests/harness/local_cluster/cluster.sh status

lock: ## Re-resolve requirements/constraints.txt from requirements/dev.txt
	$(ENV) && scripts/lock.sh

changelog: setup ## Regenerate CHANGELOG.rst for the untagged release from changelogs/fragments
	$(ENV) && antsibull-changelog release --update-existing --refresh-fragments without-archives

build: setup ## Build the collection tarball
	$(ENV) && ansible-galaxy collection build --force --output-path dist .

network-docs: setup ## Regenerate docs/network-graph.md from the inventories' graphs
	$(ENV) && python scripts/gen_docs.py --only network-graph

bench: setup ## Time the NetworkPolicy builder on a 200-component, 1000-flow graph
	$(ENV) && python -m tests.harness.bench.network_policies

bench-converge: setup ## Time site.yml (first run, no-op re-run) against bare helm upgrade --install on fresh local clusters
	$(ENV) && python -m tests.harness.bench.converge

docs: setup ## Regenerate the generated docs (architecture flow graphs, network graph page, role variable tables)
	$(ENV) && python scripts/gen_docs.py && python scripts/role_docs.py

chart-gen: setup ## Regenerate the charts' derived files: values.schema.json, README values tables (helm-docs), vendored charts/common
	$(ENV) && python scripts/chart_gen.py

ee: setup ## Build the execution environment image without a container engine (root; scripts/build-ee.sh)
	$(ENV) && scripts/build-ee.sh
