#!/usr/bin/env bash
# Builds every image the e2e tier imports into its node's containerd, without Docker: the system add-ons
# (pause, CoreDNS, kube-router, metrics-server, Traefik, toolbox) and the example application (backend,
# backend-nginx, frontend; tags 1.0.0 and 1.0.1). Unchanged images are not rebuilt. Archives:
# $THREETIER_E2E_DIR/images/NAME_TAG.tar.
set -euo pipefail
# shellcheck source=../env.sh
. "$(dirname "$0")/../env.sh"
# shellcheck source=../lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
start=$SECONDS
"$THREETIER_ROOT/scripts/e2e/build-system-images.sh"
"$THREETIER_ROOT/scripts/e2e/build-app-images.sh"
log "e2e images ready in $((SECONDS - start)) s"
