# The lab's daemons, sourced by scripts/lab: etcd (and its TLS), dockerd
# and the tabby agent of each host, started and stopped one by one. Source
# it; do not run it.
# shellcheck shell=bash

# A CA, a server certificate per host (its lab address and loopback) and
# one client certificate, all EC P-256, valid for the lab's lifetime.
make_tls() {
  local d="$LAB_DIR/tls" h
  [ -s "$d/ca.pem" ] && return 0
  mkdir -p "$d" && chmod 700 "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=tabby lab $LAB_ID CA" -keyout "$d/ca-key.pem" -out "$d/ca.pem.new" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  issue() { # name, CN, extensions
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
      -keyout "$d/$1-key.pem" -out "$d/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$d/$1.ext"
    openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.pem.new" -CAkey "$d/ca-key.pem" -CAcreateserial \
      -days 30 -extfile "$d/$1.ext" -out "$d/$1.pem" 2>/dev/null
    chmod 600 "$d/$1-key.pem"
  }
  for h in $(hosts); do
    issue "$h" "$h" "subjectAltName=IP:$(ip_of "$h"),IP:127.0.0.1
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"
  done
  issue client tabby "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
  mv "$d/ca.pem.new" "$d/ca.pem"
}

start_etcd() {
  local h=$1 ip cluster="" m
  ip=$(ip_of "$h")
  alive_pidfile "$LAB_DIR/$h/etcd.pid" && return 0
  for m in $(hosts); do cluster="$cluster${cluster:+,}$m=http://$(ip_of "$m"):2380"; done
  local state=new
  [ -d "$LAB_DIR/$h/etcd/member" ] && state=existing
  local tls=""
  tls_on && tls="--client-cert-auth --trusted-ca-file $LAB_DIR/tls/ca.pem \
    --cert-file $LAB_DIR/tls/$h.pem --key-file $LAB_DIR/tls/$h-key.pem"
  # shellcheck disable=SC2086 # option list, split on purpose
  on_bg "$h" "$LAB_DIR/$h/etcd.log" "$LAB_DIR/$h/etcd.pid" etcd --name "$h" --data-dir "$LAB_DIR/$h/etcd" \
    --listen-client-urls "$(scheme)://$ip:2379,$(scheme)://127.0.0.1:2379" \
    --advertise-client-urls "$(scheme)://$ip:2379" $tls \
    --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
    --initial-cluster "$cluster" --initial-cluster-state "$state" \
    --initial-cluster-token "tabby-lab$LAB_ID"
}

# shellcheck disable=SC2046 # option list, split on purpose
etcd_healthy() { on "$1" env ETCDCTL_API=3 etcdctl --endpoints "$(scheme)://$(ip_of "$1"):2379" $(etcdctl_tls) --command-timeout=2s endpoint health; }

start_dockerd() {
  local h=$1
  alive_pidfile "$LAB_DIR/$h/dockerd.pid" && return 0
  # shellcheck disable=SC2046,SC2086 # option lists, split on purpose
  on_bg "$h" "$LAB_DIR/$h/dockerd.log" "$LAB_DIR/$h/dockerd.pid" dockerd --data-root "$LAB_DIR/$h/data" --exec-root "$LAB_DIR/$h/exec" \
    -H "unix://$LAB_DIR/$h/docker.sock" --pidfile "$LAB_DIR/$h/exec/dockerd.pid" \
    $(docker_bridge_args "$h") --ip-forward=true ${TABBY_LAB_DOCKERD_ARGS:-}
}

# Docker's own bridge only when asked (benchmarks compare against it), and
# then inside the benchmarking range.
docker_bridge_args() {
  if [ -n "${TABBY_LAB_DOCKER_BRIDGE:-}" ]; then
    echo "--bip 198.19.$((100 + ${1#h})).1/24"
  else
    echo "--bridge none"
  fi
}

# Processes run by the containerd shims of host $1 (or of every host):
# containers and managed plugins, which carry no lab path to be found by.
kill_shim_children() {
  local shim
  for shim in $(pgrep -f "containerd-shim.*$LAB_DIR/${1:-}" || true); do
    pkill -KILL -P "$shim" 2>/dev/null || true
  done
}

docker_on() { local h=$1; shift; on "$h" env DOCKER_HOST="unix://$LAB_DIR/$h/docker.sock" docker "$@"; }

# The routing options go by environment (TABBY_ROUTING, TABBY_BIRD_DIR:
# --routing, --bird-dir), which an agent without them ignores; a
# TABBY_ROUTING of the caller's own wins over the lab's.
routing_env() {
  local h=$1
  mkdir -p "$LAB_DIR/$h/bird"
  echo "TABBY_BIRD_DIR=$LAB_DIR/$h/bird"
  [ "$ROUTING" != bgp ] || echo "TABBY_ROUTING=${TABBY_ROUTING:-bgp}"
}

start_agent() {
  local h=$1
  alive_pidfile "$LAB_DIR/$h/agent.pid" && return 0
  # shellcheck disable=SC2046 # variable list, split on purpose
  on_bg "$h" "$LAB_DIR/$h/agent.log" "$LAB_DIR/$h/agent.pid" env RUST_LOG="${RUST_LOG:-info}" $(tls_env) $(routing_env "$h") "$LAB_DIR/bin/tabby" \
    --etcd-endpoints "$(etcd_endpoints)" --etcd-prefix "$ETCD_PREFIX" agent \
    --hostname "$h" --ip "$(ip_of "$h")" --node-ttl "$NODE_TTL" \
    --docker-host "unix://$LAB_DIR/$h/docker.sock"
  wait_for 20 test -S "$LAB_DIR/$h/plugins/tabby.sock" || {
    tail -20 "$LAB_DIR/$h/agent.log" >&2; die "agent on $h did not start"; }
}

remove_containers() {
  local ids
  ids=$(timeout 10 "$0" exec "$1" docker ps -aq 2>/dev/null || true)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || timeout 60 "$0" exec "$1" docker rm -f $ids >/dev/null 2>&1 || true
}

stop_component() {
  local h=$1 what=$2
  if [ "$h" = tor ]; then
    [ "$what" = bird ] || die "unknown tor component $what (bird)"
    stop_tor_bird
    return
  fi
  case $what in
    agent) stop_pidfile "$LAB_DIR/$h/agent.pid" 10 ;;
    etcd) stop_pidfile "$LAB_DIR/$h/etcd.pid" 10 ;;
    dockerd)
      alive_pidfile "$LAB_DIR/$h/dockerd.pid" && alive_pidfile "$LAB_DIR/$h/agent.pid" && remove_containers "$h"
      stop_pidfile "$LAB_DIR/$h/dockerd.pid" 20 ;;
    *) die "unknown component $what (agent, etcd, dockerd)" ;;
  esac
}

start_component() {
  local h=$1 what=$2
  if [ "$h" = tor ]; then
    [ "$what" = bird ] || die "unknown tor component $what (bird)"
    start_tor_bird
    return
  fi
  case $what in
    agent) start_agent "$h" ;;
    etcd) start_etcd "$h" ;;
    dockerd) start_dockerd "$h"; wait_for 60 docker_on "$h" info || die "dockerd on $h did not start" ;;
    *) die "unknown component $what (agent, etcd, dockerd)" ;;
  esac
}
