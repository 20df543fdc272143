#!/usr/bin/env bash
# Builds the images of the Zalando postgres-operator path for the e2e tier without Docker, and tests each
# image's runtime contract without a cluster.
#
#   tests/harness/images/build-db-images.sh [build|test|all]     (default: all)
#
# Images ($THREETIER_E2E_DIR/images/NAME_TAG.tar, imported as localhost/threetier-e2e/NAME:TAG):
#   postgres-operator:$POSTGRES_OPERATOR_VERSION  the operator, `go build ./cmd` of the source archive (the Go
#                  module proxy serves it only up to v1.15.1) with the proxy for its dependencies; static, on
#                  the tiny base of the other Go images plus CA certificates; UID/GID 1000 like upstream.
#   pgbouncer:$POSTGRES_OPERATOR_VERSION          the connection pooler: upstream's pooler/ (entrypoint.sh and
#                  pgbouncer.ini.tmpl unchanged) on trixie's pgbouncer 1.24 instead of an Alpine build;
#                  pgbouncer UID 100 / GID 101 (the operator forces them).
#   logical-backup:$POSTGRES_OPERATOR_VERSION     upstream's logical-backup/dump.sh unchanged, trixie's
#                  postgresql-client-17, pigz, jq, curl and awscli; runs as 101:103 (the Spilo pod's IDs).
#   spilo-17:$SPILO_VERSION                       Spilo's postgres-appliance (launch.sh, scripts/, bootstrap/,
#                  major_upgrade/, runit/) laid out as its Dockerfile and build scripts do, on trixie's
#                  postgresql-17 and extensions, runit, dumb-init, Debian's Python modules and Patroni
#                  $PATRONI_VERSION from PyPI (requirements/spilo-image.txt). What Debian lacks is switched off
#                  or adjusted at build time: tests/harness/images/README.md, "Spilo on Debian".
# Sources: the archives in $THREETIER_SOURCES (default ../shared/sources beside the repository), checked
# against the sha256 of tools/versions.env and unpacked once into $THREETIER_CACHE/src; never copied into
# the repository. Every step is cached: root filesystems by package list (rootfs.sh), staged trees by a stamp
# of their inputs, archives by oci.sh's stamp, the operator binary like the other Go tools. A warm run takes
# seconds.
#
# The test runs every container with runc (a private state directory, never the system containerd) inside
# one private network namespace that has only a loopback interface (removed afterwards, also on failure),
# the way the operator's pods run them under Pod Security "restricted": non-root UIDs (Spilo 101:103 with
# fsGroup 103, pgbouncer 100:101, backups 101:103, operator 1000:1000), no capabilities, no_new_privs. Spilo
# and the pooler get a writable root filesystem (an overlay per container, as containerd's snapshots; the
# operator does not set readOnlyRootFilesystem), the others a read-only one. Proofs: a 2-node Patroni cluster
# (etcd v3 as its DCS instead of the Kubernetes API) bootstraps, runs post_init, streams to a replica built
# by basebackup.sh and switches over; an application user authenticates through the pooler and pgbench's
# server-side prepared statements run through transaction pooling; pg_dumpall | pigz | aws s3 cp reaches an
# S3 endpoint (moto) and restores; the operator starts and fails cleanly without a Kubernetes API. It ends
# with "N passed, N failed".
#
# Needs root (debootstrap, chroot, runc, ip netns, mount), umoci, skopeo, runc, gcc, go, a Debian mirror, PyPI
# and the Go module proxy on a cold run, $THREETIER_BIN/etcd (scripts/setup.sh) and moto in the project's
# virtualenv for the test.
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

THREETIER_SOURCES=${THREETIER_SOURCES:-$THREETIER_ROOT/../shared/sources}
SUITE=$E2E_DEBIAN_SUITE
PG_MAJOR=17
BUILD="$THREETIER_E2E_DIR/db-build"
PY="$THREETIER_VENV/bin/python"
POD_PY="$THREETIER_ROOT/tests/harness/images/app_pod.py"
DB_PY="$THREETIER_ROOT/tests/harness/images/db_pod.py"
RUNC_ROOT="$THREETIER_E2E_DIR/db-runc"
SPILO_REQUIREMENTS="$THREETIER_ROOT/requirements/spilo-image.txt"
OPERATOR_TAG=$POSTGRES_OPERATOR_VERSION
SPILO_IMAGE="spilo-$PG_MAJOR"
# The shared_preload_libraries the e2e deployment must set (the `postgresql` resource's parameters): Spilo's
# default without bg_mon and pg_auth_mon, which Debian does not package (README, "Spilo on Debian").
SHARED_PRELOAD_LIBRARIES=${E2E_SPILO_SHARED_PRELOAD_LIBRARIES:-pg_stat_statements,pgextwlist,set_user,pg_cron,pg_stat_kcache}

# Spilo's PostgreSQL packages (build_scripts/base.sh) as far as trixie has them, without PostGIS (its GDAL
# and PROJ stack would double the image) and TimescaleDB (it must be preloaded and reports telemetry).
SPILO_PG_PACKAGES=(postgresql-17 postgresql-client-17 postgresql-plpython3-17
  postgresql-pltcl-17 postgresql-17-cron postgresql-17-pgextwlist
  postgresql-17-set-user postgresql-17-pg-stat-kcache postgresql-17-pgq3
  postgresql-17-pgq-node pgqd postgresql-17-dirtyread postgresql-17-extra-window-functions
  postgresql-17-first-last-agg postgresql-17-hll postgresql-17-hypopg
  postgresql-17-partman postgresql-17-plproxy postgresql-17-pgaudit
  postgresql-17-pldebugger postgresql-17-pglogical postgresql-17-pglogical-ticker
  postgresql-17-plpgsql-check postgresql-17-pg-checksums postgresql-17-pgl-ddl-deploy
  postgresql-17-repack postgresql-17-wal2json postgresql-17-decoderbufs
  postgresql-17-pllua postgresql-17-pgvector postgresql-17-roaringbitmap
  postgresql-17-pgfaceting postgresql-17-plprofiler postgresql-17-pg-permissions pgbouncer)
# Userland of build_scripts/prepare.sh (less gnupg, which only served apt keys), procps for basebackup.sh's
# pgrep, openssl for configure_spilo.py's certificate, and the Python modules configure_spilo.py, spilo_commons,
# callback_role, the bootstrap and major_upgrade scripts and Patroni import (Patroni's own requirements, which
# pip checks, included). python3-pip is there only while Patroni is installed. cron and sysstat need a sysusers
# implementation: named, apt takes systemd-standalone-sysusers instead of all of systemd.
SPILO_OS_PACKAGES=(runit dumb-init cron systemd-standalone-sysusers locales curl ca-certificates less jq vim-tiny
  rsync sysstat procps openssl
  python3 python3-yaml python3-pystache python3-psycopg2 python3-requests python3-six python3-psutil python3-etcd
  python3-urllib3 python3-click python3-prettytable python3-dateutil python3-ydiff)
POOLER_PACKAGES=(pgbouncer gettext-base openssl postgresql-client-17 ca-certificates)
BACKUP_PACKAGES=(postgresql-client-17 pigz jq curl ca-certificates awscli)

declare -A BUILD_SECONDS=()

# ---------------------------------------------------------------------------------------------- sources

# source_tree ARCHIVE SHA256: ARCHIVE of $THREETIER_SOURCES, checked against SHA256 (tools/versions.env) on
# every run (milliseconds for these sizes) and unpacked once into $THREETIER_CACHE/src/NAME-<hash>; prints
# its single top-level folder. Builds read the sources there; nothing of them enters the repository.
source_tree() {
  local archive="$THREETIER_SOURCES/$1" want=$2 got dir top
  [[ -f $archive ]] || die "$archive is missing (THREETIER_SOURCES=$THREETIER_SOURCES; see its README.md)"
  got=$(sha256sum < "$archive" | cut -d' ' -f1)
  [[ $got == "$want" ]] || die "$archive has sha256 $got; tools/versions.env pins $want"
  dir="$THREETIER_CACHE/src/${1%.tar.gz}-${want:0:12}"
  if [[ ! -f $dir/.complete ]]; then
    log "unpacking $1 into ${dir/#"$THREETIER_CACHE"/\$THREETIER_CACHE}"
    rm -rf "$dir" "$dir.tmp" && mkdir -p "$dir.tmp"
    tar -xzf "$archive" -C "$dir.tmp" --no-same-owner
    touch "$dir.tmp/.complete"
    mv "$dir.tmp" "$dir"
  fi
  top=$(find "$dir" -mindepth 1 -maxdepth 1 -type d)
  [[ -n $top && $(wc -l <<< "$top") -eq 1 ]] || die "$archive does not hold exactly one top-level folder"
  printf '%s\n' "$top"
}

operator_source() { source_tree "postgres-operator-$POSTGRES_OPERATOR_VERSION.tar.gz" "$POSTGRES_OPERATOR_SOURCE_SHA256"; }
spilo_source() {
  local top
  top=$(source_tree "spilo-$SPILO_VERSION-${SPILO_COMMIT:0:7}.tar.gz" "$SPILO_SOURCE_SHA256")
  printf '%s\n' "$top/postgres-appliance"
}

# ---------------------------------------------------------------------------------------------- rootfs

# in_chroot ROOT CMD...: CMD inside ROOT with /proc mounted and services kept from starting (policy-rc.d),
# both undone even when CMD fails (like e2e_rootfs_install, which this complements with purges and pip).
in_chroot() {
  local root=$1; shift
  (
    trap 'umount "$root/proc" 2>/dev/null || true; rm -f "$root/usr/sbin/policy-rc.d"' EXIT
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d" \
      && chmod 0755 "$root/usr/sbin/policy-rc.d" \
      && mount -t proc proc "$root/proc" \
      && DEBIAN_FRONTEND=noninteractive chroot "$root" "$@"
  )
}

# ensure_user ROOT NAME UID GID HOME SHELL: a system user and group with exactly these IDs, created before
# the packages are installed, so that a maintainer script that adds NAME (postgresql-common's adduser
# --system postgres) finds it instead of taking the next free ID. Upstream's images get the same IDs from the
# order of their base image's users: Spilo's postgres is 101:103, the pooler's pgbouncer 100:101.
ensure_user() {
  local root=$1 name=$2 uid=$3 gid=$4 home=$5 shell=$6 line
  if line=$(grep "^$name:" "$root/etc/passwd"); then
    [[ $(cut -d: -f3,4 <<< "$line") == "$uid:$gid" ]] || die "user $name exists in $root with other IDs: $line"
    return 0
  fi
  ! cut -d: -f3 "$root/etc/passwd" | grep -qx "$uid" || die "UID $uid is taken in $root"
  if ! grep -q "^$name:" "$root/etc/group"; then
    ! cut -d: -f3 "$root/etc/group" | grep -qx "$gid" || die "GID $gid is taken in $root"
    chroot "$root" groupadd --system --gid "$gid" "$name"
  fi
  chroot "$root" useradd --system --uid "$uid" --gid "$gid" --home-dir "$home" --no-create-home --shell "$shell" "$name"
}

db_rootfs_done() { [[ -f $1.db.stamp && -f $1.stamp && $(<"$1.db.stamp") == "$(<"$1.stamp")" ]]; }

# db_rootfs NAME USER_SPEC PACKAGE...: a trixie minbase rootfs named NAME-<hash of its inputs> with the user of
# USER_SPEC (name:uid:gid:home:shell, or "-") and PACKAGEs (apt, no recommends). A stamp beside it
# (NAME-<hash>.db.stamp, a copy of e2e_rootfs's stamp, so a debootstrapped-again tree is not taken for a
# finished one) makes a warm call cost one file read instead of a dpkg query per package.
db_rootfs() {
  local name=$1 user=$2; shift 2
  local hash root
  hash=$(printf '%s\n' "$user" "$@" | sha256sum | cut -c1-8)
  root=$(e2e_rootfs "$name-$hash" "$SUITE")
  if ! db_rootfs_done "$root"; then
    if [[ $user != - ]]; then
      local u_name u_uid u_gid u_home u_shell
      IFS=: read -r u_name u_uid u_gid u_home u_shell <<< "$user"
      ensure_user "$root" "$u_name" "$u_uid" "$u_gid" "$u_home" "$u_shell"
    fi
    e2e_rootfs_install "$root" "$@" >&2
    cp "$root.stamp" "$root.db.stamp"
  fi
  printf '%s\n' "$root"
}

# spilo_rootfs: trixie with PostgreSQL, its extensions and Spilo's userland, and Patroni from PyPI. Named by a
# hash of everything that goes into it; stamped when complete.
spilo_rootfs() {
  local hash root req
  req=$(sed 's/#.*//; /^[[:space:]]*$/d' "$SPILO_REQUIREMENTS")
  hash=$(printf '%s\n' rev=1 "${SPILO_PG_PACKAGES[@]}" "${SPILO_OS_PACKAGES[@]}" "$req" | sha256sum | cut -c1-8)
  root=$(e2e_rootfs "spilo-$PG_MAJOR-$hash" "$SUITE")
  db_rootfs_done "$root" && { printf '%s\n' "$root"; return 0; }
  # Debian's own home and shell for postgres (postgresql-common's adduser then finds nothing to change);
  # spilo_layout moves the home to /home/postgres as post_build.sh does.
  ensure_user "$root" postgres 101 103 /var/lib/postgresql /bin/bash
  # base.sh: no "main" cluster when postgresql-17 is installed (createcluster.conf belongs to
  # postgresql-common, so that goes in first).
  e2e_rootfs_install "$root" postgresql-common >&2
  sed -ri 's/^#?\s*(create_main_cluster) .*$/\1 = false/' "$root/etc/postgresql-common/createcluster.conf"
  grep -qx 'create_main_cluster = false' "$root/etc/postgresql-common/createcluster.conf" \
    || die "could not switch off create_main_cluster in $root"
  e2e_rootfs_install "$root" "${SPILO_PG_PACKAGES[@]}" "${SPILO_OS_PACKAGES[@]}" python3-pip >&2
  [[ ! -d $root/var/lib/postgresql/$PG_MAJOR/main ]] || die "a main cluster was created in $root"
  log "installing Patroni into ${root##*/} (pip, requirements/spilo-image.txt)"
  cp "$SPILO_REQUIREMENTS" "$root/tmp/spilo-image.txt"
  # pip runs with a clean environment (the host's PIP_* settings name host paths) and trusts the CAs the host
  # trusts (its bundle may hold more than trixie's, e.g. a TLS-inspecting proxy's); both files go with /tmp.
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/tmp/host-ca.crt"
  local pip_env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
    PIP_CERT=/tmp/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore)
  # --no-deps with hashes: exactly the pinned wheel. Its requirements are Debian's modules above, which
  # `pip check` confirms; --break-system-packages because pip installs next to apt's Python (PEP 668), into
  # /usr/local as Spilo's own image does.
  in_chroot "$root" "${pip_env[@]}" python3 -m pip install --quiet --no-cache-dir --break-system-packages \
    --no-deps --require-hashes --only-binary=:all: -r /tmp/spilo-image.txt >&2
  in_chroot "$root" "${pip_env[@]}" python3 -m pip check >&2 || die "pip check failed in $root"
  in_chroot "$root" apt-get purge -y -qq python3-pip >/dev/null
  in_chroot "$root" apt-get autoremove --purge -y -qq >/dev/null
  _e2e_rootfs_clean "$root"
  _e2e_clamp_mtimes "$root"
  cp "$root.stamp" "$root.db.stamp"
  printf '%s\n' "$root"
}

# stage_fresh ROOTFS STAGE: a copy of ROOTFS to turn into one image, without documentation (copyright files
# stay), manuals, translations, and without the files a container runtime provides per container.
stage_fresh() {
  local root=$1 stage=$2
  rm -rf "$stage" && mkdir -p "$(dirname "$stage")"
  cp -a --reflink=auto "$root" "$stage"
  find "$stage/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
  find "$stage/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$stage"/usr/share/man/* "$stage"/usr/share/info/* "$stage"/usr/share/lintian \
    "$stage"/usr/share/locale/?? "$stage"/usr/share/locale/??_?? "$stage"/var/cache/debconf/*-old \
    "$stage"/run/adduser
  : > "$stage/etc/resolv.conf"
  : > "$stage/etc/hostname"
  # ssl-cert's snakeoil pair was generated at install time: one private key shared by every container of
  # the image, which neither Spilo nor the pooler uses (both make their own certificate at start).
  rm -f "$stage/etc/ssl/private/ssl-cert-snakeoil.key" "$stage/etc/ssl/certs/ssl-cert-snakeoil.pem"
}

# stage_current STAGE INPUT...: true when STAGE was built from exactly these inputs (its .stamp beside it);
# stage_done STAGE INPUT... records them. The staged trees are rebuilt only when an input changes.
_stage_want() { printf '%s\n' "$@" "$(sha256sum < "${BASH_SOURCE[0]}")" | sha256sum | cut -c1-32; }
stage_current() { local s=$1; shift; [[ -d $s && -f $s.stamp && $(<"$s.stamp") == "$(_stage_want "$@")" ]]; }
stage_done() { local s=$1; shift; clamp_mtimes "$s"; _stage_want "$@" > "$s.stamp"; }
clamp_mtimes() { find "$1" -xdev -exec touch -h -d "@$E2E_SOURCE_DATE_EPOCH" {} +; }

# ---------------------------------------------------------------------------------------------- images

build_operator_image() {
  local src stage ca
  src=$(operator_source)
  [[ $POSTGRES_OPERATOR_VERSION == "v$POSTGRES_OPERATOR_CHART_VERSION" ]] \
    || die "POSTGRES_OPERATOR_VERSION $POSTGRES_OPERATOR_VERSION is not the image of chart $POSTGRES_OPERATOR_CHART_VERSION"
  # The upstream Dockerfile's build (main.version stamped, no cgo), stripped like the other images' binaries;
  # go_module_tool caches it in $THREETIER_CACHE/go-tools/postgres-operator@VERSION. -mod=mod: the archive
  # has no vendor/ and its go.sum pins the modules the proxy serves.
  CGO_ENABLED=0 GOFLAGS=-mod=mod GO_LDFLAGS="-s -w -X=main.version=$POSTGRES_OPERATOR_VERSION" \
    go_module_tool postgres-operator "$POSTGRES_OPERATOR_VERSION" "$src" ./cmd
  local bin="$THREETIER_CACHE/go-tools/postgres-operator@$POSTGRES_OPERATOR_VERSION/postgres-operator"
  file -L "$bin" | grep -q 'statically linked' || die "$bin is not static"
  # The tiny base of the other Go images (build-system-images.sh), plus the CA bundle upstream installs
  # for the teams API and S3 over https, taken from the pooler's trixie rootfs.
  ca="$(pooler_rootfs)/etc/ssl/certs/ca-certificates.crt"
  [[ -s $ca ]] || die "no CA bundle at $ca"
  stage="$BUILD/stage/postgres-operator"
  if ! stage_current "$stage" "$(sha256sum < "$ca")"; then
    rm -rf "$stage" && mkdir -p "$stage/etc/ssl/certs" "$stage/tmp"
    chmod 1777 "$stage/tmp"
    printf 'hosts: files dns\n' > "$stage/etc/nsswitch.conf"
    install -m 0644 "$ca" "$stage/etc/ssl/certs/ca-certificates.crt"
    stage_done "$stage" "$(sha256sum < "$ca")"
  fi
  oci_image postgres-operator "$OPERATOR_TAG" "$stage" --add "$bin:/postgres-operator" --user 1000:1000 \
    --entrypoint /postgres-operator --port 8080 \
    --label org.opencontainers.image.title=postgres-operator \
    --label "org.opencontainers.image.version=$POSTGRES_OPERATOR_VERSION" >/dev/null
}

pooler_rootfs() { db_rootfs db-pooler pgbouncer:100:101:/var/lib/pgbouncer:/usr/sbin/nologin "${POOLER_PACKAGES[@]}"; }

build_pooler_image() {
  local src root stage
  src=$(operator_source)
  root=$(pooler_rootfs)
  stage="$BUILD/stage/pgbouncer"
  if ! stage_current "$stage" "$root" "$POSTGRES_OPERATOR_SOURCE_SHA256" "${POOLER_PACKAGES[@]}"; then
    stage_fresh "$root" "$stage"
    # Debian's sample configuration goes; the entrypoint writes pgbouncer.ini from upstream's template.
    rm -rf "$stage/etc/pgbouncer" && mkdir -p "$stage/etc/pgbouncer"
    install -m 0644 "$src/pooler/pgbouncer.ini.tmpl" "$stage/etc/pgbouncer/pgbouncer.ini.tmpl"
    install -m 0755 "$src/pooler/entrypoint.sh" "$stage/entrypoint.sh"
    # Upstream's image has /bin/pgbouncer (the entrypoint execs it); Debian's is /usr/sbin/pgbouncer.
    [[ -x $stage/usr/sbin/pgbouncer ]] || die "pgbouncer is not at /usr/sbin/pgbouncer"
    ln -sfn ../sbin/pgbouncer "$stage/usr/bin/pgbouncer"
    # /var/run is /run on Debian. The entrypoint writes pgbouncer.ini and a self-signed key and certificate,
    # pgbouncer its log and pid file: all as pgbouncer.
    mkdir -p "$stage/var/log/pgbouncer" "$stage/run/pgbouncer" "$stage/etc/ssl/certs"
    chown -R 100:101 "$stage/etc/pgbouncer" "$stage/var/log/pgbouncer" "$stage/run/pgbouncer" "$stage/etc/ssl/certs"
    stage_done "$stage" "$root" "$POSTGRES_OPERATOR_SOURCE_SHA256" "${POOLER_PACKAGES[@]}"
  fi
  oci_image pgbouncer "$OPERATOR_TAG" "$stage" --user 100:101 --workdir /etc/pgbouncer \
    --entrypoint '["/bin/sh","/entrypoint.sh"]' --port 5432 \
    --label org.opencontainers.image.title=postgres-operator-pgbouncer \
    --label "org.opencontainers.image.version=$POSTGRES_OPERATOR_VERSION" >/dev/null
}

backup_rootfs() { db_rootfs db-logical-backup - "${BACKUP_PACKAGES[@]}"; }

build_backup_image() {
  local src root stage
  src=$(operator_source)
  root=$(backup_rootfs)
  stage="$BUILD/stage/logical-backup"
  if ! stage_current "$stage" "$root" "$POSTGRES_OPERATOR_SOURCE_SHA256" "${BACKUP_PACKAGES[@]}"; then
    stage_fresh "$root" "$stage"
    [[ -x $stage/usr/lib/postgresql/$PG_MAJOR/bin/pg_dumpall ]] || die "no pg_dumpall $PG_MAJOR in $stage"
    [[ -x $stage/usr/bin/aws ]] || die "no aws in $stage (Debian's awscli)"
    install -m 0755 "$src/logical-backup/dump.sh" "$stage/dump.sh"
    stage_done "$stage" "$root" "$POSTGRES_OPERATOR_SOURCE_SHA256" "${BACKUP_PACKAGES[@]}"
  fi
  # Upstream runs as root unless the pod says otherwise; the operator gives the backup pod the Spilo pod's
  # IDs, so the image defaults to them too, with HOME on the only writable path (/tmp).
  oci_image logical-backup "$OPERATOR_TAG" "$stage" --user 101:103 --env PG_DIR=/usr/lib/postgresql \
    --env HOME=/tmp --entrypoint /dump.sh \
    --label org.opencontainers.image.title=postgres-operator-logical-backup \
    --label "org.opencontainers.image.version=$POSTGRES_OPERATOR_VERSION" >/dev/null
}

# spilo_layout STAGE SRC: what Spilo's Dockerfile, prepare.sh, base.sh (locales.sh) and post_build.sh do to
# the image at runtime-relevant places, in their order, on the staged copy. SRC is postgres-appliance/.
spilo_layout() {
  local stage=$1 src=$2 pghome=/home/postgres rw=/run svc=/etc/runit/runsvdir/default
  # prepare.sh: envdir is runit's chpst under another name; no distribution cron jobs. No setcap on chrt
  # and renice: the pods run without capabilities and with no_new_privs, and the runit scripts fall back.
  [[ -e $stage/usr/bin/envdir ]] || ln -s chpst "$stage/usr/bin/envdir"
  rm -rf "$stage"/etc/cron.??*
  : > "$stage/etc/crontab"
  # locales.sh + base.sh: en_US.UTF-8 only, in an archive that launch.sh selects through /run/locale-archive
  # (it links locale-archive.22, the "current" glibc archive; .18, Ubuntu 18.04's for USE_OLD_LOCALES=true,
  # is not built).
  find "$stage/usr/share/i18n/charmaps" -type f ! -name UTF-8.gz -delete
  find "$stage/usr/share/i18n/locales" -type f ! -name en_US ! -name en_GB ! -name 'i18n*' ! -name iso14651_t1 \
    ! -name iso14651_t1_common ! -name 'translit_*' -delete
  printf 'en_US.UTF-8 UTF-8\n' > "$stage/usr/share/i18n/SUPPORTED"
  rm -f "$stage/usr/lib/locale/locale-archive"
  chroot "$stage" localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8
  mv "$stage/usr/lib/locale/locale-archive" "$stage/usr/lib/locale/locale-archive.22"
  ln -s /run/locale-archive "$stage/usr/lib/locale/locale-archive"
  ln -sfn /usr/lib/locale/locale-archive.22 "$stage$rw/locale-archive"
  # base.sh: Debian's pgbouncer sample configuration goes; cron_unprivileged.so lets cron run without root
  # (the runit cron service preloads it for a non-root UID).
  rm -rf "$stage"/etc/pgbouncer/*
  mkdir -p "$stage/usr/local/lib"
  gcc -s -shared -fPIC -o "$stage/usr/local/lib/cron_unprivileged.so" "$src/cron_unprivileged.c"
  # Dockerfile: motd, the runit services (through upstream's /etc/service symlink they land in
  # /etc/runit/runsvdir/default, where configure_spilo.py links them from), pgq_ticker.ini.
  install -m 0644 "$src/motd" "$stage/etc/motd"
  rm -rf "${stage:?}$svc" && mkdir -p "$stage$svc"
  cp -r "$src/runit/." "$stage$svc/"
  mkdir -p "$stage$pghome"
  install -m 0644 "$src/pgq_ticker.ini" "$stage$pghome/pgq_ticker.ini"
  # post_build.sh, line by line.
  sed -i "s|/var/lib/postgresql.*|$pghome:/bin/bash|" "$stage/etc/passwd"
  grep -q "^postgres:x:101:103:.*:$pghome:/bin/bash$" "$stage/etc/passwd" || die "postgres is not 101:103 with $pghome"
  chown -R 101:103 "$stage$pghome" "$stage$rw"
  rm -rf "$stage/var/spool/cron" "$stage/var/tmp"
  mkdir -p "$stage/var/spool"
  ln -s "$rw/cron" "$stage/var/spool/cron"
  ln -s "$rw/tmp" "$stage/var/tmp"
  local d
  for d in "$stage$svc"/*; do
    chmod 755 "$d"/*
    ln -s "$rw/supervise/$(basename "$d")" "$d/supervise"
  done
  rm -rf "$stage/etc/service"
  ln -s "$rw/service" "$stage/etc/service"
  ln -sfn "$rw/pam.d-postgresql" "$stage/etc/pam.d/postgresql"
  ln -s "$rw/postgres.yml" "$stage$pghome/postgres.yml"
  ln -s "$rw/.bash_history" "$stage/root/.bash_history"
  ln -s "$rw/postgresql/.bash_history" "$stage$pghome/.bash_history"
  ln -s "$rw/postgresql/.psql_history" "$stage$pghome/.psql_history"
  ln -s "$rw/etc" "$stage$pghome/etc"
  for d in "$pghome" /root; do
    mkdir -p "$stage$d/.config/patroni"
    ln -s "$pghome/postgres.yml" "$stage$d/.config/patroni/patronictl.yaml"
  done
  sed -i 's/set compatible/set nocompatible/' "$stage/etc/vim/vimrc.tiny"
  printf 'PATH="%s"\n' "$SPILO_PATH" > "$stage/etc/environment"
  printf 'export %s\n' TERM=linux LC_ALL=C.UTF-8 LANG=C.UTF-8 EDITOR=editor >> "$stage/etc/bash.bashrc"
  ln -s /etc/skel/.bashrc "$stage$pghome/.bashrc"
  echo "source /etc/motd" >> "$stage/root/.bashrc"
  # "Allow users in the root group to access the following files and dirs": launch.sh rewrites /etc/passwd
  # for an arbitrary UID, and the pod's process is in group root through the image's /etc/group.
  chmod 664 "$stage/etc/passwd"
  chmod o+r "$stage/etc/shadow"
  chgrp -R 0 "$stage$pghome" "$stage$rw"
  chmod -R g=u "$stage$pghome" "$stage$rw"
  chroot "$stage" usermod -a -G root postgres
  # Dockerfile: COPY scripts bootstrap major_upgrade /scripts/ (their contents, side by side), launch.sh.
  mkdir -p "$stage/scripts"
  cp -r "$src/scripts/." "$src/bootstrap/." "$src/major_upgrade/." "$stage/scripts/"
  install -m 0755 "$src/launch.sh" "$stage/launch.sh"
  chmod -R u=rwX,go=rX "$stage/scripts"
  spilo_adjust_post_init "$stage/scripts/post_init.sh"
}

# spilo_adjust_post_init FILE: the one change to Spilo's files. post_init.sh (Patroni's bootstrap post_init,
# psql under ON_ERROR_STOP) creates the pg_auth_mon extension, which Debian does not package, so the
# bootstrap would fail; its three statements become one SQL comment in the staged copy. Dies when upstream's
# lines are not exactly these three, so a new Spilo release is looked at again.
spilo_adjust_post_init() {
  local file=$1 before after
  before=$(grep -c 'pg_auth_mon' "$file")
  [[ $before -eq 3 ]] || die "post_init.sh mentions pg_auth_mon $before times, the adjustment expects 3"
  sed -i -e '/^CREATE EXTENSION IF NOT EXISTS pg_auth_mon SCHEMA public;$/c\-- threetier e2e image: pg_auth_mon is not packaged for Debian; its CREATE EXTENSION, ALTER EXTENSION and GRANT were removed at build time (tests/harness/images/build-db-images.sh).' \
    -e '/^ALTER EXTENSION pg_auth_mon UPDATE;$/d' \
    -e '/^GRANT SELECT ON TABLE public.pg_auth_mon TO robot_zmon;$/d' "$file"
  after=$(grep -c 'pg_auth_mon' "$file")
  [[ $after -eq 1 ]] || die "post_init.sh: the pg_auth_mon statements were not removed ($after mentions left)"
  bash -n "$file" || die "post_init.sh does not parse after the adjustment"
}

SPILO_PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/$PG_MAJOR/bin"

build_spilo_image() {
  local src root stage
  src=$(spilo_source)
  root=$(spilo_rootfs)
  stage="$BUILD/stage/$SPILO_IMAGE"
  if ! stage_current "$stage" "$root" "$SPILO_SOURCE_SHA256"; then
    log "staging $SPILO_IMAGE:$SPILO_VERSION from ${root##*/} and Spilo's postgres-appliance"
    stage_fresh "$root" "$stage"
    spilo_layout "$stage" "$src"
    stage_done "$stage" "$root" "$SPILO_SOURCE_SHA256"
  fi
  # Dockerfile's ENV, EXPOSE, WORKDIR and CMD (PGVERSION 17, DEMO false). The image sets no USER, as upstream:
  # the operator's spilo_runasuser/runasgroup/fsgroup choose the IDs.
  local pgroot=/home/postgres/pgdata/pgroot
  oci_image "$SPILO_IMAGE" "$SPILO_VERSION" "$stage" --workdir /home/postgres \
    --env LC_ALL=en_US.utf-8 --env "PATH=$SPILO_PATH" --env PGHOME=/home/postgres --env RW_DIR=/run \
    --env DEMO=false --env WALE_ENV_DIR=/run/etc/wal-e.d/env --env LOG_ENV_DIR=/run/etc/log.d/env \
    --env PGROOT=$pgroot --env PGDATA=$pgroot/data --env PGLOG=$pgroot/pg_log --env USE_OLD_LOCALES=false \
    --cmd '["/bin/sh","/launch.sh","init"]' --port 5432 --port 8008 --port 8080 \
    --label org.opencontainers.image.title=spilo-$PG_MAJOR \
    --label "org.opencontainers.image.version=$SPILO_VERSION" \
    --label "org.opencontainers.image.revision=$SPILO_COMMIT" >/dev/null
}

check_pins() {
  local pinned
  pinned=$(sed -n 's/^patroni\[[a-z0-9,]*\]==\([^ ]*\) .*/\1/p' "$SPILO_REQUIREMENTS")
  [[ $pinned == "$PATRONI_VERSION" ]] \
    || die "requirements/spilo-image.txt pins patroni ${pinned:-?}, tools/versions.env PATRONI_VERSION=$PATRONI_VERSION"
}

image_tag() { if [[ $1 == "$SPILO_IMAGE" ]]; then printf '%s\n' "$SPILO_VERSION"; else printf '%s\n' "$OPERATOR_TAG"; fi; }

# timed_build NAME: builds image NAME, its time in BUILD_SECONDS[NAME]; when that produced a new archive, the
# time also goes to $BUILD/NAME.seconds, so `test` alone can still say what the last real build took.
timed_build() {
  local name=$1 archive before start=$SECONDS
  archive="$THREETIER_E2E_DIR/images/${name}_$(image_tag "$name").tar"
  before=$(stat -c %y "$archive" 2>/dev/null || echo none)
  case $name in
    pgbouncer) build_pooler_image ;;
    postgres-operator) build_operator_image ;;
    logical-backup) build_backup_image ;;
    "$SPILO_IMAGE") build_spilo_image ;;
  esac
  BUILD_SECONDS[$name]=$((SECONDS - start))
  [[ $(stat -c %y "$archive") == "$before" ]] || printf '%s\n' "${BUILD_SECONDS[$name]}" > "$BUILD/$name.seconds"
}

build_all() {
  check_pins
  mkdir -p "$BUILD"
  # One at a time (two cores shared); the pooler first: the operator image takes its CA bundle.
  local name
  for name in pgbouncer postgres-operator logical-backup "$SPILO_IMAGE"; do
    timed_build "$name"
  done
}

# shellcheck source=db-test.sh
. "$THREETIER_ROOT/tests/harness/images/db-test.sh"

main() {
  local action=${1:-all}
  [[ $action =~ ^(build|test|all)$ ]] || die "usage: $0 [build|test|all]"
  [[ $(id -u) -eq 0 ]] || die "needs root (debootstrap, chroot, runc, ip netns, mount)"
  local tool
  for tool in umoci skopeo runc gcc go file ip; do command -v "$tool" >/dev/null || die "$tool is missing"; done
  local total=$SECONDS
  [[ $action == test ]] || build_all
  if [[ $action == build ]]; then
    image_table
  else
    db_test
  fi
  log "done in $((SECONDS - total)) s"
}

main "$@"
