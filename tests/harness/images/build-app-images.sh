#!/usr/bin/env bash
# Builds the example application's images for the e2e tier from Debian trixie, without Docker, and tests
# each image's runtime contract without a cluster.
#
#   tests/harness/images/build-app-images.sh [build|test|all]     (default: all)
#
# Images (tags $E2E_APP_TAGS, default "1.0.0 1.0.1"), as $THREETIER_E2E_DIR/images/NAME_TAG.tar importable
# with `ctr -n k8s.io images import` as localhost/threetier-e2e/NAME:TAG:
#   backend        php8.4-fpm + php-laravel-framework (Laravel 10.48, Debian's autoloaders) + pdo_pgsql + APCu;
#                  examples/backend at /var/www/html; PID 1 is `php-fpm --nodaemonize` reading
#                  /usr/local/etc/php-fpm.conf, which includes /usr/local/etc/php-fpm.d/*.conf (the chart's
#                  zz-threetier.conf sorts last and wins); UID/GID 33; no pid or log file.
#   backend-nginx  Debian's nginx as UID/GID 101 `nginx`; the chart's sidecar (public/ comes from the
#                  backend image through the init container).
#   frontend       Debian's nginx as UID/GID 101 + `vite build` of examples/frontend (APP_VERSION=TAG) in
#                  /usr/share/nginx/html.
# Both nginx images link the compiled-in /var/log/nginx/{error,access}.log to stderr/stdout, so nginx writes
# nothing outside /tmp and /var/cache/nginx (the chart's emptyDirs) even before it reads its configuration.
#
# The test emulates the charts' pods with runc (a private state directory, never the system containerd):
# each image archive is unpacked with umoci, the charts are rendered with the project's helm, and every
# container runs with the chart's command, user, environment and ConfigMaps, a read-only root filesystem,
# no capabilities and host directories standing in for the emptyDirs. The containers share the host's
# network namespace (the tests rewrite `listen PORT` to 127.0.0.1:PORT and move the ports to
# E2E_TEST_PORT_BASE+, so nothing listens beyond loopback). The backend's database is
# tests/harness/real_node/postgres.sh (started for the test when it is not running, and stopped again afterwards).
#
# Needs root (debootstrap, chroot, runc), umoci, skopeo, runc, node/npm, and a Debian mirror and the npm registry.
set -euo pipefail
# A failure inside $(...) stops the script too.
shopt -s inherit_errexit
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
# shellcheck source=../../../scripts/rootfs.sh
. "$THREETIER_ROOT/scripts/rootfs.sh"
# shellcheck source=../../../scripts/oci.sh
. "$THREETIER_ROOT/scripts/oci.sh"

read -r -a TAGS <<< "${E2E_APP_TAGS:-1.0.0 1.0.1}"
PORT_BASE=${E2E_TEST_PORT_BASE:-18000}
BUILD="$THREETIER_E2E_DIR/app-build"
EXAMPLES="$THREETIER_ROOT/examples"
PY="$THREETIER_VENV/bin/python"
POD_PY="$THREETIER_ROOT/tests/harness/images/app_pod.py"
RUNC_ROOT="$THREETIER_E2E_DIR/app-runc"
export npm_config_cache="$THREETIER_CACHE/npm"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

PHP_PACKAGES=(php8.4-fpm php8.4-cli php8.4-pgsql php-apcu php-laravel-framework systemd-standalone-tmpfiles)
NGINX_PACKAGES=(nginx)

declare -A BUILD_SECONDS=()

# ---------------------------------------------------------------------------------------------- rootfs

# app_rootfs NAME PACKAGE...: a trixie minbase rootfs (e2e_rootfs) with PACKAGEs installed by apt without
# recommends (e2e_rootfs_install). apt, unlike debootstrap's resolver, takes the small side of alternatives
# such as php8.4-fpm's "systemd | systemd-tmpfiles" once systemd-standalone-tmpfiles is named. The rootfs is
# named NAME-<hash of the package list>, so a changed list gets a fresh one and e2e_rootfs's stamp stays true.
app_rootfs() {
  local name=$1; shift
  local hash root
  hash=$(printf '%s\n' "$@" | LC_ALL=C sort -u | sha256sum | cut -c1-8)
  root=$(e2e_rootfs "$name-$hash" trixie)
  e2e_rootfs_install "$root" "$@" >&2
  printf '%s\n' "$root"
}

clamp_mtimes() { find "$1" -xdev -exec touch -h -d "@$E2E_SOURCE_DATE_EPOCH" {} +; }

# stage_from ROOTFS STAGE: a fresh copy of ROOTFS to turn into one image, without documentation (the
# copyright files stay) and without files that must differ per container.
stage_from() {
  local root=$1 stage=$2
  rm -rf "$stage" && mkdir -p "$(dirname "$stage")"
  cp -a --reflink=auto "$root" "$stage"
  find "$stage/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
  find "$stage/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$stage"/usr/share/man/* "$stage"/usr/share/info/* "$stage"/usr/share/lintian \
    "$stage"/var/cache/debconf/*-old "$stage"/etc/resolv.conf
  : > "$stage/etc/resolv.conf"
  : > "$stage/etc/hostname"
}

# add_user STAGE NAME UID GID HOME: a system user (nologin), unless NAME already has that UID/GID.
add_user() {
  local stage=$1 name=$2 uid=$3 gid=$4 home=$5 line
  if line=$(grep "^$name:" "$stage/etc/passwd"); then
    [[ $(cut -d: -f3,4 <<< "$line") == "$uid:$gid" ]] || die "user $name exists with another UID/GID: $line"
    return 0
  fi
  ! cut -d: -f3 "$stage/etc/passwd" | grep -qx "$uid" || die "UID $uid is taken in $stage"
  ! cut -d: -f3 "$stage/etc/group" | grep -qx "$gid" || die "GID $gid is taken in $stage"
  printf '%s:x:%s:\n' "$name" "$gid" >> "$stage/etc/group"
  printf '%s:!::\n' "$name" >> "$stage/etc/gshadow"
  printf '%s:x:%s:%s:%s:%s:/usr/sbin/nologin\n' "$name" "$uid" "$gid" "$name" "$home" >> "$stage/etc/passwd"
  printf '%s:!:19723::::::\n' "$name" >> "$stage/etc/shadow"
}

# ---------------------------------------------------------------------------------------------- frontend

# frontend_dist TAG: `vite build` with APP_VERSION=TAG into $BUILD/frontend-dist/TAG (prints the path).
# The sources are copied out of the repository first, so node_modules and dist never land in the work tree;
# `npm ci` runs again only when package-lock.json changes.
frontend_dist() {
  local tag=$1
  local src="$BUILD/frontend-src" out="$BUILD/frontend-dist/$tag" lock_hash
  mkdir -p "$src"
  lock_hash=$(sha256sum < "$EXAMPLES/frontend/package-lock.json" | cut -c1-32)
  if [[ ! -d $src/node_modules || $(cat "$src/.lock-hash" 2>/dev/null) != "$lock_hash" ]]; then
    log "npm ci (frontend; cache $npm_config_cache)"
    rm -rf "$src" && mkdir -p "$src"
    cp "$EXAMPLES/frontend/package.json" "$EXAMPLES/frontend/package-lock.json" "$src/"
    (cd "$src" && npm ci --no-audit --no-fund --loglevel=error >&2)
    printf '%s' "$lock_hash" > "$src/.lock-hash"
  fi
  # Sources: everything but the dependency tree and earlier output.
  find "$src" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name .lock-hash -exec rm -rf {} +
  tar -C "$EXAMPLES/frontend" --exclude=./node_modules --exclude=./dist -cf - . | tar -C "$src" -xf -
  rm -rf "$out"
  (cd "$src" && APP_VERSION=$tag npx --no-install vite build --logLevel warn --outDir "$out" --emptyOutDir >&2)
  grep -lq "$tag" "$out"/assets/*.js || die "the frontend bundle for $tag does not carry its version"
  printf '%s\n' "$out"
}

# ---------------------------------------------------------------------------------------------- nginx

# nginx_stage ROOTFS STAGE: Debian's nginx prepared for UID 101 on a read-only root filesystem.
nginx_stage() {
  local root=$1 stage=$2
  stage_from "$root" "$stage"
  add_user "$stage" nginx 101 101 /var/cache/nginx
  # nginx opens its compiled-in error log before it reads -c; the pid and temp paths come from the config.
  mkdir -p "$stage/var/log/nginx" "$stage/var/cache/nginx" "$stage/etc/nginx/threetier"
  ln -sfn /dev/stderr "$stage/var/log/nginx/error.log"
  ln -sfn /dev/stdout "$stage/var/log/nginx/access.log"
  chown 101:101 "$stage/var/cache/nginx"
  rm -f "$stage/etc/nginx/sites-enabled/default" "$stage/var/www/html/index.nginx-debian.html"
  # The image's own default: usable without the chart (`ctr run`), unprivileged, writes only to /tmp.
  cat > "$stage/etc/nginx/nginx.conf" <<'CONF'
# Default of the threetier e2e nginx images (the charts start nginx with -c /etc/nginx/threetier/nginx.conf).
worker_processes auto;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /dev/stdout;
  client_body_temp_path /tmp/client_temp;
  proxy_temp_path /tmp/proxy_temp;
  fastcgi_temp_path /tmp/fastcgi_temp;
  uwsgi_temp_path /tmp/uwsgi_temp;
  scgi_temp_path /tmp/scgi_temp;
  server {
    listen 8080;
    root /usr/share/nginx/html;
    location / { try_files $uri $uri/ /index.html; }
  }
}
CONF
  [[ -f $stage/etc/nginx/mime.types && -f $stage/etc/nginx/fastcgi_params ]] || die "nginx without mime.types or fastcgi_params"
}

build_nginx_images() {
  local tag=$1 root stage dist start
  root=$(app_rootfs app-nginx "${NGINX_PACKAGES[@]}")

  start=$SECONDS
  stage="$BUILD/stage/backend-nginx"
  nginx_stage "$root" "$stage"
  mkdir -p "$stage/var/www/html/public"
  clamp_mtimes "$stage"
  oci_image backend-nginx "$tag" "$stage" --user 101:101 --cmd nginx --cmd -g --cmd 'daemon off;' \
    --port 8080 --label org.opencontainers.image.title=threetier-example-backend-nginx \
    --label "org.opencontainers.image.version=$tag" >/dev/null
  BUILD_SECONDS[backend-nginx:$tag]=$((SECONDS - start))

  start=$SECONDS
  dist=$(frontend_dist "$tag")
  stage="$BUILD/stage/frontend"
  nginx_stage "$root" "$stage"
  rm -rf "$stage/usr/share/nginx/html" && mkdir -p "$stage/usr/share/nginx/html" "$stage/usr/share/nginx/runtime-config"
  cp -r "$dist/." "$stage/usr/share/nginx/html/"
  chmod -R u=rwX,go=rX "$stage/usr/share/nginx"
  clamp_mtimes "$stage"
  oci_image frontend "$tag" "$stage" --user 101:101 --cmd nginx --cmd -g --cmd 'daemon off;' \
    --port 8080 --label org.opencontainers.image.title=threetier-example-frontend \
    --label "org.opencontainers.image.version=$tag" >/dev/null
  BUILD_SECONDS[frontend:$tag]=$((SECONDS - start))
}

# ---------------------------------------------------------------------------------------------- backend

build_backend_image() {
  local tag=$1 root stage app start
  root=$(app_rootfs app-php "${PHP_PACKAGES[@]}")
  start=$SECONDS
  stage="$BUILD/stage/backend"
  stage_from "$root" "$stage"
  app="$stage/var/www/html"
  rm -rf "$app" && mkdir -p "$app"
  tar -C "$EXAMPLES/backend" --exclude=./Dockerfile --exclude=./.dockerignore --exclude=./docker \
    --exclude=./vendor --exclude=./.env -cf - . | tar -C "$app" --no-same-owner -xf -
  printf '%s\n' "$tag" > "$app/VERSION"
  chown -R 0:0 "$app"
  chmod -R u=rwX,go=rX "$app"
  # Copied into the pod's emptyDirs by the chart's init container (running as 33).
  chown -R 33:33 "$app/storage" "$app/bootstrap/cache"
  chmod -R u=rwX,g=rwX,o=rX "$app/storage" "$app/bootstrap/cache"

  # PHP-FPM laid out like the official php image, so the chart's mount in php-fpm.d applies.
  install -D -m 0644 "$EXAMPLES/backend/docker/php-fpm.conf" "$stage/usr/local/etc/php-fpm.conf"
  install -D -m 0644 "$EXAMPLES/backend/docker/php-fpm-pool.conf" "$stage/usr/local/etc/php-fpm.d/www.conf"
  install -D -m 0644 "$EXAMPLES/backend/docker/php.ini" "$stage/etc/php/8.4/fpm/conf.d/99-threetier.ini"
  install -D -m 0644 "$EXAMPLES/backend/docker/php.ini" "$stage/etc/php/8.4/cli/conf.d/99-threetier.ini"
  rm -f "$stage/etc/php/8.4/fpm/pool.d/www.conf"
  ln -sfn /usr/local/etc/php-fpm.conf "$stage/etc/php/8.4/fpm/php-fpm.conf"
  mkdir -p "$stage/usr/local/sbin"
  ln -sfn /usr/sbin/php-fpm8.4 "$stage/usr/local/sbin/php-fpm"

  # Lint every PHP file with the image's own PHP 8.4, then ship the framework's package and service
  # manifests and the route cache in bootstrap/cache (the init container copies them into the emptyDir).
  chroot "$stage" /bin/sh -ec 'cd /var/www/html
    find app bootstrap config database public routes -name "*.php" -print0 | xargs -0 -n1 php -l >/dev/null
    php -l artisan >/dev/null
    setpriv --reuid=33 --regid=33 --clear-groups php artisan package:discover --no-ansi >/dev/null
    setpriv --reuid=33 --regid=33 --clear-groups php artisan route:cache --no-ansi >/dev/null
    test -f bootstrap/cache/routes-v7.php && test -f bootstrap/cache/packages.php'
  rm -rf "$app"/storage/framework/cache/data/* "$app"/storage/logs/*.log
  clamp_mtimes "$stage"
  oci_image backend "$tag" "$stage" --user 33:33 --workdir /var/www/html \
    --cmd '["php-fpm","--nodaemonize","--fpm-config","/usr/local/etc/php-fpm.conf"]' --port 9000 \
    --label org.opencontainers.image.title=threetier-example-backend \
    --label "org.opencontainers.image.version=$tag" >/dev/null
  BUILD_SECONDS[backend:$tag]=$((SECONDS - start))
}

# ---------------------------------------------------------------------------------------------- test

# bundle NAME TAG: the image archive unpacked by umoci (rootfs + config.json), cached on the archive's stamp.
bundle() {
  local name=$1 tag=$2
  local dir="$BUILD/bundles/${name}_$tag" stamp="$THREETIER_E2E_DIR/images/${name}_$tag.stamp"
  if [[ ! -f $dir/.stamp || $(<"$dir/.stamp") != "$(<"$stamp")" ]]; then
    rm -rf "$dir" "$dir.oci" && mkdir -p "$(dirname "$dir")"
    skopeo --insecure-policy copy --quiet "docker-archive:$THREETIER_E2E_DIR/images/${name}_$tag.tar" "oci:$dir.oci:$tag"
    umoci unpack --image "$dir.oci:$tag" "$dir" >/dev/null
    rm -rf "$dir.oci"
    cp "$stamp" "$dir/.stamp"
  fi
  printf '%s\n' "$dir"
}

# ctr_config BUNDLE ID [app_pod.py runc-config options]: a per-container bundle sharing BUNDLE's rootfs.
ctr_config() {
  local base=$1 id=$2; shift 2
  "$PY" "$POD_PY" runc-config --base "$base/config.json" --rootfs "$base/rootfs" --out "$RUN_DIR/$id/config.json" \
    --hostname "$id" "$@"
}

runc_() { runc --root "$RUNC_ROOT" "$@"; }

# run_fg ID: runs a container to completion, its output to $RUN_DIR/ID.log; returns its exit status.
run_fg() { runc_ run --bundle "$RUN_DIR/$1" "$1" > "$RUN_DIR/$1.log" 2>&1 < /dev/null; }
# run_bg ID: starts a container in the background, its output to $RUN_DIR/ID.log.
run_bg() { runc_ run --detach --bundle "$RUN_DIR/$1" "$1" > "$RUN_DIR/$1.log" 2>&1 < /dev/null; }

STARTED=()
cleanup_containers() {
  local id
  for id in "${STARTED[@]}"; do
    runc_ delete --force "$id" >/dev/null 2>&1 || true
  done
  STARTED=()
}

# emptydir PATH UID:GID: a fresh directory standing in for an emptyDir (fsGroup: the pod's group owns it).
emptydir() { rm -rf "$1" && mkdir -p "$1" && chown "$2" "$1" && chmod 2775 "$1"; }

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

# check NAME WANT_STATUS CURL_ARGS...: one request, its status and (shortened) body printed; dies on a
# status other than WANT_STATUS.
check() {
  local name=$1 want=$2; shift 2
  local out status body
  out=$(curl -sS -m 30 -o "$RUN_DIR/body" -w '%{http_code}' "$@") || die "$name: curl failed"
  status=$out
  body=$(head -c 400 "$RUN_DIR/body" | tr '\n' ' ')
  printf '  %-34s %s  %s\n' "$name" "$status" "$body"
  [[ $status == "$want" ]] || die "$name: HTTP $status, expected $want"
}

wait_http() {
  local url=$1 id
  for _ in $(seq 100); do
    curl -fsS -m 2 -o /dev/null "$url" 2>/dev/null && return 0
    for id in "${@:2}"; do
      [[ $(runc_ state "$id" 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["status"])') == running ]] \
        || { tail -n 20 "$RUN_DIR/$id.log" >&2; die "container $id is not running"; }
    done
    sleep 0.2
  done
  die "$url did not answer within 20 s"
}

PG_STARTED_HERE=false
test_backend() {
  local tag=$1 be ng
  local http=$((PORT_BASE + 80)) metrics=$((PORT_BASE + 90)) fpm=$((PORT_BASE + 900))
  for p in "$http" "$metrics" "$fpm"; do port_free "$p" || die "port $p is in use (set E2E_TEST_PORT_BASE)"; done
  log "test backend:$tag + backend-nginx:$tag (pod emulated with runc; nginx on 127.0.0.1:$http, metrics :$metrics)"
  RUN_DIR="$BUILD/run/backend_$tag"
  rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"
  be=$(bundle backend "$tag")
  ng=$(bundle backend-nginx "$tag")

  local pg_json db_host pw app_key
  pg_json=$("$THREETIER_ROOT/tests/harness/real_node/postgres.sh" status || true)
  if [[ $("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["running"])' "$pg_json") != True ]]; then
    "$THREETIER_ROOT/tests/harness/real_node/postgres.sh" start >/dev/null
    PG_STARTED_HERE=true
    pg_json=$("$THREETIER_ROOT/tests/harness/real_node/postgres.sh" status)
  fi
  db_host=$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["listen"])' "$pg_json")
  # A server left listening on the e2e node's address after the node went down is unreachable here: its
  # address is gone, and a connection would leave the machine by the default route instead.
  [[ $(ip -o addr show) == *" $db_host/"* ]] \
    || die "PostgreSQL runs on $db_host, which is no address of this host (the e2e node is down): tests/harness/real_node/postgres.sh stop"
  pw=$(<"$THREETIER_E2E_DIR/postgres/app-password")
  app_key="base64:$(head -c 32 /dev/urandom | base64)"

  # The chart, rendered for this host: same templates, ports moved, every listen on loopback.
  helm template backend "$THREETIER_ROOT/charts/backend" --namespace threetier \
    --set "image.tag=$tag" --set "database.host=$db_host" --set database.username=app \
    --set "database.password=$pw" --set "app.key=$app_key" --set "nginx.port=$http" \
    --set "metrics.port=$metrics" --set "phpfpm.port=$fpm" --set seed.enabled=true \
    > "$RUN_DIR/manifest.yaml"
  "$PY" "$POD_PY" configmaps "$RUN_DIR/cm" --loopback backend-nginx/nginx.conf < "$RUN_DIR/manifest.yaml" >/dev/null
  local secret_env=(--env "APP_KEY=$app_key" --env DB_USERNAME=app --env "DB_PASSWORD=$pw")
  local laravel=(--user 33:33 --fs-group 33 --env-dir "$RUN_DIR/cm/backend-env" "${secret_env[@]}")
  local job
  # Hook Jobs first (each its own pod: init container, then the command), as Helm runs them.
  for job in migrate seed; do
    emptydir "$RUN_DIR/$job-storage" 33:33
    emptydir "$RUN_DIR/$job-bootstrap-cache" 33:33
    emptydir "$RUN_DIR/$job-tmp" 33:33
    ctr_config "$be" "$job-prepare" --user 33:33 --fs-group 33 \
      --args-json "$(yq_prepare_args "$RUN_DIR/manifest.yaml" "backend-$job")" \
      --bind "$RUN_DIR/$job-storage:/work/storage" --bind "$RUN_DIR/$job-bootstrap-cache:/work/bootstrap-cache"
    STARTED+=("$job-prepare"); run_fg "$job-prepare" || { cat "$RUN_DIR/$job-prepare.log" >&2; die "$job: init container failed"; }
    ctr_config "$be" "$job" "${laravel[@]}" --args-json "$(job_command "$RUN_DIR/manifest.yaml" "backend-$job")" \
      --bind "$RUN_DIR/$job-storage:/var/www/html/storage" --bind "$RUN_DIR/$job-bootstrap-cache:/var/www/html/bootstrap/cache" \
      --bind "$RUN_DIR/$job-tmp:/tmp"
    STARTED+=("$job"); run_fg "$job" || { cat "$RUN_DIR/$job.log" >&2; die "$job Job failed"; }
    printf '  %-34s %s\n' "hook Job $job" "$(grep -v '^\s*$' "$RUN_DIR/$job.log" | tr -s ' ' | tr '\n' '|' | head -c 300)"
  done

  # The Deployment's pod: init container, php-fpm, nginx.
  emptydir "$RUN_DIR/storage" 33:33
  emptydir "$RUN_DIR/bootstrap-cache" 33:33
  emptydir "$RUN_DIR/public" 33:33
  emptydir "$RUN_DIR/php-tmp" 33:33
  emptydir "$RUN_DIR/nginx-tmp" 101:101
  emptydir "$RUN_DIR/nginx-cache" 101:101
  ctr_config "$be" prepare --user 33:33 --fs-group 33 \
    --args-json "$(yq_prepare_args "$RUN_DIR/manifest.yaml" backend)" \
    --bind "$RUN_DIR/storage:/work/storage" --bind "$RUN_DIR/bootstrap-cache:/work/bootstrap-cache" \
    --bind "$RUN_DIR/public:/work/public"
  STARTED+=(prepare); run_fg prepare || { cat "$RUN_DIR/prepare.log" >&2; die "init container failed"; }
  ctr_config "$be" php-fpm "${laravel[@]}" \
    --bind "$RUN_DIR/cm/backend-php-fpm/zz-threetier.conf:/usr/local/etc/php-fpm.d/zz-threetier.conf:ro" \
    --bind "$RUN_DIR/storage:/var/www/html/storage" --bind "$RUN_DIR/bootstrap-cache:/var/www/html/bootstrap/cache" \
    --bind "$RUN_DIR/php-tmp:/tmp"
  ctr_config "$ng" nginx --user 101:101 --fs-group 101 \
    --args-json '["nginx","-c","/etc/nginx/threetier/nginx.conf","-g","daemon off;"]' \
    --bind "$RUN_DIR/cm/backend-nginx:/etc/nginx/threetier:ro" --bind "$RUN_DIR/public:/var/www/html/public:ro" \
    --bind "$RUN_DIR/nginx-tmp:/tmp" --bind "$RUN_DIR/nginx-cache:/var/cache/nginx"
  STARTED+=(php-fpm nginx)
  run_bg php-fpm
  run_bg nginx
  wait_http "http://127.0.0.1:$http/readyz" php-fpm nginx

  local base="http://127.0.0.1:$http" json=(-H 'Content-Type: application/json' -H 'Accept: application/json')
  check "GET /livez" 200 "$base/livez"
  check "GET /readyz (php-fpm ping)" 200 "$base/readyz"
  check "GET /api/health" 200 "$base/api/health"
  grep -q "\"version\":\"$tag\"" "$RUN_DIR/body" || die "/api/health does not report version $tag"
  check "POST /api/messages" 201 "${json[@]}" -d "{\"author\":\"e2e\",\"body\":\"hello from $tag\"}" "$base/api/messages"
  check "POST /api/messages (invalid)" 422 "${json[@]}" -d '{"author":""}' "$base/api/messages"
  check "GET /api/messages" 200 "$base/api/messages?limit=3"
  grep -q "hello from $tag" "$RUN_DIR/body" || die "the posted message is not listed"
  check "GET /api/db" 200 "$base/api/db"
  check "GET /api/burn?ms=150" 200 "$base/api/burn?ms=150"
  check "GET /api/slow?seconds=1" 200 "$base/api/slow?seconds=1"
  check "GET /api/slow?seconds=56" 422 "$base/api/slow?seconds=56"
  check "GET /nope" 404 "$base/nope"
  check "GET :metrics/fpm-status" 200 "http://127.0.0.1:$metrics/fpm-status"
  check "GET :metrics/metrics" 200 "http://127.0.0.1:$metrics/metrics"
  grep -E '^threetier_(build_info|db_up|messages|metrics_store_info)|^threetier_http_requests_total\{method="POST"' "$RUN_DIR/body" \
    | sed 's/^/      /'
  grep -q "threetier_build_info{version=\"$tag\"" "$RUN_DIR/body" || die "/metrics: no build_info for $tag"
  grep -q 'threetier_metrics_store_info{store="apcu"} 1' "$RUN_DIR/body" || die "/metrics: counters are not in APCu"
  grep -q '^threetier_db_up 1' "$RUN_DIR/body" || die "/metrics: database not up"

  # The contract of the image itself: read-only root, writable emptyDirs, the preStop tools, PID 1.
  runc_ exec php-fpm /bin/sh -c 'touch /var/www/html/x 2>/dev/null && exit 1; touch /tmp/ok /var/www/html/storage/ok /var/www/html/bootstrap/cache/ok; command -v sleep kill >/dev/null; exec cat /proc/1/cmdline' \
    > "$RUN_DIR/exec.out" || die "php-fpm container: read-only root or writable paths or preStop tools wrong"
  printf '  %-34s %s\n' "php-fpm PID 1" "$(tr '\0' ' ' < "$RUN_DIR/exec.out")"
  grep -E '"message":"message created"' "$RUN_DIR/php-fpm.log" | head -n1 | sed 's/^/  laravel log: /' | cut -c1-220
  grep -q '"message":"message created"' "$RUN_DIR/php-fpm.log" || die "no JSON log line from Laravel on php-fpm's stderr"

  # Graceful stop as the chart's preStop does it: a slow request in flight survives `kill -QUIT 1`.
  curl -sS -m 30 -o "$RUN_DIR/slow.body" -w '%{http_code}' "$base/api/slow?seconds=3" > "$RUN_DIR/slow.status" &
  local curl_pid=$!
  sleep 1
  runc_ exec php-fpm /bin/sh -c 'kill -QUIT 1'
  wait "$curl_pid" || true
  printf '  %-34s %s  %s\n' "slow request across SIGQUIT" "$(<"$RUN_DIR/slow.status")" "$(head -c 160 "$RUN_DIR/slow.body")"
  [[ $(<"$RUN_DIR/slow.status") == 200 ]] || die "the in-flight request did not survive PHP-FPM's graceful stop"
  "$PY" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["elapsed_seconds"] < 3)' "$RUN_DIR/slow.body" \
    || die "the in-flight request was cut short"
  for _ in $(seq 50); do
    [[ $(runc_ state php-fpm 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["status"])') == stopped ]] && break
    sleep 0.2
  done
  runc_ exec nginx nginx -c /etc/nginx/threetier/nginx.conf -s quit 2>/dev/null
  cleanup_containers
  if find "$RUN_DIR"/nginx-tmp "$RUN_DIR"/nginx-cache -mindepth 1 -newer "$RUN_DIR/manifest.yaml" -print -quit | grep -q . ; then
    log "nginx wrote only to its emptyDirs: $(cd "$RUN_DIR" && find nginx-tmp nginx-cache -mindepth 1 -maxdepth 1 | tr '\n' ' ')"
  fi
}

# The init container's command and a hook Job's command, from the rendered manifest.
yq_prepare_args() {
  "$PY" - "$1" "$2" <<'PY'
import json
import sys

import yaml

manifest, name = sys.argv[1], sys.argv[2]
for doc in yaml.safe_load_all(open(manifest, encoding="utf-8")):
    if doc and doc["kind"] in {"Deployment", "Job"} and doc["metadata"]["name"] == name:
        init = doc["spec"]["template"]["spec"]["initContainers"][0]
        print(json.dumps(init["command"]))
        break
else:
    sys.exit(f"no Deployment or Job {name}")
PY
}

job_command() {
  "$PY" - "$1" "$2" <<'PY'
import json
import sys

import yaml

manifest, name = sys.argv[1], sys.argv[2]
for doc in yaml.safe_load_all(open(manifest, encoding="utf-8")):
    if doc and doc["kind"] == "Job" and doc["metadata"]["name"] == name:
        print(json.dumps(doc["spec"]["template"]["spec"]["containers"][0]["command"]))
        break
else:
    sys.exit(f"no Job {name}")
PY
}

test_frontend() {
  local tag=$1 fe http=$((PORT_BASE + 180)) stub=$((PORT_BASE + 181))
  for p in "$http" "$stub"; do port_free "$p" || die "port $p is in use (set E2E_TEST_PORT_BASE)"; done
  log "test frontend:$tag (nginx on 127.0.0.1:$http)"
  RUN_DIR="$BUILD/run/frontend_$tag"
  rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"
  fe=$(bundle frontend "$tag")
  helm template frontend "$THREETIER_ROOT/charts/frontend" --namespace threetier --set "image.tag=$tag" \
    --set "nginx.port=$http" --set "metrics.stubStatusPort=$stub" > "$RUN_DIR/manifest.yaml"
  "$PY" "$POD_PY" configmaps "$RUN_DIR/cm" --loopback frontend-nginx/nginx.conf < "$RUN_DIR/manifest.yaml" >/dev/null
  emptydir "$RUN_DIR/tmp" 101:101
  emptydir "$RUN_DIR/cache" 101:101
  ctr_config "$fe" frontend --user 101:101 --fs-group 101 \
    --args-json '["nginx","-c","/etc/nginx/threetier/nginx.conf","-g","daemon off;"]' \
    --bind "$RUN_DIR/cm/frontend-nginx:/etc/nginx/threetier:ro" \
    --bind "$RUN_DIR/cm/frontend-runtime-config:/usr/share/nginx/runtime-config:ro" \
    --bind "$RUN_DIR/tmp:/tmp" --bind "$RUN_DIR/cache:/var/cache/nginx"
  STARTED+=(frontend)
  run_bg frontend
  wait_http "http://127.0.0.1:$http/healthz" frontend
  local base="http://127.0.0.1:$http" asset
  check "GET /healthz" 200 "$base/healthz"
  check "GET /" 200 "$base/"
  asset=$(grep -o '/assets/index-[A-Za-z0-9_-]*\.js' "$RUN_DIR/body" | head -n1)
  [[ -n $asset ]] || die "index.html names no bundle"
  check "GET /config.js" 200 "$base/config.js"
  grep -q 'window\["__APP_CONFIG__"\] = Object.freeze({"apiBaseUrl":"/api"})' "$RUN_DIR/body" || die "/config.js is not the chart's"
  check "GET $asset" 200 "$base$asset"
  # The minifier may quote with backticks.
  local quoted="[\"'\`]${tag//./\\.}[\"'\`]"
  grep -Eq "$quoted" "$RUN_DIR/body" || die "the bundle does not carry version $tag"
  printf '  %-34s %s\n' "bundle version literal" "$(grep -Eo "$quoted" "$RUN_DIR/body" | head -n1)"
  printf '  %-34s %s\n' "cache headers" "$(curl -sSI "$base$asset" | grep -i '^cache-control' | tr -d '\r')"
  check "GET /some/client/route (SPA)" 200 "$base/some/client/route"
  check "GET :stub_status (loopback)" 200 "http://127.0.0.1:$stub/stub_status"
  runc_ exec frontend /bin/sh -c 'touch /usr/share/nginx/html/x 2>/dev/null && exit 1; command -v sleep >/dev/null' \
    || die "frontend: root filesystem writable or sleep missing"
  runc_ exec frontend nginx -c /etc/nginx/threetier/nginx.conf -s quit 2>/dev/null
  cleanup_containers
}

# ---------------------------------------------------------------------------------------------- main

summary() {
  local name tag archive
  printf '\n%-15s %-7s %8s %8s  %s\n' IMAGE TAG SIZE BUILT_IN REFERENCE
  for name in backend backend-nginx frontend; do
    for tag in "${TAGS[@]}"; do
      archive="$THREETIER_E2E_DIR/images/${name}_$tag.tar"
      [[ -f $archive ]] || continue
      # One uncompressed layer: the archive's size is the image's size on the node.
      local took=${BUILD_SECONDS[$name:$tag]:-}
      printf '%-15s %-7s %8s %8s  %s\n' "$name" "$tag" "$(du -h "$archive" | cut -f1)" \
        "${took:+${took} s}" "$(oci_image_ref "$name" "$tag")"
    done
  done
}

main() {
  local action=${1:-all}
  [[ $action =~ ^(build|test|all)$ ]] || die "usage: $0 [build|test|all]"
  [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, runc)"
  local tool
  for tool in umoci skopeo runc npm node helm curl; do command -v "$tool" >/dev/null || die "$tool is missing"; done
  mkdir -p "$BUILD" "$RUNC_ROOT"
  local total=$SECONDS tag
  if [[ $action != test ]]; then
    for tag in "${TAGS[@]}"; do
      build_backend_image "$tag"
      build_nginx_images "$tag"
    done
  fi
  if [[ $action != build ]]; then
    trap 'cleanup_containers; [[ $PG_STARTED_HERE == true ]] && "$THREETIER_ROOT/tests/harness/real_node/postgres.sh" stop' EXIT
    for tag in "${TAGS[@]}"; do
      test_backend "$tag"
      test_frontend "$tag"
    done
  fi
  summary
  log "done in $((SECONDS - total)) s"
}

main "$@"
