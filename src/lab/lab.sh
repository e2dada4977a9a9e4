#!/usr/bin/env bash
# softunicast lab: the whole system in network namespaces on one machine.
# Run through `softunicast lab COMMAND` (src/lab/lab.c), which sets SOFTUNICAST
# (the binary) and SOFTUNICAST_BPF_DIR.
#
# Topology, for a fleet of DCs d1..dN with their servers:
#
#   ns sul-isp<i> ISP i, "nearest" to DC i: origin 192.0.2.10*i on lo, BIRD
#                 with an eBGP session to DC i's router (i-<dc>, 172.31.i.1/30)
#                 and one to the transit (transit, 172.30.i.2/30).
#   ns sul-inet   the transit joining the ISPs (isp<i>, 172.30.i.1/30), BIRD;
#                 "the rest of the Internet": the proxy's clients and DNS.
#                 Every DC announces the egress aggregates (anycast, one AS):
#                 ISP i hears them from DC i directly and from the other DCs
#                 through the transit (a longer AS path), so origin i's
#                 replies go to DC i because BGP chose it, and a flow of a
#                 server of DC j != i returns to the "wrong" DC.
#   ns sul-<dc>   the DC router: e-<dc> to its ISP (172.31.i.2/30, XDP),
#                 b-<dc> to the backbone (10.255.0.i/24, XDP), s<k> to server
#                 k, the router address of the plan on lo; BIRD announcing
#                 the aggregates (never configured on the host).
#   ns sul-bb     the backbone: a bridge joining every b-<dc>.
#   ns sul-<dc>-<k> server k: eth0 with its plan address; the agent adds the
#                 egress IPs, GUE decap and the ownership rules.
#   ns sul-mgmt   the management network: a bridge (10.254.255.254/16) with a
#                 leg m0 in every router and server namespace, where routers
#                 and agents serve --metrics (10.254.i.254, 10.254.i.k :9100).
set -uo pipefail

SU=${SOFTUNICAST:-softunicast}
BPF_DIR=${SOFTUNICAST_BPF_DIR:-$(dirname "$SU")/../bpf}
LIB_DIR=$(cd "$(dirname "$SU")/../lib" 2>/dev/null && pwd)
STATE=${SOFTUNICAST_LAB_DIR:-/run/softunicast-lab}
# The routers' pinned maps live on a bpf filesystem of the lab's own: `ip
# netns exec` remounts /sys, so a pin under /sys/fs/bpf would not be seen
# from inside the namespaces.
PIN=$STATE/bpf
# SOFTUNICAST_LAB_NS and SOFTUNICAST_LAB_DIR let two labs (a test suite's and a
# demo) run side by side: every namespace name starts with the prefix.
NS=${SOFTUNICAST_LAB_NS:-sul}
DEFAULT_FLEET=$(dirname "$SU")/../../examples/lab.yaml
[ -f "$DEFAULT_FLEET" ] || DEFAULT_FLEET=$(dirname "$SU")/../share/softunicast/examples/lab.yaml

usage() {
	cat <<'EOF'
Usage: softunicast lab up [--fleet FLEET.yaml] [--store file|etcd]
       softunicast lab run [--tap] [--only move]
       softunicast lab replan --fleet FLEET.yaml [--pin IP[/LEN]=DC]...
       softunicast lab status [--json]
       softunicast lab down

Builds the whole soft-unicast system on this machine with network namespaces
and veth pairs, from a fleet description (default: examples/lab.yaml, two
DCs of three servers): an "Internet" of one ISP namespace per data center
(each with an origin server) joined by a transit, where BIRD 2 routes the
egress prefixes by real eBGP (every DC's router namespace announces the
aggregates, anycast; each ISP prefers its own DC, the shorter AS path); a
router namespace per data center running `softunicast router` (XDP, native
mode), a namespace per server running `softunicast agent`, a backbone
joining the routers, and a management network where routers and agents
serve their Prometheus metrics.

  up       plan the fleet, build the namespaces, start BIRD, routers and
           agents (with --metrics), write the plan's report (report.html)
           --store etcd: a 3-member etcd cluster on a control network of its
           own (namespace <prefix>-etcd, 10.253.0.0/16, reached from every
           router and server namespace); the plan is published to it and
           every router and agent follows it (--store etcd://...)
  run      tell the story step by step, checking each step: the plan and its
           cost; egress with tags from every server (softunicast connect, curl
           through the LD_PRELOAD shim, ping); replies that land in the wrong
           DC crossing the backbone; a DC's BGP announcement withdrawn (birdc)
           while a connection is live, the Internet converging on another DC;
           a port outside the slice blocked; unsolicited traffic to an egress
           IP (a wildcard listener) refused and counted; the geofeed; the
           forward proxy; every metrics endpoint scraped and checked with
           `promtool check metrics`; the plan's HTML report; an egress IP
           moved to another DC under a live TCP stream and a connected UDP
           flow (second hop), and a slice handed to another server of its DC
           (the lab's plan is changed for good).
           On etcd also (steps E1-E4): a server drained and undrained (its live connection
           goes on); an IP moved between DCs reaching every node; one member
           down, then all three (forwarding goes on), then back; a version
           never committed, never applied.
           Ends with a summary and exits 1 if any step failed.  --tap prints
           TAP for test harnesses; --only move runs the live-move step alone.
  replan   re-plan against the running plan and roll it out (routers and
           agents reload it, BIRD announces the new aggregates; live
           connections on kept slices continue); --pin moves IPs to a DC at
           once (softunicast plan --pin)
  status   the topology, the BGP sessions and each ISP's best path to every
           egress aggregate, the processes and the routers' counters;
           --json: one JSON object for scripts (topology, bgp.sessions,
           bgp.best, processes, metrics endpoints, report)
  down     stop everything (BIRD included) and remove every namespace, pin
           and file the lab made, also after a failed or interrupted `up`

Needs root, iproute2, nftables, ncat, curl, jq, python3 and BIRD 2 (bird,
birdc); promtool (Debian: prometheus) for the metrics step.  Every address
is a documentation or private range that exists only inside the lab's
namespaces.  Each BIRD has its control socket in STATE/bird/NAME.ctl:
  birdc -s STATE/bird/isp1.ctl show route all
State: /run/softunicast-lab (SOFTUNICAST_LAB_DIR).
EOF
}

die() { echo "softunicast lab: $*" >&2; exit 1; }
x() { local ns=$1; shift; ip netns exec "$NS-$ns" "$@"; }
plan_dcs() { awk '$1 == "dc" && NF == 3 {print $2}' "$STATE/plan"; }
plan_router() { awk -v d="$1" '$1 == "dc" && $2 == d {print $3}' "$STATE/plan"; }
plan_servers() { awk -v d="$1" '$1 == "server" && $3 == d && NF == 4 {print $2, $4}' "$STATE/plan"; }
plan_demands() { awk -v d="$1" '$1 == "demand" && $2 == d && NF == 4 {print $3}' "$STATE/plan"; }
dc_index() { plan_dcs | awk -v d="$1" '$1 == d {print NR}'; }
origin_of() { echo "192.0.2.$((10 * $1))"; }
server_ns() { echo "$1-$2"; } # DC, server index
wait_for() { for _ in $(seq 100); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
mac_of() { x "$1" cat "/sys/class/net/$2/address"; }

# ---- up -------------------------------------------------------------------

require() {
	[ "$(id -u)" = 0 ] || die "needs root (network namespaces, XDP, nftables)"
	for c in ip nft ncat curl jq ethtool python3 bird birdc; do
		command -v $c >/dev/null || die "$c is not installed (scripts/install-deps.sh installs it)"
	done
	[ -x "$SU" ] || die "softunicast binary not found at $SU"
	[ -f "$BPF_DIR/xdp_pass.bpf.o" ] || die "$BPF_DIR/xdp_pass.bpf.o not found (make)"
}

# A veth hands frames redirected into it by XDP to its peer only when the peer
# runs XDP too; and XDP forwards bytes as they are, so checksums must be real
# (veth "offloads" them to hardware that does not exist).
xdp_pass() { x "$1" ip link set dev "$2" xdpdrv obj "$BPF_DIR/xdp_pass.bpf.o" sec xdp; }
no_offload() { x "$1" ethtool -K "$2" tx off >/dev/null 2>&1; }

veth() { # veth NS1 IF1 NS2 IF2
	ip link add "$2" netns "$NS-$1" type veth peer name "$4" netns "$NS-$3" || return 1
	x "$1" ip link set "$2" up && x "$3" ip link set "$4" up
	no_offload "$1" "$2"
	no_offload "$3" "$4"
}

new_ns() {
	ip netns add "$NS-$1" || return 1
	x "$1" ip link set lo up
	echo "$NS-$1" >>"$STATE/namespaces"
}

router_sysctls() {
	local i
	x "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.accept_local=1 \
		net.ipv4.conf.default.accept_local=1 net.ipv4.conf.all.send_redirects=0
	for i in $(x "$1" ls /proc/sys/net/ipv4/conf); do
		x "$1" sysctl -qw "net.ipv4.conf.$i.rp_filter=0" "net.ipv4.conf.$i.accept_local=1"
	done
}

build_inet_and_backbone() {
	new_ns inet && new_ns bb || return 1
	x bb ip link add br0 type bridge && x bb ip link set br0 up
}

build_dc() { # build_dc DC INDEX
	local dc=$1 i=$2 router k=0
	router=$(plan_router "$dc")
	new_ns "$dc" || return 1
	x "$dc" ip addr add "$router/32" dev lo
	build_isp "$i" || return 1
	veth "$dc" "e-$dc" "$(isp_ns "$i")" "i-$dc" || return 1
	x "$dc" ip addr add "172.31.$i.2/30" dev "e-$dc"
	x "$(isp_ns "$i")" ip addr add "172.31.$i.1/30" dev "i-$dc"
	xdp_pass "$(isp_ns "$i")" "i-$dc"
	x "$dc" ip route add default via "172.31.$i.1"
	veth "$dc" "b-$dc" bb "p-$dc" || return 1
	x "$dc" ip addr add "10.255.0.$i/24" dev "b-$dc"
	x bb ip link set "p-$dc" master br0
	xdp_pass bb "p-$dc"
	router_sysctls "$dc"
	while read -r name addr; do
		k=$((k + 1))
		build_server "$dc" "$router" "$k" "$name" "$addr" || return 1
	done < <(plan_servers "$dc")
	x "$(isp_ns "$i")" ip addr add "$(origin_of "$i")/32" dev lo
}

build_server() { # build_server DC ROUTER K NAME ADDR
	local dc=$1 router=$2 k=$3 name=$4 addr=$5 ns
	ns=$(server_ns "$dc" "$k")
	new_ns "$ns" || return 1
	echo "$ns $name $dc" >>"$STATE/servers"
	veth "$dc" "s$k" "$ns" eth0 || return 1
	# The decap's second hop (issue 10) goes back out of eth0 with XDP_TX:
	# a veth delivers XDP frames only to a peer with an XDP program.
	xdp_pass "$dc" "s$k"
	x "$ns" ip addr add "$addr/32" dev eth0
	x "$ns" ip route add "$router/32" dev eth0
	x "$ns" ip route add default via "$router" dev eth0 onlink
	x "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.ping_group_range="0 2147483647"
	x "$dc" ip route add "$addr/32" dev "s$k" src "$router"
	# Static neighbours: the first packets need no ARP round trip.
	x "$dc" ip neigh replace "$addr" lladdr "$(mac_of "$ns" eth0)" dev "s$k" nud permanent
	x "$ns" ip neigh replace "$router" lladdr "$(mac_of "$dc" "s$k")" dev eth0 nud permanent
}

# Every router reaches every other router over the backbone.  The Internet's
# routes to the egress prefixes are BGP's (start_bgp).
build_routes() {
	local dcs i j
	mapfile -t dcs < <(plan_dcs)
	for i in "${!dcs[@]}"; do
		for j in "${!dcs[@]}"; do
			[ "$i" = "$j" ] && continue
			x "${dcs[i]}" ip route add "$(plan_router "${dcs[j]}")/32" via "10.255.0.$((j + 1))"
			x "${dcs[i]}" ip neigh replace "10.255.0.$((j + 1))" \
				lladdr "$(mac_of "${dcs[j]}" "b-${dcs[j]}")" dev "b-${dcs[i]}" nud permanent
		done
		lab_server_routes "${dcs[i]}" || return 1
	done
}

# Servers of the other DCs over the backbone, as a fleet's internal network
# routes them: a live move's second hop (issue 10) goes from a slice's new
# owner to its previous one in another DC.
lab_server_routes() { # lab_server_routes DC
	local j=0 other name addr
	for other in $(plan_dcs); do
		j=$((j + 1))
		[ "$other" = "$1" ] && continue
		while read -r name addr; do
			x "$1" ip route add "$addr/32" via "10.255.0.$j" || return 1
		done < <(plan_servers "$other")
	done
}

# ---- BGP anycast: ISPs, the transit and BIRD (issue 12) --------------------
# Every DC announces the egress aggregates from one AS (anycast) over eBGP to
# the ISP it sits in; every ISP peers with the transit ("inet").  ISP i hears
# the aggregates from DC i directly (AS path FLEET) and from DC j through the
# transit (TRANSIT ISPj FLEET): the shorter path wins, so origin i's replies
# land at DC i because BGP chose it.  DCs tag what they announce with the
# community (FLEET_AS, i) so a route says which DC it leads to.  The DCs
# import nothing (a static default to their ISP) and have no kernel
# protocol: the aggregates live in BIRD's table only, and no egress IP or
# route for one is ever configured on a router host.
FLEET_AS=65000 TRANSIT_AS=65100
isp_as() { echo $((TRANSIT_AS + $1)); }
isp_ns() { echo "isp$1"; }
bird_sock() { echo "$STATE/bird/$1.ctl"; }
bgp() { local b=$1; shift; birdc -s "$(bird_sock "$b")" "$@"; } # bgp BIRD COMMAND...
# The egress prefixes in force, merged into the fewest aggregates: what the
# DCs announce (never an egress IP's /32).
bgp_aggregates() {
	awk '$1 == "prefix" && $NF != "retired" {print $2}' "$STATE/plan" | python3 -c '
import ipaddress, sys
for n in ipaddress.collapse_addresses(ipaddress.ip_network(l.strip()) for l in sys.stdin if l.strip()):
    print(n)'
}
# Every BIRD of the lab: "NAME NAMESPACE"
bgp_birds() {
	local dc i=0
	echo "inet inet"
	for dc in $(plan_dcs); do i=$((i + 1)); echo "$(isp_ns $i) $(isp_ns $i)"; echo "$dc $dc"; done
}

build_isp() { # build_isp INDEX: ISP i's namespace and its link to the transit
	local i=$1 isp
	isp=$(isp_ns "$i")
	new_ns "$isp" || return 1
	veth "$isp" transit inet "$isp" || return 1
	x "$isp" ip addr add "172.30.$i.2/30" dev transit
	x inet ip addr add "172.30.$i.1/30" dev "$isp"
}

# ISPs and the transit forward, and a reply may come back on another path
# than its request (anycast): no reverse-path filter, on any interface.
isp_sysctls() { # isp_sysctls NS
	local f
	x "$1" sysctl -qw net.ipv4.ip_forward=1 || return 1
	for f in $(x "$1" ls /proc/sys/net/ipv4/conf); do
		x "$1" sysctl -qw "net.ipv4.conf.$f.rp_filter=0" || return 1
	done
}

bird_common() { # bird_common ROUTER_ID
	cat <<EOF
# Generated by softunicast lab (lab.sh) from $STATE/plan; BIRD 2.
log stderr all;
router id $1;
protocol device {}
# Sessions come up within seconds (a withdrawal is an UPDATE, sent at
# once); hold and keepalive keep BIRD's defaults (240 s, 80 s) so a machine
# loaded for a while does not drop a session.
template bgp lab_peer {
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 5;
}
EOF
}

# An ISP and the transit: what they host (addresses on lo: origins, clients)
# goes out in BGP; what BGP chose goes into the kernel's table.
bird_stub() {
	cat <<'EOF'
protocol direct hosted {
	ipv4;
	interface "lo";
}
protocol kernel {
	ipv4 { import none; export where source = RTS_BGP; };
}
EOF
}

bird_conf_dc() { # bird_conf_dc DC INDEX
	local dc=$1 i=$2 p name
	bird_common "$(plan_router "$dc")"
	echo "# The egress aggregates, anycast from every DC: in BIRD's table only."
	echo "protocol static anycast {"
	echo "	ipv4;"
	for p in $(bgp_aggregates); do echo "	route $p blackhole;"; done
	echo "}"
	echo "# The servers' own addresses (the proxies listen there): unicast, this DC only."
	echo "protocol static servers {"
	echo "	ipv4;"
	while read -r name p; do echo "	route $p/32 blackhole;"; done < <(plan_servers "$dc")
	echo "}"
	cat <<EOF
protocol bgp isp from lab_peer {
	local 172.31.$i.2 as $FLEET_AS;
	neighbor 172.31.$i.1 as $(isp_as "$i");
	ipv4 {
		import none;
		export filter {
			if proto = "anycast" || proto = "servers" then {
				bgp_community.add(($FLEET_AS, $i));
				accept;
			}
			reject;
		};
	};
}
EOF
}

bird_conf_isp() { # bird_conf_isp INDEX
	local i=$1
	bird_common "172.31.$i.1"
	bird_stub
	cat <<EOF
protocol bgp dc from lab_peer {
	local 172.31.$i.1 as $(isp_as "$i");
	neighbor 172.31.$i.2 as $FLEET_AS;
	ipv4 { import all; export none; };
}
protocol bgp transit from lab_peer {
	local 172.30.$i.2 as $(isp_as "$i");
	neighbor 172.30.$i.1 as $TRANSIT_AS;
	ipv4 { import all; export all; };
}
EOF
}

bird_conf_inet() {
	local dc i=0
	bird_common 172.30.255.1
	bird_stub
	for dc in $(plan_dcs); do
		i=$((i + 1))
		cat <<EOF
protocol bgp $(isp_ns "$i") from lab_peer {
	local 172.30.$i.1 as $TRANSIT_AS;
	neighbor 172.30.$i.2 as $(isp_as "$i");
	ipv4 { import all; export all; };
}
EOF
	done
}

bird_confs() { # writes STATE/bird/NAME.conf for every BIRD, checked by bird -p
	local dc i=0 b
	mkdir -p "$STATE/bird"
	bird_conf_inet >"$STATE/bird/inet.conf"
	for dc in $(plan_dcs); do
		i=$((i + 1))
		bird_conf_isp "$i" >"$STATE/bird/$(isp_ns "$i").conf"
		bird_conf_dc "$dc" "$i" >"$STATE/bird/$dc.conf"
	done
	for b in $(bgp_birds | awk '{print $1}'); do
		bird -p -c "$STATE/bird/$b.conf" || { echo "bad BIRD configuration $STATE/bird/$b.conf" >&2; return 1; }
	done
}

# The best route of a BIRD to PREFIX: "DC NEXT_HOP AS_PATH..." (the DC from
# the community its announcer added), or nothing.
bgp_best() { # bgp_best BIRD PREFIX
	bgp "$1" show route "$2" primary all 2>/dev/null | awk -v fleet="$FLEET_AS" '
		/^[ \t]+via / {nh = $2}
		/BGP.as_path:/ {$1 = ""; path = substr($0, 2)}
		/BGP.community:/ {for (f = 2; f <= NF; f++) if ($f ~ "^\\(" fleet ",[0-9]+\\)$") {
			split(substr($f, 2, length($f) - 2), c, ","); dc = c[2] } }
		END {if (nh != "") print (dc == "" ? 0 : dc), nh, path}' |
		while read -r idx nh path; do
			echo "$(plan_dcs | sed -n "${idx}p") $nh $path"
		done
}

# Waits until ISP i's best route to every aggregate leads to DC (by name),
# or with !DC to one same other DC; prints that DC.
bgp_wait_isp() { # bgp_wait_isp INDEX [!]DC
	local p to first
	for _ in $(seq 300); do
		first=
		for p in $(bgp_aggregates); do
			to=$(bgp_best "$(isp_ns "$1")" "$p" | awk '{print $1}')
			first=${first:-$to}
			if [ "${2#!}" = "$2" ]; then
				[ "$to" = "$2" ] || { sleep 0.1; continue 2; }
			else
				[ -n "$to" ] && [ "$to" != "${2#!}" ] && [ "$to" = "$first" ] || { sleep 0.1; continue 2; }
			fi
		done
		echo "$first"
		return 0
	done
	return 1
}

# BIRDs by their pid files, in case their namespace went away under them
# (ip netns pids cannot find them then); only processes that are that BIRD.
bgp_stop() {
	local f pid
	for f in "$STATE"/pids/bird-*; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "bird -f -c $STATE/bird/" && kill "$pid"
	done
}

start_bgp() {
	local b ns i=0 dc p
	bird_confs || return 1
	isp_sysctls inet || return 1
	for dc in $(plan_dcs); do
		i=$((i + 1))
		isp_sysctls "$(isp_ns "$i")" || return 1
	done
	i=0
	while read -r b ns; do
		daemon "$ns" "bird-$b" bird -f -c "$STATE/bird/$b.conf" -s "$(bird_sock "$b")"
	done < <(bgp_birds)
	for dc in $(plan_dcs); do
		i=$((i + 1))
		bgp_wait_isp "$i" "$dc" >/dev/null || {
			echo "BGP did not converge: $(isp_ns "$i") has no route to every aggregate via $dc" >&2
			bgp "$(isp_ns "$i")" show protocols >&2
			return 1
		}
	done
	# The transit, and through it every ISP, knows every aggregate.
	for p in $(bgp_aggregates); do
		wait_for "[ -n \"\$(bgp_best inet $p)\" ]" || { echo "BGP: the transit has no route to $p" >&2; return 1; }
	done
}

# After a re-plan: the DCs announce the new aggregates (birdc configure).
bgp_reconfigure() {
	local dc i=0
	for dc in $(plan_dcs); do
		i=$((i + 1))
		bird_conf_dc "$dc" "$i" >"$STATE/bird/$dc.conf.next" &&
			bird -p -c "$STATE/bird/$dc.conf.next" &&
			mv "$STATE/bird/$dc.conf.next" "$STATE/bird/$dc.conf" &&
			bgp "$dc" configure >/dev/null || return 1
	done
}

# ---- management network and metrics (issue 12) ------------------------------
# Out of band, as in a real DC: a bridge in ns mgmt with a leg m0 in every
# router and server namespace.  Routers and agents serve --metrics on their
# management address (STATE/mgmt: "NAMESPACE ADDRESS"); `lab run` scrapes
# them from the mgmt namespace (10.254.255.254).
METRICS_PORT=9100
mgmt_addr() { awk -v n="$1" '$1 == n {print $2}' "$STATE/mgmt"; } # mgmt_addr NAMESPACE
metrics_flag() { echo "--metrics $(mgmt_addr "$1"):$METRICS_PORT"; } # metrics_flag NAMESPACE

mgmt_attach() { # mgmt_attach NAMESPACE ADDRESS LEG
	ip link add m0 netns "$NS-$1" type veth peer name "$3" netns "$NS-mgmt" || return 1
	x mgmt ip link set "$3" master br0 && x mgmt ip link set "$3" up &&
		x "$1" ip addr add "$2/16" dev m0 && x "$1" ip link set m0 up || return 1
	echo "$1 $2" >>"$STATE/mgmt"
}

build_mgmt() {
	local dc i=0 k ns name sdc
	: >"$STATE/mgmt"
	new_ns mgmt || return 1
	x mgmt ip link add br0 type bridge && x mgmt ip link set br0 up &&
		x mgmt ip addr add 10.254.255.254/16 dev br0 || return 1
	for dc in $(plan_dcs); do
		i=$((i + 1))
		mgmt_attach "$dc" "10.254.$i.254" "m$i-0" || return 1
		k=0
		while read -r ns name sdc; do
			[ "$sdc" = "$dc" ] || continue
			k=$((k + 1))
			mgmt_attach "$ns" "10.254.$i.$k" "m$i-$k" || return 1
		done <"$STATE/servers"
	done
}

# "NAME URL" of every metrics endpoint the lab started
metrics_endpoints() {
	local dc ns name sdc
	for dc in $(plan_dcs); do echo "router-$dc http://$(mgmt_addr "$dc"):$METRICS_PORT/metrics"; done
	while read -r ns name sdc; do
		echo "agent-$name http://$(mgmt_addr "$ns"):$METRICS_PORT/metrics"
	done <"$STATE/servers"
}

# Origins: an HTTP "who am I" that answers with the client address and port
# it saw, the same over UDP, and a TCP echo for long-lived streams.
start_origins() {
	local i=0 o
	cat >"$STATE/whoami-http" <<'EOF'
#!/bin/bash
while IFS= read -r -t 2 line; do [[ -z $line || $line == $'\r' ]] && break; done
body="$NCAT_REMOTE_ADDR:$NCAT_REMOTE_PORT"
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n' \
	$((${#body} + 1)) "$body"
EOF
	chmod +x "$STATE/whoami-http"
	for _ in $(plan_dcs); do
		i=$((i + 1))
		o=$(origin_of $i)
		daemon "$(isp_ns $i)" "origin-$i-http" ncat -lk "$o" 80 --exec "$STATE/whoami-http"
		daemon "$(isp_ns $i)" "origin-$i-udp" ncat -u -lk "$o" 5353 --sh-exec 'echo $NCAT_REMOTE_ADDR:$NCAT_REMOTE_PORT'
		daemon "$(isp_ns $i)" "origin-$i-echo" ncat -lk "$o" 7007 --exec /bin/cat
	done
	wait_for "x $(isp_ns $i) ss -ltn | grep -q ':7007'"
}

daemon() { # daemon NS NAME COMMAND...: runs in the background, logged, pid kept
	local ns=$1 name=$2; shift 2
	setsid ip netns exec "$NS-$ns" "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
	echo "$!" >"$STATE/pids/$name"
}

start_routers() {
	local dc src
	for dc in $(plan_dcs); do
		mapfile -t src < <(node_source router "$dc")
		daemon "$dc" "router-$dc" "$SU" router "${src[@]}" --dc "$dc" --iface "e-$dc" \
			--backbone-iface "b-$dc" --mode native --pin-dir "$PIN/$dc" $(metrics_flag "$dc")
		wait_for "grep -q attached $STATE/logs/router-$dc.log" ||
			{ cat "$STATE/logs/router-$dc.log" >&2; return 1; }
	done
}

start_agents() {
	local ns name dc src
	while read -r ns name dc; do
		mapfile -t src < <(node_source agent "$name")
		daemon "$ns" "agent-$name" "$SU" agent "${src[@]}" --server "$name" --iface eth0 \
			--run-dir "$STATE/run/$name" $(metrics_flag "$ns")
	done <"$STATE/servers"
	while read -r ns name dc; do
		wait_for "[ -s $STATE/run/$name/assignment ]" ||
			{ cat "$STATE/logs/agent-$name.log" >&2; return 1; }
	done <"$STATE/servers"
}

# ---- forward proxy (softunicast proxy on every server; issue 11) -----------
# Clients in the Internet namespace whose addresses the proxies geolocate
# (a CSV in RFC 8805 form), a DNS server for the lab's names that logs where
# each query came from, and a proxy on every server at ADDR:1080 whose
# resolver egresses with its DC's own "service=dns" tag-set.
PROXY_GB=100.64.44.10 PROXY_FR=100.64.33.10 PROXY_DNS=192.0.2.53
start_proxies() {
	local ns name dc i=0 addr dnstags zone=()
	x inet ip addr add "$PROXY_GB/32" dev lo && x inet ip addr add "$PROXY_FR/32" dev lo &&
		x inet ip addr add "$PROXY_DNS/32" dev lo || return 1
	printf '# client addresses of the lab, RFC 8805\n%s/32,GB,GB-ENG,London,\n%s/32,FR,FR-IDF,Paris,\n' \
		"$PROXY_GB" "$PROXY_FR" >"$STATE/clients.csv"
	cat >"$STATE/dns.py" <<'EOF'
import socket, struct, sys
zone = dict(a.split("=") for a in sys.argv[2:])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(4096)
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace")); i += 1 + q[i]
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
    name = ".".join(labels).lower()
    print("%s:%d %s %d" % (peer[0], peer[1], name, qtype), flush=True)
    ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(zone[name]) if name in zone and qtype == 1 else b""
    s.sendto(struct.pack("!HHHHHH", q[0] << 8 | q[1], 0x8180 | (0 if name in zone else 3), 1, 1 if ans else 0, 0, 0) + q[12:i + 5] + ans, peer)
EOF
	for dc in $(plan_dcs); do i=$((i + 1)); zone+=("origin-$i.lab=$(origin_of $i)"); done
	daemon inet dns python3 "$STATE/dns.py" "$PROXY_DNS" "${zone[@]}"
	while read -r ns name dc; do
		addr=$(awk -v n="$name" '$1 == "server" && $2 == n {print $4}' "$STATE/plan")
		dnstags=$(plan_demands "$dc" | grep 'service=dns' | head -1)
		cat >"$STATE/proxy-$name.conf" <<EOF
listen $addr:1080
assignment $(assignment_of "$name")
access-log $STATE/logs/proxy-$name.access
geo-csv $STATE/clients.csv
base-tags service=warp
user-tags yes
dns-server $PROXY_DNS
${dnstags:+dns-tags $dnstags}
EOF
		daemon "$ns" "proxy-$name" "$SU" proxy --config "$STATE/proxy-$name.conf"
	done <"$STATE/servers"
	while read -r ns name dc; do
		wait_for "grep -q listening $STATE/logs/proxy-$name.log" ||
			{ cat "$STATE/logs/proxy-$name.log" >&2; return 1; }
	done <"$STATE/servers"
}

# tags of the egress IP an "IP:PORT" came from, per SERVER's assignment
egress_tags() { awk -v ip="${1%:*}" '$1 == "egress" && $2 == ip {print $6}' "$(assignment_of "$2")"; }

# SOCKS5 UDP ASSOCIATE through PROXY from client SRC to the UDP origin: what it saw
udp_associate() { # udp_associate SRC PROXY ORIGIN
	x inet timeout 10 python3 -c '
import socket, struct, sys
src, proxy, origin = sys.argv[1:4]
c = socket.create_connection((proxy, 1080), timeout=5, source_address=(src, 0))
c.sendall(b"\x05\x01\x00"); c.recv(2)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((src, 0))
c.sendall(b"\x05\x03\x00\x01" + socket.inet_aton(src) + struct.pack("!H", u.getsockname()[1]))
r = c.recv(10)
u.sendto(b"\x00\x00\x00\x01" + socket.inet_aton(origin) + struct.pack("!H", 5353) + b"hello\n", (socket.inet_ntoa(r[4:8]), struct.unpack("!H", r[8:10])[0]))
u.settimeout(5)
print(u.recvfrom(65535)[0][10:].decode().strip())' "$1" "$2" "$3" 2>/dev/null
}

run_proxy_step() {
	step "8. The forward proxy: clients from GB and FR at the same DC egress from IPs tagged GB and FR"
	local dc ns name addr origin seen i t
	dc=$(for d in $(plan_dcs); do plan_demands "$d" | grep -q 'country=GB,service=warp' &&
		plan_demands "$d" | grep -q 'country=FR,service=warp' && echo "$d"; done | head -1)
	[ -n "$dc" ] || { check "a DC with both GB and FR warp egress in the fleet" 1; return; }
	read -r ns name _ < <(awk -v d="$dc" '$3 == d' "$STATE/servers" | head -1)
	addr=$(awk -v n="$name" '$1 == "server" && $2 == n {print $4}' "$STATE/plan")
	i=$(dc_index "$dc")
	origin=origin-$i.lab
	for t in "GB $PROXY_GB" "FR $PROXY_FR"; do
		seen=$(x inet curl -s -m 8 --interface "${t#* }" --socks5-hostname "$addr:1080" "http://$origin/" | tr -d '\r')
		egress_tags "$seen" "$name" | grep -q "country=${t% *}"
		check "client from ${t% *} via $name (curl --socks5-hostname): origin saw $seen {$(egress_tags "$seen" "$name")}" $?
	done
	seen=$(x inet curl -s -m 8 --interface "$PROXY_GB" -p -x "http://$addr:1080" "http://$origin/" | tr -d '\r')
	egress_tags "$seen" "$name" | grep -q "country=GB"
	check "curl -p -x (HTTP CONNECT) from GB: origin saw $seen" $?
	seen=$(x inet curl -s -m 8 --interface "$PROXY_FR" -x "http://$addr:1080" "http://$origin/" | tr -d '\r')
	egress_tags "$seen" "$name" | grep -q "country=FR"
	check "curl -x (plain absolute-URI GET) from FR: origin saw $seen" $?
	seen=$(udp_associate "$PROXY_GB" "$addr" "$(origin_of "$i")")
	egress_tags "$seen" "$name" | grep -q "country=GB"
	check "SOCKS5 UDP ASSOCIATE from GB: the UDP origin saw $seen" $?
	seen=$(awk -v o="$origin" '$2 == o {print $1}' "$STATE/logs/dns.log" | tail -1)
	egress_tags "$seen" "$name" | grep -q "service=dns"
	check "the proxy's resolver queried from its DC's dns-tagged IP: $seen {$(egress_tags "$seen" "$name")}" $?
}

# ---- the fleet on etcd (issue 9): `lab up --store etcd` ---------------------
# A control network of its own (apart from any other management network
# of the lab): ns <prefix>-etcd holds a bridge (10.253.0.1/16) and a
# 3-member etcd cluster on that address (clients on ports 2379/2389/2399,
# peers 2380/2390/2400, data in $STATE/etcd/mI); every router and server
# namespace has a veth "etcd0" on it (routers 10.253.1.I, servers from
# 10.253.2.1 on).  The plan is published to the cluster; routers and agents run
# with --store and each keeps its last good view in $STATE/store-state/NODE.
# Operators' commands (drain, move, status...) run in the etcd namespace.
# $STATE/plan stays a copy of the store's current plan (show --export), so
# the steps that read the plan work the same on both stores.
ETCD_ADDR=10.253.0.1
ETCD_MEMBERS=3
store_url() { cat "$STATE/store" 2>/dev/null; }
on_etcd() { [ -s "$STATE/store" ]; }
etcd_client_port() { echo $((2379 + 10 * $1)); }

# The plan flags of a router or agent, one per line: a plan file, or the store.
node_source() { # node_source router DC | agent SERVER
	if on_etcd; then
		printf '%s\n' --store "$(store_url)" --state-dir "$STATE/store-state/$1-$2"
	elif [ "$1" = agent ]; then
		printf '%s\n' --plan "$STATE/plan" --state-dir "$STATE/agent-state"
	else
		printf '%s\n' --plan "$STATE/plan"
	fi
}

etcd_require() {
	command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
		die "--store etcd needs etcd and etcdctl (Debian: etcd-server etcd-client)"
}

etcd_net_link() { # etcd_net_link NS ADDR: a veth from NS to the control bridge
	local n
	n=$(wc -l <"$STATE/etcd-links")
	ip link add etcd0 netns "$NS-$1" type veth peer name "e$n" netns "$NS-etcd" || return 1
	echo "$1" >>"$STATE/etcd-links"
	x etcd ip link set "e$n" master eb0 && x etcd ip link set "e$n" up &&
		x "$1" ip addr add "$2/16" dev etcd0 && x "$1" ip link set etcd0 up
}

etcd_net_build() {
	local dc i=0 ns name k=0
	new_ns etcd || return 1
	: >"$STATE/etcd-links"
	x etcd ip link add eb0 type bridge && x etcd ip link set eb0 up &&
		x etcd ip addr add "$ETCD_ADDR/16" dev eb0 || return 1
	for dc in $(plan_dcs); do
		i=$((i + 1))
		etcd_net_link "$dc" "10.253.1.$i" || return 1
	done
	while read -r ns name _; do
		etcd_net_link "$ns" "10.253.$((2 + k / 250)).$((1 + k % 250))" || return 1
		k=$((k + 1))
	done <"$STATE/servers"
}

etcd_endpoints() {
	local i eps=
	for i in $(seq 0 $((ETCD_MEMBERS - 1))); do eps="$eps${eps:+,}$ETCD_ADDR:$(etcd_client_port "$i")"; done
	echo "$eps"
}

etcd_member_start() { # etcd_member_start I new|existing
	local i=$1 k cluster=
	for k in $(seq 0 $((ETCD_MEMBERS - 1))); do
		cluster="$cluster${cluster:+,}m$k=http://$ETCD_ADDR:$(($(etcd_client_port "$k") + 1))"
	done
	mkdir -p "$STATE/etcd"
	setsid ip netns exec "$NS-etcd" etcd --name "m$i" --data-dir "$STATE/etcd/m$i" \
		--listen-client-urls "http://$ETCD_ADDR:$(etcd_client_port "$i")" \
		--advertise-client-urls "http://$ETCD_ADDR:$(etcd_client_port "$i")" \
		--listen-peer-urls "http://$ETCD_ADDR:$(($(etcd_client_port "$i") + 1))" \
		--initial-advertise-peer-urls "http://$ETCD_ADDR:$(($(etcd_client_port "$i") + 1))" \
		--initial-cluster "$cluster" --initial-cluster-state "$2" --initial-cluster-token "$NS-lab" \
		--heartbeat-interval 50 --election-timeout 500 >>"$STATE/logs/etcd-m$i.log" 2>&1 </dev/null &
	echo "$!" >"$STATE/pids/etcd-m$i"
}

etcd_member_stop() { # etcd_member_stop I: and wait until it is gone
	local pid
	pid=$(cat "$STATE/pids/etcd-m$1" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null
	rm -f "$STATE/pids/etcd-m$1"
}

etcdctl_() { x etcd env ETCDCTL_API=3 etcdctl --endpoints="$(etcd_endpoints)" --command-timeout=3s "$@"; }

etcd_healthy() { # a write commits: a quorum of members is up
	for _ in $(seq 150); do
		etcdctl_ put /lab-probe x >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# Runs an operator's command against the lab's store, in the etcd namespace.
su_store() { x etcd "$SU" "$@" --store "$(store_url)"; }

# $STATE/plan: a copy of the store's current plan.
store_pull() {
	su_store show --export "$STATE/plan.pulled" >/dev/null && mv "$STATE/plan.pulled" "$STATE/plan"
}

store_serial() { awk '$1 == "serial" {print $2; exit}' "$STATE/plan"; }

etcd_lab_up() {
	local i
	etcd_require
	etcd_net_build || return 1
	for i in $(seq 0 $((ETCD_MEMBERS - 1))); do etcd_member_start "$i" new; done
	echo "etcd://$(etcd_endpoints)/softunicast" >"$STATE/store"
	etcd_healthy || { tail -5 "$STATE/logs/etcd-m0.log" >&2; return 1; }
	# The fleet planned above, published as serial 1; the copy is the store's.
	su_store plan --fleet "$STATE/fleet.yaml" >"$STATE/logs/publish.log" 2>&1 &&
		store_pull || { cat "$STATE/logs/publish.log" >&2; return 1; }
}

# ---- lab run steps on etcd (E1-E4) ----

# Every router and agent reports SERIAL applied, state ok (softunicast status).
all_on_serial() { # all_on_serial SERIAL
	local want=$(($(plan_dcs | wc -l) + $(wc -l <"$STATE/servers")))
	su_store status --json 2>/dev/null | jq -e --argjson s "$1" --argjson n "$want" \
		'[.nodes[] | select(.serial == $s and .state == "ok")] | length == $n' >/dev/null
}

wait_all_on() { # wait_all_on SERIAL [TENTHS]: every node applies it
	for _ in $(seq "${2:-300}"); do all_on_serial "$1" && return 0; sleep 0.1; done
	return 1
}

nodes_status() { su_store status 2>&1 | sed -n '1,12p'; }

# Every slice of SERVER in its agent's assignment is in STATE (draining, active).
agent_slices_all() { # agent_slices_all SERVER STATE
	awk -v s="$2" '$1 == "egress" {n++; if ($5 == s) k++} END {exit !(n > 0 && n == k)}' "$(assignment_of "$1")"
}

run_etcd_drain_step() {
	step "E1. etcd: drain a server (its new connections stop, its live one goes on), undrain"
	local ns name dc tags seen serial
	read -r ns name dc < <(awk -v d="$DC2" '$3 == d' "$STATE/servers" | head -1)
	tags=$(plan_demands "$dc" | head -1)
	open_stream "$ns" "$name" "$tags" "$(origin_of "$(dc_index "$dc")")"
	stream_echoes before-drain
	check "$name has a live TCP session" $?
	su_store drain "$name" >"$STATE/logs/op.log" 2>&1
	check "softunicast drain $name --store: published" $? "$(cat "$STATE/logs/op.log")"
	store_pull
	serial=$(store_serial)
	wait_all_on "$serial"
	check "every router and agent applies serial $serial" $? "$(nodes_status)"
	wait_for "agent_slices_all $name draining"
	check "$name's agent holds every slice draining" $? "$(grep egress "$(assignment_of "$name")")"
	seen=$(whoami_tcp "$ns" "$name" "$tags" "$(origin_of "$(dc_index "$dc")")")
	[ -z "$seen" ]
	check "a new connection from the drained $name is refused (got '${seen}')" $?
	stream_echoes during-drain
	check "the live session continues while $name drains" $? "$(cat "$STATE/stream.out")"
	close_stream
	su_store undrain "$name" >"$STATE/logs/op.log" 2>&1
	check "softunicast undrain $name --store: published" $? "$(cat "$STATE/logs/op.log")"
	store_pull
	serial=$(store_serial)
	wait_all_on "$serial"
	check "every router and agent applies serial $serial" $? "$(nodes_status)"
	wait_for "grep -q ' active ' $(assignment_of "$name")"
	seen=$(whoami_tcp "$ns" "$name" "$tags" "$(origin_of "$(dc_index "$dc")")")
	in_slices "$seen" "$name" "$tags"
	check "undrained: $name connects again: origin saw $seen" $?
}

run_etcd_move_step() {
	step "E2. etcd: an IP moved from $DC1 to $DC2 reaches every router and agent"
	local ip serial
	ip=$(awk -v d="$DC1" '$1 == "ip" && $3 == d && $NF ~ /active/ {print $2; exit}' "$STATE/plan")
	[ -n "$ip" ] || ip=$("$SU" show --plan "$STATE/plan" --dc "$DC1" --json | jq -r '.[0].ip')
	su_store move "$ip" --to "$DC2" >"$STATE/logs/op.log" 2>&1
	check "softunicast move $ip --to $DC2 --store: published" $? "$(cat "$STATE/logs/op.log")"
	store_pull
	serial=$(store_serial)
	wait_all_on "$serial"
	check "softunicast status: every router and agent on serial $serial, none skewed" $? "$(nodes_status)"
	su_store show 2>/dev/null | sed -n '/^# operations/,$p' | grep "$ip" | grep -q "$DC2"
	check "softunicast show --store lists the move of $ip to $DC2" $? "$(su_store show 2>&1 | tail -4)"
}

run_etcd_outage_step() {
	step "E3. etcd: one member down, changes go through; all down, forwarding goes on; back, the next plan applies"
	local ns name dc tags seen serial i
	read -r ns name dc < <(awk -v d="$DC1" '$3 == d' "$STATE/servers" | sed -n 2p)
	tags=$(plan_demands "$dc" | head -1)
	etcd_member_stop 0
	say "etcd member m0 stopped"
	su_store drain "$name" >"$STATE/logs/op.log" 2>&1
	check "with 2 of 3 members: drain $name publishes" $? "$(cat "$STATE/logs/op.log")"
	store_pull
	serial=$(store_serial)
	wait_all_on "$serial"
	check "every router and agent applies serial $serial through the other members" $? "$(nodes_status)"
	for i in 1 2; do etcd_member_stop "$i"; done
	say "etcd members m1 and m2 stopped: no store at all"
	read -r ns name dc < <(awk -v d="$DC1" '$3 == d' "$STATE/servers" | head -1)
	wait_for "x $ns $SU agent status --run-dir $STATE/run/$name --json | jq -e '.store.state == \"unreachable\"'"
	check "$name's agent reports the store unreachable" $? \
		"$(x "$ns" "$SU" agent status --run-dir "$STATE/run/$name" --json 2>&1 | jq -c .store)"
	seen=$(whoami_tcp "$ns" "$name" "$tags" "$(origin_of 2)")
	in_slices "$seen" "$name" "$tags"
	check "forwarding goes on on serial $serial (across the backbone too): origin saw $seen" $?
	for i in 0 1 2; do etcd_member_start "$i" existing; done
	etcd_healthy
	check "the three members are back" $? "$(tail -3 "$STATE/logs/etcd-m0.log")"
	read -r ns name dc < <(awk -v d="$DC1" '$3 == d' "$STATE/servers" | sed -n 2p)
	su_store undrain "$name" >"$STATE/logs/op.log" 2>&1
	check "undrain $name publishes" $? "$(cat "$STATE/logs/op.log")"
	store_pull
	serial=$(store_serial)
	wait_all_on "$serial" 600
	check "every router and agent applies serial $serial once the store is back" $? "$(nodes_status)"
}

# A writer that died between writing a version's shards and its commit: the
# shards of serial N+1 (copies of the current ones, under a staging mark) are
# in the store, the version key still says N.  Nobody applies N+1; the next
# real publish cleans the debris up.
run_etcd_uncommitted_step() {
	step "E4. etcd: a version whose commit never happened is never applied"
	local cur dir next k serial ns name dc
	read -r cur dir < <(etcdctl_ get --print-value-only /softunicast/version)
	next=$(printf '%020d.00000000000000aa-r' $((cur + 1)))
	etcdctl_ put "/softunicast/staging/$next" "" >/dev/null
	# Layout 2: a record per changed shard at /softunicast/m/NAME#DIR.
	for k in $(etcdctl_ get --keys-only --prefix "/softunicast/m/server/" | grep .); do
		etcdctl_ put "${k%%#*}#$next" "$(etcdctl_ get --print-value-only "$k" | awk -v s=$((cur + 1)) '{$3 = s; print}')" >/dev/null
	done
	say "records of serial $((cur + 1)) written under /softunicast/m/*#$next, version key left at $cur"
	sleep 2
	all_on_serial "$cur"
	check "every router and agent stays on serial $cur" $? "$(nodes_status)"
	su_store status 2>/dev/null | grep -q "plan serial $cur"
	check "the store's serial is still $cur" $? "$(su_store status 2>&1 | head -2)"
	read -r ns name dc < <(head -1 "$STATE/servers")
	su_store drain "$name" >"$STATE/logs/op.log" 2>&1 && su_store undrain "$name" >>"$STATE/logs/op.log" 2>&1
	check "the next real changes publish (serials $((cur + 1)), $((cur + 2)))" $? "$(cat "$STATE/logs/op.log")"
	store_pull
	serial=$(store_serial)
	wait_all_on "$serial"
	check "every node applies the real serial $serial" $? "$(nodes_status)"
	[ -z "$(etcdctl_ get --keys-only --prefix "/softunicast/v/$next/")" ] &&
		! etcdctl_ get --keys-only --prefix /softunicast/m/ | grep -q "#$next\$"
	check "the uncommitted version's shards were garbage-collected" $?
}

run_etcd_steps() {
	on_etcd || return 0
	[ -n "$DC2" ] || { step "E. etcd"; check "needs two data centers" 1; return; }
	run_etcd_drain_step
	run_etcd_move_step
	run_etcd_outage_step
	run_etcd_uncommitted_step
}
# ---- end of the etcd block --------------------------------------------------

ensure_bpffs() {
	mkdir -p "$PIN" && mount -t bpf bpf "$PIN"
}

up_failed() {
	echo "softunicast lab: up failed: $*; cleaning up (logs were in $STATE/logs)" >&2
	cmd_down >/dev/null 2>&1
	exit 1
}

cmd_up() {
	local fleet=$DEFAULT_FLEET i=0 store=file
	while [ $# -gt 0 ]; do
		case $1 in
		--fleet) fleet=$2; shift 2 ;;
		--store) store=$2; shift 2 ;;
		*) die "up: unknown option '$1'" ;;
		esac
	done
	case $store in file) ;; etcd) etcd_require ;; *) die "up: --store file or --store etcd" ;; esac
	require
	[ -e "$STATE" ] && die "the lab is already up (softunicast lab down first)"
	mkdir -p "$STATE/logs" "$STATE/pids" "$STATE/run"
	: >"$STATE/namespaces"
	: >"$STATE/servers"
	cp "$fleet" "$STATE/fleet.yaml" || { cmd_down; die "cannot read $fleet"; }
	if ! "$SU" plan --fleet "$STATE/fleet.yaml" --out "$STATE/plan" --cost >"$STATE/plan-summary.txt"; then
		cmd_down >/dev/null 2>&1
		die "planning the fleet failed"
	fi
	"$SU" report --plan "$STATE/plan" --out "$STATE/report.html" >/dev/null ||
		{ cmd_down >/dev/null 2>&1; die "softunicast report failed"; }
	trap 'up_failed interrupted' INT TERM
	ensure_bpffs || up_failed "cannot mount a bpf filesystem"
	build_inet_and_backbone || up_failed "cannot create the Internet and backbone namespaces"
	for dc in $(plan_dcs); do
		i=$((i + 1))
		build_dc "$dc" $i || up_failed "cannot build data center $dc"
	done
	build_routes || up_failed "cannot set up routing"
	build_mgmt || up_failed "cannot build the management network"
	start_bgp || up_failed "BGP did not come up (BIRD logs: $STATE/logs/bird-*.log)"
	if [ "$store" = etcd ]; then
		etcd_lab_up || up_failed "the etcd cluster or the first publish failed"
	fi
	start_origins || up_failed "origins did not start"
	start_routers || up_failed "a router did not start"
	start_agents || up_failed "an agent did not start"
	start_proxies || up_failed "a proxy did not start"
	trap - INT TERM
	echo "lab up: $(plan_dcs | wc -l) data centers, $(wc -l <"$STATE/servers") servers (state in $STATE)"
	on_etcd && echo "plan in etcd: $(store_url) (3 members in $NS-etcd; softunicast status --store from there)"
	cmd_status_topology
	cmd_status_bgp
	echo "metrics: $(metrics_endpoints | wc -l) endpoints on the management network (lab status --json lists them)"
	echo "report of the plan: $STATE/report.html"
}

# ---- down ------------------------------------------------------------------

cmd_down() {
	local ns pids dc
	[ -d "$STATE/pids" ] && bgp_stop
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS-"); do
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -n "$pids" ] && kill $pids 2>/dev/null
	done
	# Give agents and routers their clean shutdown, then insist.
	for _ in $(seq 30); do
		pids=$(for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS-"); do ip netns pids "$ns"; done)
		[ -z "$pids" ] && break
		sleep 0.1
	done
	[ -n "${pids:-}" ] && kill -9 $pids 2>/dev/null
	for dc in $(ls "$PIN" 2>/dev/null); do
		"$SU" router detach --dc "$dc" --pin-dir "$PIN/$dc" >/dev/null 2>&1
	done
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS-"); do
		ip netns del "$ns"
	done
	mountpoint -q "$PIN" 2>/dev/null && umount "$PIN"
	rm -rf "$STATE"
	echo "lab down"
}

# ---- status ----------------------------------------------------------------

cmd_status_topology() {
	local dc i=0 ns name sdc
	printf '\n  %-10s %-16s %-26s %s\n' "DC" "ROUTER" "ISP (AS): ORIGIN" "SERVERS"
	for dc in $(plan_dcs); do
		i=$((i + 1))
		printf '  %-10s %-16s %-26s %s\n' "$dc" "$(plan_router "$dc")" "$(isp_ns $i) ($(isp_as $i)): $(origin_of $i)" \
			"$(plan_servers "$dc" | awk '{printf "%s(%s) ", $1, $2}')"
	done
	echo
}

alive() { [ -f "$STATE/pids/$1" ] && kill -0 "$(cat "$STATE/pids/$1")" 2>/dev/null; }

# "BIRD PROTOCOL STATE SINCE INFO..." per BGP session of every BIRD
bgp_sessions() {
	local b ns
	while read -r b ns; do
		bgp "$b" show protocols 2>/dev/null | awk -v b="$b" '$2 == "BGP" {
			info = ""; for (f = 6; f <= NF; f++) info = info (f > 6 ? " " : "") $f
			print b, $1, $4, $5, info}'
	done < <(bgp_birds)
}

# "BIRD PREFIX DC NEXT_HOP AS_PATH..." per egress aggregate, for the transit
# and every ISP: where the Internet sends the egress prefixes' traffic
bgp_best_all() {
	local b ns p
	while read -r b ns; do
		[ "$b" = inet ] || [ "${b#isp}" != "$b" ] || continue
		for p in $(bgp_aggregates); do
			echo "$b $p $(bgp_best "$b" "$p")"
		done
	done < <(bgp_birds)
}

cmd_status_bgp() {
	printf 'BGP sessions (birdc -s %s/NAME.ctl show protocols)\n' "$STATE/bird"
	printf '  %-8s %-10s %-6s %-14s %s\n' BIRD SESSION STATE SINCE INFO
	bgp_sessions | while read -r b p st since info; do
		printf '  %-8s %-10s %-6s %-14s %s\n' "$b" "$p" "$st" "$since" "$info"
	done
	printf '\nBest paths to the egress aggregates (where the Internet delivers replies)\n'
	printf '  %-8s %-18s %-8s %-14s %s\n' FROM PREFIX "TO DC" "NEXT HOP" "AS PATH"
	bgp_best_all | while read -r b p dc nh path; do
		printf '  %-8s %-18s %-8s %-14s %s\n' "$b" "$p" "${dc:-none}" "${nh:--}" "${path:--}"
	done
	echo
}

cmd_status_json() {
	local dc i=0 topo=() f
	for dc in $(plan_dcs); do
		i=$((i + 1))
		topo+=("$(plan_servers "$dc" | jq -Rn --arg dc "$dc" --arg r "$(plan_router "$dc")" \
			--arg o "$(origin_of $i)" --arg isp "$(isp_ns $i)" --argjson asn "$(isp_as $i)" \
			--arg m "$(mgmt_addr "$dc")" '
			{dc: $dc, router: $r, origin: $o, isp: $isp, isp_as: $asn, mgmt: $m,
			 servers: [inputs | split(" ") | {name: .[0], address: .[1]}]}')")
	done
	jq -n --argjson topology "$(printf '%s\n' "${topo[@]}" | jq -s .)" \
		--argjson sessions "$(bgp_sessions | jq -Rn '[inputs | split(" ") |
			{bird: .[0], protocol: .[1], state: .[2], since: .[3], info: (.[4:] | join(" "))}]')" \
		--argjson best "$(bgp_best_all | jq -Rn '[inputs | split(" ") |
			{from: .[0], prefix: .[1], dc: (.[2] // null), next_hop: (.[3] // null),
			 as_path: (.[4:] | map(tonumber))}]')" \
		--argjson procs "$(for f in "$STATE"/pids/*; do
			f=${f##*/}; echo "$f $(alive "$f" && echo true || echo false)"; done |
			jq -Rn '[inputs | split(" ") | {name: .[0], running: (.[1] == "true")}]')" \
		--argjson metrics "$(metrics_endpoints | jq -Rn '[inputs | split(" ") | {name: .[0], url: .[1]}]')" \
		--arg state "$STATE" --arg fleet_as "$FLEET_AS" '
		{state: $state, fleet_as: ($fleet_as | tonumber), topology: $topology,
		 bgp: {sessions: $sessions, best: $best}, processes: $procs, metrics: $metrics,
		 report: ($state + "/report.html")}'
}

cmd_status() {
	local dc ns name sdc i
	[ -d "$STATE" ] || die "the lab is not up"
	case ${1:-} in
	--json) cmd_status_json; return ;;
	"") ;;
	*) die "status: unknown option '$1'" ;;
	esac
	cmd_status_topology
	cmd_status_bgp
	for dc in $(plan_dcs); do
		printf 'router %-8s %s\n' "$dc" "$(alive "router-$dc" && echo running || echo STOPPED)"
		x "$dc" "$SU" router stats --dc "$dc" --pin-dir "$PIN/$dc" --plan "$STATE/plan" 2>&1 | sed 's/^/    /'
	done
	while read -r ns name sdc; do
		printf 'agent  %-8s %s\n' "$name" "$(alive "agent-$name" && echo running || echo STOPPED)"
	done <"$STATE/servers"
	if on_etcd; then
		for i in $(seq 0 $((ETCD_MEMBERS - 1))); do
			printf 'etcd   m%-7s %s\n' "$i" "$(alive "etcd-m$i" && echo running || echo STOPPED)"
		done
		su_store status 2>&1 | sed 's/^/    /'
	fi
}

# ---- replan ----------------------------------------------------------------

cmd_replan() {
	local fleet= pins=()
	while [ $# -gt 0 ]; do
		case $1 in
		--fleet) fleet=$2; shift 2 ;;
		--pin) pins+=(--pin "$2"); shift 2 ;;
		*) die "replan: unknown option '$1'" ;;
		esac
	done
	[ -n "$fleet" ] || die "replan: --fleet FLEET.yaml is required"
	[ -d "$STATE" ] || die "the lab is not up"
	if on_etcd; then # routers and agents watch the store; fleet and pins in one version
		cp "$fleet" "$STATE/fleet.yaml" && su_store plan --fleet "$STATE/fleet.yaml" "${pins[@]}" &&
			store_pull
		return
	fi
	"$SU" plan --fleet "$fleet" --previous "$STATE/plan" --out "$STATE/plan.next" "${pins[@]}" || return 1
	cp "$fleet" "$STATE/fleet.yaml"
	# An atomic rename: routers and agents watch the file and reload.
	mv "$STATE/plan.next" "$STATE/plan"
	bgp_reconfigure || echo "softunicast lab: BIRD kept its announcements (see $STATE/bird)" >&2
	"$SU" report --plan "$STATE/plan" --out "$STATE/report.html" >/dev/null
}

# ---- run -------------------------------------------------------------------

TAP=0 N=0 FAILED=0
declare -a STEP_NAMES STEP_RESULTS
STEP=""

step() {
	STEP=$1
	STEP_NAMES+=("$1")
	STEP_RESULTS+=(ok)
	[ $TAP = 1 ] && echo "# == $1" || printf '\n\033[1m== %s\033[0m\n' "$1"
}

check() { # check DESCRIPTION STATUS [DETAIL]
	N=$((N + 1))
	if [ "$2" = 0 ]; then
		[ $TAP = 1 ] && echo "ok $N - $1" || echo "  ok    $1"
	else
		FAILED=$((FAILED + 1))
		STEP_RESULTS[-1]=FAILED
		[ $TAP = 1 ] && echo "not ok $N - $1" || echo "  FAIL  $1"
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/        # /'
	fi
}

say() { [ $TAP = 1 ] && printf '%s\n' "$@" | sed 's/^/# /' || printf '%s\n' "$@" | sed 's/^/        /'; }

assignment_of() { echo "$STATE/run/$1/assignment"; }

# The server's active (ip lo hi) lines for a tag-set, from the plan.
slices_for() { # slices_for SERVER TAGS
	"$SU" show --plan "$STATE/plan" --server "$1" --json | jq -r --arg t "$2" '
		($t | split(",") | map(split("=") | {(.[0]): .[1]}) | add) as $want
		| .[] | select(.state == "active") | select(.tags | contains($want))
		| "\(.ip) \(.slice[0]) \(.slice[1])"'
}

in_slices() { # in_slices "IP:PORT" SERVER TAGS
	local ip=${1%:*} port=${1##*:}
	[ -n "$ip" ] && [ -n "$port" ] || return 1
	slices_for "$2" "$3" | awk -v ip="$ip" -v p="$port" '$1 == ip && p >= $2 && p <= $3 {f = 1} END {exit !f}'
}

# The request's writer stays open a while: ncat's --exec origin hangs up on a
# client's half-close before its script has answered, and on a loaded machine
# the script takes more than half a second to start (and on a very loaded
# one, seconds: hence 10 s before giving up).
whoami_tcp() { # whoami_tcp NS SERVER TAGS ORIGIN -> IP:PORT the origin saw
	local seen
	for _ in 1 2; do # a second try: on a machine at load 10+ one connect in ~60 timed out
		seen=$({ printf 'GET / HTTP/1.0\r\n\r\n'; sleep 1.5; } |
			x "$1" env SOFTUNICAST_ASSIGNMENT="$(assignment_of "$2")" \
			timeout 10 "$SU" connect --tags "$3" "$4" 80 2>>"$STATE/logs/whoami-tcp.err" |
			tail -1 | tr -d '\r')
		[ -n "$seen" ] && break
		echo "$(date +%T) $2 {$3} -> $4: nothing, retrying" >>"$STATE/logs/whoami-tcp.err"
	done
	echo "$seen"
}

# An unmodified program egressing through the LD_PRELOAD shim: curl.  A shim
# built with ASan (make asan) needs the ASan runtime loaded first; curl hangs
# in setlocale under it and ncat reads nothing, so that build uses python.
SHIM=$LIB_DIR/libsoftunicast-preload.so
ASAN_RT=$(ldd "$SHIM" 2>/dev/null | awk '/libasan/ {print $3}')
SHIM_CLIENT=$([ -n "$ASAN_RT" ] && echo python || echo curl)
whoami_shim() { # whoami_shim NS SERVER TAGS ORIGIN
	local env=(SOFTUNICAST_ASSIGNMENT="$(assignment_of "$2")" SOFTUNICAST_TAGS="$3")
	if [ -z "$ASAN_RT" ]; then
		x "$1" env "${env[@]}" LD_PRELOAD="$SHIM" curl -s -m 5 "http://$4/" 2>/dev/null | tr -d '\r'
	else
		x "$1" env "${env[@]}" LD_PRELOAD="$ASAN_RT $SHIM" ASAN_OPTIONS=detect_leaks=0 \
			timeout 10 python3 -c "import urllib.request as u, sys
print(u.urlopen('http://' + sys.argv[1] + '/', timeout=5).read().decode().strip())" "$4" \
			2>/dev/null | tail -1 | tr -d '\r'
	fi
}

whoami_udp() { # whoami_udp NS SERVER TAGS ORIGIN
	echo hello | x "$1" env SOFTUNICAST_ASSIGNMENT="$(assignment_of "$2")" \
		timeout 5 "$SU" connect --udp -w 1500 --tags "$3" "$4" 5353 2>/dev/null | head -1
}

counter() { # counter DC NAME
	x "$1" "$SU" router stats --dc "$1" --pin-dir "$PIN/$1" --json | jq -r ".counters.$2"
}

run_plan_step() {
	step "1. The plan: IPs per DC and tag-set, slices per server, cost"
	sed 's/^/  /' "$STATE/plan-summary.txt" | { [ $TAP = 1 ] && sed 's/^/#/' || cat; }
	local active per
	read -r active per < <("$SU" plan --fleet "$STATE/fleet.yaml" --previous "$STATE/plan" --check --json |
		jq -r '"\(.cost.active_ips) \(.cost.per_server_ips)"')
	[ -n "$active" ] && [ "$active" -lt "$per" ]
	check "plan uses $active IPv4 addresses where one per server per tag-set needs $per" $?
}

run_egress_step() {
	step "2. Egress with tags from every server: the origin sees the server's IP and a port in its slice"
	local ns name dc tags i origin seen
	while read -r ns name dc; do
		i=$(dc_index "$dc")
		origin=$(origin_of "$i")
		for tags in $(plan_demands "$dc"); do
			seen=$(whoami_tcp "$ns" "$name" "$tags" "$origin")
			in_slices "$seen" "$name" "$tags"
			check "$name TCP {$tags}: origin saw $seen" $? "$(slices_for "$name" "$tags")"
		done
		tags=$(plan_demands "$dc" | head -1)
		seen=$(whoami_shim "$ns" "$name" "$tags" "$origin")
		in_slices "$seen" "$name" "$tags"
		check "$name $SHIM_CLIENT via the LD_PRELOAD shim {$tags}: origin saw $seen" $?
		seen=$(whoami_udp "$ns" "$name" "$tags" "$origin")
		in_slices "$seen" "$name" "$tags"
		check "$name UDP {$tags}: origin saw $seen" $?
		x "$ns" env SOFTUNICAST_ASSIGNMENT="$(assignment_of "$name")" timeout 5 \
			"$SU" connect --ping -c 1 --tags "$tags" "$origin" >/dev/null 2>&1
		check "$name ping {$tags}: the echo reply found its way back by identifier" $?
	done <"$STATE/servers"
}

run_backbone_step() {
	step "3. Replies that land in the wrong DC cross the backbone"
	local dcs ns name seen tags fr0 fr1 bi0 bi1 other
	mapfile -t dcs < <(plan_dcs)
	[ ${#dcs[@]} -ge 2 ] || { check "needs two data centers" 1; return; }
	read -r ns name _ < <(awk -v d="${dcs[0]}" '$3 == d' "$STATE/servers" | head -1)
	other=$(origin_of 2) # origin 2's replies go to ${dcs[1]}
	tags=$(plan_demands "${dcs[0]}" | head -1)
	fr0=$(counter "${dcs[1]}" fwd_remote)
	bi0=$(counter "${dcs[0]}" backbone_in)
	seen=$(whoami_tcp "$ns" "$name" "$tags" "$other")
	fr1=$(counter "${dcs[1]}" fwd_remote)
	bi1=$(counter "${dcs[0]}" backbone_in)
	in_slices "$seen" "$name" "$tags"
	check "$name via $other (anycast-nearest to ${dcs[1]}): origin saw $seen, reply came back" $?
	[ "$fr1" -gt "$fr0" ]
	check "${dcs[1]} router forwarded to ${dcs[0]} over the backbone (fwd_remote $fr0 -> $fr1)" $?
	[ "$bi1" -gt "$bi0" ]
	check "${dcs[0]} router accepted them from the backbone (backbone_in $bi0 -> $bi1)" $?
	check "no loops: drop_loop is 0 on every router" \
		"$(for d in "${dcs[@]}"; do [ "$(counter "$d" drop_loop)" = 0 ] || echo 1; done | grep -c 1)"
}

open_stream() { # open_stream NS SERVER TAGS ORIGIN: a live TCP echo session on fd 7
	rm -f "$STATE/stream.in" "$STATE/stream.out"
	mkfifo "$STATE/stream.in"
	x "$1" env SOFTUNICAST_ASSIGNMENT="$(assignment_of "$2")" "$SU" connect --tags "$3" "$4" 7007 \
		<"$STATE/stream.in" >"$STATE/stream.out" 2>&1 &
	STREAM_PID=$!
	exec 7>"$STATE/stream.in"
}

stream_echoes() { # stream_echoes WORD: the live session echoes WORD back
	echo "$1" >&7
	wait_for "grep -qx '$1' $STATE/stream.out"
}

close_stream() { exec 7>&-; wait "$STREAM_PID" 2>/dev/null; }

# ISP i's best path to every egress aggregate, for the story: "P -> DC (via NH, AS path)"
bgp_paths() { # bgp_paths BIRD
	local p dc nh path
	for p in $(bgp_aggregates); do
		read -r dc nh path < <(bgp_best "$1" "$p")
		echo "$1: $p -> ${dc:-no route} (next hop ${nh:--}, AS path ${path:--})"
	done
}

run_withdraw_step() {
	step "4. ${DC1}'s BGP announcement withdrawn (birdc): the Internet converges on another DC, ${DC1}'s servers keep working"
	local ns name tags seen ns2 name2 isp fr0 fr1 to
	isp=$(isp_ns 1)
	read -r ns name _ < <(awk -v d="$DC1" '$3 == d' "$STATE/servers" | head -1)
	read -r ns2 name2 _ < <(awk -v d="$DC1" '$3 == d' "$STATE/servers" | sed -n 2p)
	tags=$(plan_demands "$DC1" | head -1)
	bgp_wait_isp 1 "$DC1" >/dev/null
	check "BGP: $isp (origin $(origin_of 1)) prefers $DC1 for every egress aggregate (the shorter AS path)" $? \
		"$(bgp_paths "$isp")"
	say "$(bgp_paths "$isp")"
	open_stream "$ns" "$name" "$tags" "$(origin_of 1)"
	stream_echoes before-withdrawal
	check "$name has a live TCP session to $(origin_of 1) (via $DC1)" $?
	bgp "$DC1" disable anycast >/dev/null
	say "birdc -s $(bird_sock "$DC1") disable anycast"
	to=$(bgp_wait_isp 1 "!$DC1")
	check "$isp's routes to every egress aggregate converged on ${to:-no other DC} (birdc show route)" $? \
		"$(bgp_paths "$isp")"
	say "$(bgp_paths "$isp")"
	to=${to:-$DC2}
	fr0=$(counter "$to" fwd_remote)
	stream_echoes after-withdrawal
	check "the live session keeps working after the withdrawal" $? "$(cat "$STATE/stream.out")"
	fr1=$(counter "$to" fwd_remote)
	[ "$fr1" -gt "$fr0" ]
	check "its replies now land at $to, whose router sends them over the backbone (fwd_remote $fr0 -> $fr1)" $?
	# A second try only for a loaded machine, where one whoami can outlast
	# its timeout: the live session above already proved the path.
	seen=$(whoami_tcp "$ns2" "$name2" "$tags" "$(origin_of 1)")
	in_slices "$seen" "$name2" "$tags" || seen=$(whoami_tcp "$ns2" "$name2" "$tags" "$(origin_of 1)")
	in_slices "$seen" "$name2" "$tags"
	check "a new connection from $name2 works too: origin saw $seen" $?
	bgp "$DC1" enable anycast >/dev/null
	bgp_wait_isp 1 "$DC1" >/dev/null
	check "announced again (birdc enable anycast): $isp routes to $DC1 again" $? "$(bgp_paths "$isp")"
	stream_echoes after-restore
	check "the session survives the route coming back" $?
	close_stream
}

run_block_step() {
	step "5. A server sending from a port outside its slice is blocked"
	local ns name dc tags ip lo hi other_port b0 b1
	read -r ns name dc < <(head -1 "$STATE/servers")
	tags=$(plan_demands "$dc" | head -1)
	read -r ip lo hi < <(slices_for "$name" "$tags" | head -1)
	other_port=$((hi + 100)) # the next slice: another server's, or nobody's
	b0=$(x "$ns" "$SU" agent status --run-dir "$STATE/run/$name" --json | jq .blocked_packets)
	x "$ns" timeout 3 ncat -w 2 -s "$ip" -p "$other_port" "$(origin_of 1)" 80 </dev/null >/dev/null 2>&1
	local rc=$?
	b1=$(x "$ns" "$SU" agent status --run-dir "$STATE/run/$name" --json | jq .blocked_packets)
	[ $rc != 0 ]
	check "$name cannot connect from $ip:$other_port (its slice is $lo-$hi)" $?
	[ "$b1" -gt "$b0" ]
	check "the agent counted the blocked packets ($b0 -> $b1)" $?
}

refused_syns() { # drop_unsolicited_syn summed over every DC's router
	local dc n=0
	for dc in $(plan_dcs); do n=$((n + $(counter "$dc" drop_unsolicited_syn))); done
	echo "$n"
}

decap_counter() { # decap_counter NS SERVER NAME
	x "$1" "$SU" agent status --run-dir "$STATE/run/$2" --json | jq -r ".decap.$3"
}

# Egress IPs carry return traffic only: a wildcard listener on a server, with
# a port inside the server's slice, is not reachable from the Internet.  The
# router sends the SYN on (it is for an owned IP and port); the server's
# decap finds no connection of its own for it and drops it.
run_unsolicited_step() {
	step "6. Unsolicited traffic to an egress IP is refused and counted"
	local ns name dc tags ip lo hi port pid s0 s1 out seen
	read -r ns name dc < <(head -1 "$STATE/servers")
	tags=$(plan_demands "$dc" | head -1)
	read -r ip lo hi < <(slices_for "$name" "$tags" | head -1)
	port=$((hi - 3))
	x "$ns" ncat -lk 0.0.0.0 "$port" -c 'echo wildcard' >/dev/null 2>&1 &
	pid=$!
	wait_for "x $ns ss -ltn | grep -q '0.0.0.0:$port '"
	say "$name listens on 0.0.0.0:$port (inside its slice $lo-$hi of $ip)"
	# The routers refuse a bare SYN statelessly; the server's decap would
	# refuse whatever got past them.  Either way it is counted.
	s0=$(( $(refused_syns) + $(decap_counter "$ns" "$name" drop_tcp_syn) ))
	out=$(x inet timeout 4 ncat -w 3 "$ip" "$port" </dev/null 2>&1)
	[ "$out" != wildcard ]
	check "a connection from the Internet to $ip:$port fails" $? "$out"
	s1=$(( $(refused_syns) + $(decap_counter "$ns" "$name" drop_tcp_syn) ))
	[ "$s1" -gt "$s0" ]
	check "the SYNs were refused and counted (routers' drop_unsolicited_syn + $name's drop_tcp_syn: $s0 -> $s1)" $?
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	seen=$(whoami_tcp "$ns" "$name" "$tags" "$(origin_of 1)")
	in_slices "$seen" "$name" "$tags"
	check "return traffic of $name's own connections still flows: origin saw $seen" $?
}

run_geofeed_step() {
	step "7. The geofeed of the egress space (RFC 8805)"
	local feed
	feed=$("$SU" geofeed --plan "$STATE/plan")
	say "$feed"
	[ "$(grep -vc '^#' <<<"$feed")" -gt 0 ]
	check "geofeed lists the egress IPs in use" $?
}

# ---- live moves (issue 10): steps 11 and 12 ----------------------------------
# The lab's fleet with a 20 s drain; EDIT is an awk program run on it.
move_fleet() { # move_fleet OUT AWK-PROGRAM
	sed 's/^drain: .*/drain: 20s/' "$STATE/fleet.yaml" | awk "$2" >"$1"
}

# Doubles DC's demand for tag-set TAGS (a line "- {TAGS}" in its block).
double_demand_awk() { # double_demand_awk DC TAGS
	printf '%s' '/^  [a-z0-9-]+:$/ { dc = $1; sub(":", "", dc) }
		dc == "'"$1"'" && $0 ~ /^      - \{'"$2"'\}$/ { sub(/\}$/, ", slices: 2}") } { print }'
}

plan_serial() { awk '$1 == "serial" {print $2; exit}' "$STATE/plan"; }
applied_serial() { # applied_serial SERVER: the plan serial its agent published
	awk '$1 == "serial" {print $2; exit}' "$(assignment_of "$1")"
}
wait_applied() { # wait_applied: every agent published the lab's current plan
	local want ns name
	want=$(plan_serial)
	while read -r ns name _; do
		wait_for "[ \"\$(applied_serial $name)\" = $want ]" || return 1
	done <"$STATE/servers"
}

# A connected UDP flow on fd 8: one datagram per line, the origin answers.
open_udp() { # open_udp NS SERVER TAGS ORIGIN
	rm -f "$STATE/udp.in" "$STATE/udp.out"
	mkfifo "$STATE/udp.in"
	x "$1" env SOFTUNICAST_ASSIGNMENT="$(assignment_of "$2")" "$SU" connect --udp -w 3000 --tags "$3" \
		"$4" 5353 <"$STATE/udp.in" >"$STATE/udp.out" 2>&1 &
	UDP_PID=$!
	exec 8>"$STATE/udp.in"
}
udp_answers() { # udp_answers: one datagram on the flow is answered within 1 s
	local n
	n=$(wc -l <"$STATE/udp.out")
	echo ping >&8
	for _ in $(seq 10); do [ "$(wc -l <"$STATE/udp.out")" -gt "$n" ] && return 0; sleep 0.1; done
	return 1
}
close_udp() { exec 8>&-; wait "$UDP_PID" 2>/dev/null; }

# Each of N words, written 0.1 s apart, comes back within 1 s: no gap.
stream_steady() { # stream_steady PREFIX N
	local i
	for i in $(seq "$2"); do
		echo "$1-$i" >&7
		for _ in $(seq 10); do grep -qx "$1-$i" "$STATE/stream.out" && break; sleep 0.1; done
		grep -qx "$1-$i" "$STATE/stream.out" || return 1
	done
}

sum_decap() { # sum_decap DC NAME: a decap counter summed over DC's servers
	local ns name total=0 v
	while read -r ns name _; do
		v=$(decap_counter "$ns" "$name" "$1" 2>/dev/null)
		total=$((total + ${v:-0}))
	done < <(awk -v d="$2" '$3 == d' "$STATE/servers")
	echo "$total"
}

# Only IP's lines of SERVER's assignment: a connection that must leave from IP
# (a slice's "handed" line goes with its egress line).
assignment_only() { # assignment_only SERVER IP -> file
	awk -v ip="$2" '($1 != "egress" && $1 != "handed") || $2 == ip' "$(assignment_of "$1")" >"$STATE/assignment.$2"
	echo "$STATE/assignment.$2"
}

origin_ns() { # origin_ns IP: the ISP namespace the origin with that address lives in
	local i=0 dc
	for dc in $(plan_dcs); do
		i=$((i + 1))
		[ "$(origin_of $i)" = "$1" ] && { isp_ns $i; return; }
	done
}

# A late TCP segment of an old flow, sent by the origin after a move's
# deadline (the flow's own packets stopped when its owner let go of the IP).
late_segment() { # late_segment FROM-IP:PORT TO-IP:PORT
	x "$(origin_ns "${1%:*}")" python3 - "$1" "$2" <<'PY'
import socket, struct, sys
(s, sp), (d, dp) = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[1:3]]
def csum(b):
    b += b"\0" * (len(b) % 2)
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t & 0xFFFF) + (t >> 16)
    return ~(t + (t >> 16)) & 0xFFFF
tcp = struct.pack("!HHIIBBHHH", sp, dp, 1, 1, 5 << 4, 0x10, 65535, 0, 0) + b"late"
ph = socket.inet_aton(s) + socket.inet_aton(d) + struct.pack("!BBH", 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
r.bind((s, 0))
for _ in range(3):
    r.sendto(tcp, (d, 0))
PY
}

run_move_step() {
	step "11. An egress IP moves from $DC2 to $DC1 under a live stream (second hop)"
	local ns name xip fleet seen stream sent0 recv0 fwd0 exp0 exp1 sent1 recv1 fwd1 deadline ns1 name1 only
	local p0 p1 r0 r1 rc
	read -r ns name _ < <(awk -v d="$DC2" '$3 == d' "$STATE/servers" | head -1)
	read -r ns1 name1 _ < <(awk -v d="$DC1" '$3 == d' "$STATE/servers" | head -1)
	xip=$(awk -v d="$DC2" '$1 == "ip" && $3 == d && $6 == "service=cdn" && $7 == "active" {print $2; exit}' "$STATE/plan")
	open_stream "$ns" "$name" "service=cdn" "$(origin_of 2)"
	stream_echoes before-move
	seen=$(x "$ns" ss -Htn state established "dst $(origin_of 2):7007" | awk '{print $3}')
	check "$name has a live TCP stream from $seen (X = $xip, $DC2) to $(origin_of 2)" \
		"$([ "${seen%:*}" = "$xip" ]; echo $?)"
	stream=$seen
	open_udp "$ns" "$name" "service=cdn" "$(origin_of 2)"
	udp_answers
	check "$name has a connected UDP flow from $xip" $?
	# An echo flow too: ping sockets have no BPF look-up, so the clock and
	# the library decide whose an echo reply is (docs/operator.md).
	cp "$(assignment_only "$name" "$xip")" "$STATE/assignment.ping"
	x "$ns" env SOFTUNICAST_ASSIGNMENT="$STATE/assignment.ping" timeout 40 "$SU" connect --ping -c 400 \
		-i 0.1 -w 500 --tags service=cdn "$(origin_of 2)" >"$STATE/ping.out" 2>&1 &
	PING_PID=$!
	wait_for "grep -q '^reply from' $STATE/ping.out"
	check "$name pings $(origin_of 2) from $xip: replies by identifier" $? "$(tail -3 "$STATE/ping.out")"
	open_big_udp "$ns" "$(origin_of 2)"
	echo hello >&9
	wait_for "grep -qx hello $STATE/bigudp.out"
	check "$name has a UDP flow from $xip to a UDP echo at $(origin_of 2):5354" $?
	sent0=$(sum_decap second_hop_sent "$DC1") recv0=$(decap_counter "$ns" "$name" second_hop_received)
	fwd0=$(counter "$DC2" second_hop_forwarded)
	fleet=$STATE/fleet.move.yaml
	move_fleet "$fleet" "$(double_demand_awk "$DC1" "service: cdn")"
	cmd_replan --fleet "$fleet" --pin "$xip=$DC1" >/dev/null
	check "softunicast plan --pin $xip=$DC1: serial $(plan_serial), $xip is $DC1's now" \
		"$(grep -q "^ip $xip $DC1 .* active from $DC2 " "$STATE/plan"; echo $?)"
	say "$("$SU" who "$xip:$(echo "$seen" | cut -d: -f2)" --plan "$STATE/plan" | tail -1 | sed 's/^ *//')"
	stream_steady during-move 30 && wait_applied && stream_steady after-move 10
	check "the stream keeps flowing through the move: 40 lines, each back within 1 s" $? \
		"$(tail -3 "$STATE/stream.out")"
	udp_answers
	check "the connected UDP flow keeps its answers" $?
	only=$(assignment_only "$name1" "$xip")
	x "$ns1" env SOFTUNICAST_ASSIGNMENT="$only" "$SU" connect --ping -c 1 --tags service=cdn "$(origin_of 1)" \
		>"$STATE/ping1.out" 2>&1
	rc=$?
	check "$name1 takes no ping identifier in its slices of $xip before the deadline (they are handed): exit $rc" \
		"$([ $rc = 1 ] && grep -q 'exhausted' "$STATE/ping1.out"; echo $?)" "$(cat "$STATE/ping1.out")"
	deadline=$(awk -v ip="$xip" '$1 == "ip" && $2 == ip {print $NF}' "$STATE/plan")
	seen=$(x "$ns1" "$SU" agent status --run-dir "$STATE/run/$name1" --json |
		jq -r --arg ip "$xip" '[.slices[] | select(.ip == $ip) | .handed_until] | unique | map(tostring) | join(",")')
	check "$name1's agent status shows its slices of $xip handed until $seen (the move's deadline)" \
		"$([ "$seen" = "$deadline" ]; echo $?)"
	seen=$({ printf 'GET / HTTP/1.0\r\n\r\n'; sleep 1.5; } | x "$ns1" env SOFTUNICAST_ASSIGNMENT="$only" \
		timeout 5 "$SU" connect --tags service=cdn "$(origin_of 1)" 80 2>/dev/null | tail -1 | tr -d '\r')
	check "a new connection from $name1 on $xip works at once: origin saw $seen" \
		"$([ "${seen%:*}" = "$xip" ]; echo $?)"
	p0=$(grep -c '^reply from' "$STATE/ping.out") r0=$(decap_counter "$ns" "$name" second_hop_received)
	sleep 2
	p1=$(grep -c '^reply from' "$STATE/ping.out") r1=$(decap_counter "$ns" "$name" second_hop_received)
	check "$name's ping keeps its replies after the move ($((p1 - p0)) in 2 s), each a second hop to it (second_hop_received $r0 -> $r1)" \
		"$([ $((p1 - p0)) -ge 10 ] && [ $((r1 - r0)) -ge $((p1 - p0 - 2)) ]; echo $?)" "$(tail -3 "$STATE/ping.out")"
	# Full-size segments: the origin's 1472-byte packets (after the routers'
	# own PMTU answers) fill the server uplink once in GUE, so their second
	# hop (8 bytes more) does not fit: the new owner answers the origin with
	# fragmentation needed, and the origin's smaller segments go through.
	p0=$(sum_decap second_hop_frag_needed "$DC1")
	printf 'big-%04000d\n' 0 >"$STATE/big.line"
	cat "$STATE/big.line" >&7
	wait_for "grep -qxF -f $STATE/big.line $STATE/stream.out"
	rc=$?
	p1=$(sum_decap second_hop_frag_needed "$DC1")
	check "a 4 KB line of the stream comes back whole through the second hop ($DC1's second_hop_frag_needed $p0 -> $p1: full-size segments did not fit with the mark, the origin shrank them)" \
		"$([ $rc = 0 ] && [ "$p1" -gt "$p0" ]; echo $?)" "$(tail -c 300 "$STATE/stream.out")"
	# The origin's PMTU to X is now what a second hop fits: a 3000-byte UDP
	# answer leaves it in fragments, and the later ones (no port) must
	# follow their first fragment on both hops.
	head -c 3000 /dev/zero | tr '\0' u >&9
	wait_for "[ \$(wc -c <$STATE/bigudp.out) -ge 3006 ]"
	rc=$?
	check "a 3000-byte UDP answer, fragmented by the origin, comes back whole through the second hop ($(wc -c <"$STATE/bigudp.out") bytes)" $rc
	seen=$(x "$(origin_ns "$(origin_of 2)")" ss -Htn state established "sport = :7007" | awk '{print $4}' | grep -c "^$xip:")
	check "the origin still sees the stream from $xip" "$([ "$seen" -ge 1 ]; echo $?)"
	sent1=$(sum_decap second_hop_sent "$DC1") recv1=$(decap_counter "$ns" "$name" second_hop_received)
	fwd1=$(counter "$DC2" second_hop_forwarded)
	check "second hops counted: $DC1 servers sent $sent0 -> $sent1, $DC2 router forwarded $fwd0 -> $fwd1, $name received $recv0 -> $recv1" \
		"$([ "$sent1" -gt "$sent0" ] && [ "$fwd1" -gt "$fwd0" ] && [ "$recv1" -gt "$recv0" ]; echo $?)"
	deadline=$(awk -v ip="$xip" '$1 == "ip" && $2 == ip {print $NF}' "$STATE/plan")
	say "waiting for the move's deadline ($((deadline - $(date +%s))) s)"
	while [ "$(date +%s)" -le "$deadline" ]; do sleep 1; done
	sleep 2
	exp0=$(sum_decap second_hop_refused_expired "$DC1") sent0=$(sum_decap second_hop_sent "$DC1")
	echo after-deadline >&7
	sleep 2
	! grep -qx after-deadline "$STATE/stream.out"
	check "after the deadline the old flow is over: $name let go of $xip" $?
	late_segment "$(origin_of 2):7007" "$stream"
	sleep 1
	exp1=$(sum_decap second_hop_refused_expired "$DC1") sent1=$(sum_decap second_hop_sent "$DC1")
	check "a late segment of it is refused and counted: $DC1's second_hop_refused_expired $exp0 -> $exp1, second_hop_sent stays $sent1" \
		"$([ "$exp1" -gt "$exp0" ] && [ "$sent1" = "$sent0" ]; echo $?)"
	wait_for "[ \$(date +%s) -gt $((deadline + 6)) ]" || sleep 5
	only=$(assignment_only "$name1" "$xip")
	x "$ns1" env SOFTUNICAST_ASSIGNMENT="$only" "$SU" connect --ping -c 2 --tags service=cdn "$(origin_of 1)" \
		>"$STATE/ping1.out" 2>&1
	check "after the deadline and the echo quiet time $name1 pings from $xip: replies by identifier" $? \
		"$(cat "$STATE/ping1.out")"
	kill "$STREAM_PID" "$UDP_PID" 2>/dev/null
	close_stream
	close_udp
	exec 9>&-
	wait "$PING_PID" "$BIGUDP_PID" "$BIGECHO_PID" 2>/dev/null
}

# A UDP echo at ORIGIN:5354 (quits after 15 s without a datagram), and a
# connected UDP flow to it on fd 9 from X (the ping's assignment: X only).
open_big_udp() { # open_big_udp NS ORIGIN
	x "$(origin_ns "$2")" python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5354))
s.settimeout(15)
try:
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(d, a)
except socket.timeout:
    pass' "$2" &
	BIGECHO_PID=$!
	rm -f "$STATE/bigudp.in" "$STATE/bigudp.out"
	mkfifo "$STATE/bigudp.in"
	wait_for "x $(origin_ns "$2") ss -lun | grep -q ':5354'"
	x "$1" env SOFTUNICAST_ASSIGNMENT="$STATE/assignment.ping" "$SU" connect --udp -w 1000 --tags service=cdn \
		"$2" 5354 <"$STATE/bigudp.in" >"$STATE/bigudp.out" 2>&1 &
	BIGUDP_PID=$!
	exec 9>"$STATE/bigudp.in"
}

run_handover_step() {
	step "12. A server replaced: its slice goes to another server of $DC2 under a live stream"
	local ns name ns1 name1 tags xip lo fleet seen stream sent0 recv0 sent1 recv1 exp0 exp1 deadline only
	read -r ns name _ < <(awk -v d="$DC2" '$3 == d' "$STATE/servers" | tail -1)
	read -r ns1 name1 _ < <(awk -v d="$DC2" '$3 == d' "$STATE/servers" | head -1)
	tags=$(plan_demands "$DC2" | grep 'country=GB,service=warp')
	open_stream "$ns" "$name" "$tags" "$(origin_of 2)"
	stream_echoes before-handover
	stream=$(x "$ns" ss -Htn state established "dst $(origin_of 2):7007" | awk '{print $3}')
	xip=${stream%:*} lo=$(( ${stream##*:} / 2048 * 2048 ))
	check "$name has a live TCP stream from $stream (slice $lo of $xip)" \
		"$([ -n "$stream" ]; echo $?)"
	sent0=$(decap_counter "$ns1" "$name1" second_hop_sent) recv0=$(decap_counter "$ns" "$name" second_hop_received)
	fleet=$STATE/fleet.handover.yaml
	move_fleet "$fleet" "\$0 !~ /^      $name: / { print }" && cp "$fleet" "$fleet.1" &&
		awk "$(double_demand_awk "$DC2" "service: warp, country: GB")" "$fleet.1" >"$fleet"
	cmd_replan --fleet "$fleet" >/dev/null
	check "$name leaves the fleet, $DC2 needs more GB slices: $name1 takes slice $lo, $name its previous owner" \
		"$(grep -q "^slot $xip $lo $name1 .* active from $name " "$STATE/plan"; echo $?)"
	stream_steady during-handover 30 && wait_applied && stream_steady after-handover 10
	check "the stream keeps flowing through the hand-over: 40 lines, each back within 1 s" $? \
		"$(tail -3 "$STATE/stream.out")"
	only=$STATE/assignment.$xip.$lo
	awk -v ip="$xip" -v lo="$lo" '($1 != "egress" && $1 != "handed") || ($2 == ip && $3 == lo)' \
		"$(assignment_of "$name1")" >"$only"
	seen=$({ printf 'GET / HTTP/1.0\r\n\r\n'; sleep 1.5; } | x "$ns1" env SOFTUNICAST_ASSIGNMENT="$only" \
		timeout 5 "$SU" connect --tags "$tags" "$(origin_of 2)" 80 2>/dev/null | tail -1 | tr -d '\r')
	check "a new connection from $name1 in that slice works at once: origin saw $seen" \
		"$([ "${seen%:*}" = "$xip" ] && [ $(( ${seen##*:} / 2048 * 2048 )) = "$lo" ]; echo $?)"
	sent1=$(decap_counter "$ns1" "$name1" second_hop_sent) recv1=$(decap_counter "$ns" "$name" second_hop_received)
	check "second hops inside $DC2: $name1 sent $sent0 -> $sent1, $name received $recv0 -> $recv1" \
		"$([ "$sent1" -gt "$sent0" ] && [ "$recv1" -gt "$recv0" ]; echo $?)"
	deadline=$(awk -v ip="$xip" -v lo="$lo" '$1 == "slot" && $2 == ip && $3 == lo {print $NF}' "$STATE/plan")
	say "waiting for the hand-over's deadline ($((deadline - $(date +%s))) s)"
	while [ "$(date +%s)" -le "$deadline" ]; do sleep 1; done
	sleep 2
	exp0=$(decap_counter "$ns1" "$name1" second_hop_refused_expired)
	late_segment "$(origin_of 2):7007" "$stream"
	sleep 1
	exp1=$(decap_counter "$ns1" "$name1" second_hop_refused_expired)
	check "after the deadline a segment of the old flow is refused and counted ($name1's second_hop_refused_expired $exp0 -> $exp1)" \
		"$([ "$exp1" -gt "$exp0" ]; echo $?)"
	kill "$STREAM_PID" 2>/dev/null
	close_stream
}

# A step that cannot run here: TAP's SKIP, or a line saying why.
skip() { # skip DESCRIPTION REASON
	N=$((N + 1))
	[ $TAP = 1 ] && echo "ok $N - $1 # SKIP $2" || echo "  skip  $1: $2"
}

metric_value() { awk -v m="$2" '$1 == m {print $2}' "$1"; } # metric_value FILE SERIES

run_metrics_step() {
	step "9. Metrics: every router and agent serves Prometheus metrics on the management network"
	local name url f role serial out
	serial=$(awk '$1 == "serial" {print $2; exit}' "$STATE/plan")
	mkdir -p "$STATE/metrics"
	while read -r name url; do
		f=$STATE/metrics/$name.prom
		role=${name%%-*}
		x mgmt curl -sf -m 5 "$url" >"$f"
		check "$name: scraped $url ($(grep -c '^softunicast_' "$f") samples)" $?
		if command -v promtool >/dev/null; then
			out=$(promtool check metrics <"$f" 2>&1)
			check "$name: promtool check metrics passes" $? "$out"
		else
			skip "$name: promtool check metrics" "promtool is not installed (Debian: prometheus)"
		fi
		[ "$(metric_value "$f" "softunicast_${role}_store_up")" = 1 ] &&
			[ "$(metric_value "$f" "softunicast_${role}_plan_serial")" = "$serial" ]
		check "$name: store up, plan serial $serial" $? \
			"$(grep -E "^softunicast_${role}_(store|plan_serial)" "$f")"
	done < <(metrics_endpoints)
}

run_report_step() {
	step "10. The report of the plan: the egress space as a picture"
	local slots
	"$SU" report --plan "$STATE/plan" --out "$STATE/report.html" >/dev/null 2>&1
	slots=$(grep -o 'class="slot"' "$STATE/report.html" 2>/dev/null | wc -l)
	[ "$slots" -gt 0 ]
	check "softunicast report drew $slots slots of the plan" $?
	say "report: $STATE/report.html (open it in a browser)"
}

summary() {
	local i
	if [ $TAP = 1 ]; then
		echo "1..$N"
	else
		printf '\n\033[1m== Summary\033[0m\n'
		for i in "${!STEP_NAMES[@]}"; do
			printf '  %-8s %s\n' "${STEP_RESULTS[i]}" "${STEP_NAMES[i]}"
		done
		printf '\n%d checks, %d failed\n' "$N" "$FAILED"
		printf 'report of the plan: %s\n' "$STATE/report.html"
	fi
	[ $FAILED = 0 ]
}

cmd_run() {
	local only=
	while [ $# -gt 0 ]; do
		case $1 in
		--tap) TAP=1; shift ;;
		--only) only=$2; shift 2 ;;
		*) die "run: unknown option '$1'" ;;
		esac
	done
	[ -d "$STATE" ] || die "the lab is not up (softunicast lab up)"
	mapfile -t _dcs < <(plan_dcs)
	DC1=${_dcs[0]} DC2=${_dcs[1]:-}
	case $only in
	"") ;;
	move) [ -n "$DC2" ] || die "run --only move needs two DCs"; run_move_step; run_handover_step; summary; return ;;
	*) die "run --only: unknown step '$only' (move)" ;;
	esac
	run_plan_step
	run_egress_step
	run_backbone_step
	[ -n "$DC2" ] && run_withdraw_step
	run_block_step
	run_unsolicited_step
	run_geofeed_step
	run_proxy_step
	run_etcd_steps
	run_metrics_step
	run_report_step
	[ -n "$DC2" ] && run_move_step && run_handover_step
	summary
}

case ${1:-} in
up) shift; cmd_up "$@" ;;
run) shift; cmd_run "$@" ;;
replan) shift; cmd_replan "$@" ;;
status) shift; cmd_status "$@" ;;
down) cmd_down ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
