#!/usr/bin/env bash
# Builds every image the e2e tier imports into its node's containerd, without Docker: the system add-ons
# (pause, CoreDNS, kube-router, metrics-server, Traefik, toolbox), the example application (backend,
# backend-nginx, frontend; tags 1.0.0 and 1.0.1) and the postgres-operator path (operator, pgbouncer,
# logical-backup, spilo-17). Unchanged images are not rebuilt; the app and database scripts also run their
# images' contract tests. Archives: $THREETIER_E2E_DIR/images/NAME_TAG.tar.
set -euo pipefail
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
start=$SECONDS
"$THREETIER_ROOT/tests/harness/images/build-system-images.sh"
"$THREETIER_ROOT/tests/harness/images/build-app-images.sh"
"$THREETIER_ROOT/tests/harness/images/build-db-images.sh"
log "e2e images ready in $((SECONDS - start)) s"
