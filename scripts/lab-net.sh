# The lab's network, sourced by scripts/lab: the L2 segments and their
# bridges, the tor router and its BIRD, each host's namespaces. Source it;
# do not run it.
# shellcheck shell=bash

# Whether the root namespace filters forwarded packets in iptables at all.
# Where iptables-nft has no filter table yet, nothing needs passing, and
# merely checking for a rule (-C, -D) would make the table, which the lab
# would then leave behind.
forward_filtered() {
  case "$(iptables -V 2>/dev/null)" in
    *nf_tables*) nft list chain ip filter FORWARD >/dev/null 2>&1 ;;
    *) true ;;
  esac
}

# Segment k's bridge, and the accept rule its bridged traffic needs: a
# dockerd in the root namespace loads br_netfilter and drops forwarded
# traffic, and the lab's bridged traffic must not depend on that.
make_bridge() {
  local br
  br=$(bridge_of "$1")
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge
    ip link set "$br" up
  fi
  if forward_filtered; then
    iptables -C FORWARD -i "$br" -o "$br" -j ACCEPT 2>/dev/null ||
      iptables -I FORWARD -i "$br" -o "$br" -j ACCEPT
  fi
}

# Routes to the other segments through segment $2's router, in netns $1,
# in both families.
route_segments() {
  local ns=$1 k=$2 j
  for j in $(seq 1 "$SEGMENTS"); do
    [ "$j" != "$k" ] || continue
    ip -n "$ns" route replace "$(subnet_of "$j")" via "$(gateway_of "$k")" dev eth0
    ip -n "$ns" -6 route replace "$(subnet6_of "$j")" via "$(gateway6_of "$k")" dev eth0
  done
}

# No router advertisement may give a lab namespace a route (or an
# address): lab hosts have no default route in either family.
no_router_advertisements() {
  nsenter --net="/run/netns/$1" -- sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
}

# The router: 198.18.(k-1).1 on every segment (veth tlIDtk in the root
# namespace, segk inside), forwarding, no default route.
make_tor() {
  local ns k veth
  ns=$(netns_of tor)
  mkdir -p "$LAB_DIR/tor/bin"
  if ! tor_up; then
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    for k in $(seq 1 "$SEGMENTS"); do
      veth="tl${LAB_ID}t$k"
      ip link add "$veth" type veth peer name "seg$k" netns "$ns"
      ip link set "$veth" master "$(bridge_of "$k")" up
      ip -n "$ns" addr add "$(gateway_of "$k")/24" dev "seg$k"
      ip -n "$ns" addr add "$(gateway6_of "$k")/64" dev "seg$k" nodad
      ip -n "$ns" link set "seg$k" up
    done
    no_router_advertisements "$ns"
    nsenter --net="/run/netns/$ns" -- sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  fi
  # birdc resolved now: the wrapper must not find itself on PATH.
  printf '#!/bin/sh\nexec %s -s %s "$@"\n' "$(command -v birdc)" "$LAB_DIR/tor/bird.ctl" >"$LAB_DIR/tor/bin/birdc"
  chmod 0755 "$LAB_DIR/tor/bin/birdc"
}

# The tor's BIRD: one eBGP session per host (single hop: each host is on
# one of the tor's segments), everything re-announced, learned routes in
# the tor's kernel.
tor_bird_conf() {
  local h
  printf 'log "%s" all;\nrouter id %s;\n' "$LAB_DIR/tor/bird.log" "$(gateway_of 1)"
  printf 'protocol device {}\nprotocol kernel { ipv4 { export all; }; }\n'
  for h in $(hosts); do
    printf 'protocol bgp %s {\n  local as %s;\n  neighbor %s as %s;\n  graceful restart on;\n  ipv4 { import all; export all; };\n}\n' \
      "$h" "$TOR_AS" "$(ip_of "$h")" "$HOST_AS"
  done
}

start_tor_bird() {
  local d="$LAB_DIR/tor"
  if [ "$TOR_BGP" != 1 ] || ! tor_up; then die "this lab's tor runs no BIRD (TABBY_LAB_TOR_BGP=1 at up)"; fi
  alive_pidfile "$d/bird.pid" && return 0
  tor_bird_conf >"$d/bird.conf.new"
  bird -p -c "$d/bird.conf.new" || die "the tor's BIRD config $d/bird.conf.new does not parse"
  mv "$d/bird.conf.new" "$d/bird.conf"
  rm -f "$d/bird.pid"
  # BIRD daemonizes and writes its pid file itself.
  nsenter --net="/run/netns/$(netns_of tor)" -- \
    bird -c "$d/bird.conf" -s "$d/bird.ctl" -P "$d/bird.pid" >>"$d/bird.out" 2>&1 </dev/null ||
    { tail -5 "$d/bird.out" >&2; die "the tor's BIRD did not start"; }
  wait_for 10 "$d/bin/birdc" show status || { tail -5 "$d/bird.log" >&2; die "the tor's BIRD does not answer"; }
}

stop_tor_bird() {
  stop_pidfile "$LAB_DIR/tor/bird.pid" 10
  rm -f "$LAB_DIR/tor/bird.ctl"
}

make_host() {
  local h=$1 ns ip veth k
  ns=$(netns_of "$h"); ip=$(ip_of "$h"); veth="tl$LAB_ID${h}"; k=$(seg_of "$h")
  mkdir -p "$LAB_DIR/$h/plugins" "$LAB_DIR/$h/data" "$LAB_DIR/$h/exec" "$LAB_DIR/$h/bird"
  if ! ip netns list | grep -qw "^$ns"; then
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$(bridge_of "$k")" up
    no_router_advertisements "$ns"
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" addr add "$(ip6_of "$h")/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    route_segments "$ns" "$k"
  fi
  # A persistent mount namespace whose /run/docker/plugins is the host's
  # own: each dockerd finds only its own host's tabby socket.
  if [ ! -e "$LAB_DIR/ns/$h" ] || ! mountpoint -q "$LAB_DIR/ns/$h"; then
    mkdir -p /run/docker/plugins
    touch "$LAB_DIR/ns/$h"
    unshare --mount="$LAB_DIR/ns/$h" --propagation private \
      mount --bind "$LAB_DIR/$h/plugins" /run/docker/plugins
  fi
}
