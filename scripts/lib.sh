# Shared helpers of tabby's scripts. Source it; do not run it.
# shellcheck shell=bash

TABBY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TABBY_CACHE="${TABBY_CACHE:-$TABBY_ROOT/target/tabby-cache}"

# Debian packages the project runs with, by the command that proves each.
declare -A TABBY_PACKAGES=(
  [dockerd]=docker.io [etcd]=etcd-server [etcdctl]=etcd-client
  [iptables]=iptables [ipset]=ipset [iperf3]=iperf3 [busybox]=busybox-static
  [debootstrap]=debootstrap [protoc]=protobuf-compiler [bird]=bird2
  [jq]=jq [nsenter]=util-linux [ip]=iproute2 [pgrep]=procps
  [docker-compose]=docker-compose [nft]=nftables
)
# Packages that bring files rather than commands, by the file that proves each.
declare -A TABBY_PACKAGE_FILES=(
  # protoc's well-known types, which etcd-client's build imports.
  [/usr/include/google/protobuf/descriptor.proto]=libprotobuf-dev
)

log() { printf '\033[1m[tabby]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[tabby] error:\033[0m %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "this needs root (network namespaces, iptables, dockerd)"
}

# Installs the Debian packages whose commands are missing.
ensure_packages() {
  local missing=() cmd
  for cmd in "${!TABBY_PACKAGES[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${TABBY_PACKAGES[$cmd]}")
  done
  local file
  for file in "${!TABBY_PACKAGE_FILES[@]}"; do
    [ -e "$file" ] || missing+=("${TABBY_PACKAGE_FILES[$file]}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 && return 0
  [ -x "$HOME/.cargo/bin/cargo" ] && { export PATH="$HOME/.cargo/bin:$PATH"; return 0; }
  die "cargo not found: install a Rust toolchain (rustup) first"
}

# The tabby binary scripts run: $TABBY_BIN if set, else a release build.
tabby_bin() {
  if [ -n "${TABBY_BIN:-}" ]; then
    echo "$TABBY_BIN"
    return
  fi
  ensure_rust
  (cd "$TABBY_ROOT" && cargo build --release --quiet) >&2 || die "cargo build failed"
  echo "$TABBY_ROOT/target/release/tabby"
}

# A busybox root filesystem as a tarball for `docker import`.
busybox_tar() {
  local tar="$TABBY_CACHE/busybox.tar"
  if [ ! -s "$tar" ]; then
    local root
    root="$(mktemp -d)"
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$TABBY_CACHE"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
      [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
    # Parallel callers each build their own and rename: the last one wins.
    local tmp
    tmp="$(mktemp "$TABBY_CACHE/busybox.XXXXXX")"
    tar -C "$root" -cf "$tmp" . && mv "$tmp" "$tar"
    rm -rf "$root"
  fi
  echo "$tar"
}

# A MariaDB root filesystem (Debian bookworm minbase + mariadb-server) with
# an entrypoint like the official image's, as a tarball for `docker import`.
# Takes a minute or two the first time; cached after.
# Galera (galera-4) and what its state transfers run: rsync, and
# mariadb-backup with socat; ss (iproute2) is how the SST scripts wait for
# their listeners.
MARIADB_PACKAGES=mariadb-server,mariadb-client,galera-4,rsync,iproute2,mariadb-backup,socat

# The recipe's version: a changed entrypoint, Galera default or package
# list makes a new image.
mariadb_recipe() {
  { cat "$TABBY_ROOT/scripts/mariadb-entrypoint" "$TABBY_ROOT/scripts/mariadb-galera-default.cnf"
    echo "$MARIADB_PACKAGES rsync-no-reverse-lookup"; } |
    sha256sum | cut -c1-12
}

mariadb_tar() {
  local tar
  tar="$TABBY_CACHE/mariadb-$(mariadb_recipe).tar"
  mkdir -p "$TABBY_CACHE"
  # One build at a time: parallel tests would each run debootstrap.
  exec {lock}>"$TABBY_CACHE/mariadb.lock"
  flock "$lock"
  if [ ! -s "$tar" ]; then
    # debootstrap needs the Debian mirror: a lab host namespace has no route.
    ip route show default | grep -q . ||
      die "no default route in this network namespace: build images with 'scripts/images' outside the lab first"
    local root mirror
    root="$(mktemp -d)"
    mirror="${TABBY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    mkdir -p "$TABBY_CACHE"
    log "building the MariaDB image rootfs (debootstrap, about 80 s)"
    debootstrap --variant=minbase --include="$MARIADB_PACKAGES" \
      bookworm "$root" "$mirror" >"$TABBY_CACHE/mariadb-debootstrap.log" 2>&1 ||
      { rm -rf "$root"; die "debootstrap failed: see $TABBY_CACHE/mariadb-debootstrap.log"; }
    install -m 0755 "$TABBY_ROOT/scripts/mariadb-entrypoint" "$root/usr/local/bin/tabby-mariadb-entrypoint"
    install -m 0644 "$TABBY_ROOT/scripts/mariadb-galera-default.cnf" \
      "$root/etc/mysql/conf.d/tabby-galera-default.cnf"
    # The joiner's rsync daemon looks up the name of every donor connection;
    # where DNS does not answer (Docker's resolver with no upstream, as on a
    # lab host) each of the transfer's six connections waits 10 s for it.
    sed -i 's/^use chroot = no$/&\nreverse lookup = no/' "$root/usr/bin/wsrep_sst_rsync"
    grep -q '^reverse lookup = no$' "$root/usr/bin/wsrep_sst_rsync" ||
      die "wsrep_sst_rsync changed: cannot turn off rsync's reverse lookups"
    rm -rf "$root/var/lib/mysql"/* "$root/var/cache/apt/archives"/*.deb
    rm -f "$TABBY_CACHE"/mariadb*.tar
    local tmp
    tmp="$(mktemp "$TABBY_CACHE/mariadb.XXXXXX")"
    tar -C "$root" -cf "$tmp" . && mv "$tmp" "$tar"
    rm -rf "$root"
  fi
  flock -u "$lock"
  echo "$tar"
}

# Imports an image (busybox or mariadb) into the dockerd DOCKER_HOST points
# at, unless it is there.
import_image() {
  local name=$1
  local tar recipe=
  if [ "$name" = mariadb ]; then
    recipe=$(mariadb_recipe)
    [ "$(docker image inspect -f '{{index .Config.Labels "tabby.recipe"}}' tabby/mariadb 2>/dev/null)" = "$recipe" ] &&
      return 0
  else
    docker image inspect "tabby/$name" >/dev/null 2>&1 && return 0
  fi
  case $name in
    busybox)
      tar=$(busybox_tar) || die "cannot build the busybox image"
      docker import -c 'CMD ["/bin/sh"]' "$tar" tabby/busybox >/dev/null ;;
    mariadb)
      tar=$(mariadb_tar) || die "cannot build the MariaDB image"
      docker import -c 'ENTRYPOINT ["/usr/local/bin/tabby-mariadb-entrypoint"]' -c 'CMD ["mariadbd"]' \
        -c 'EXPOSE 3306' -c "LABEL tabby.recipe=$recipe" "$tar" tabby/mariadb >/dev/null ;;
    *) die "unknown image $name (busybox, mariadb)" ;;
  esac
}

import_busybox() { import_image busybox; }

# Waits until a command succeeds, up to $1 seconds.
wait_for() {
  local timeout=$1; shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}

# Stops a process by pid file: TERM, then KILL after $2 seconds.
stop_pidfile() {
  local pidfile=$1 grace=${2:-10} pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    local deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

alive_pidfile() {
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}
