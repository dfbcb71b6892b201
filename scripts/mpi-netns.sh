#!/usr/bin/env bash
# More than one host on one machine: network namespaces joined through a bridge by veth links
# shaped with tc, and mpirun starting ranks in them through an rsh agent (MPI over TCP).
#
#   scripts/mpi-netns.sh up [--hosts N] [--rate 1gbit] [--delay 200us] [--burst 32kb]
#   scripts/mpi-netns.sh run [--ranks-per-host K] -- polychip ARGS...   (e.g. .build/release/polychip conform --mesh mpi)
#   scripts/mpi-netns.sh ping                                           (one-way latency and bandwidth, Open MPI ping-pong)
#   scripts/mpi-netns.sh down
#
# Layout: host i is namespace pc-h$i. Its data link eth0 (10.77.0.$((i+1))/24) is one end of a
# veth pair whose other end is a port of bridge br0 in namespace pc-sw; the rate limit (and the
# delay, where the kernel has netem) applies on both ends' egress, i.e. in both directions of
# every host's link. mpirun and its daemons talk over a separate management link to the root
# namespace (10.78.$i.2), so the shaped links carry only MPI's messages (btl tcp on 10.77.0.0/24).
# Needs root, iproute2 (ip, tc) and Open MPI. State (hostfile, rsh agent) lives in $STATE.
set -euo pipefail

STATE=${POLYCHIP_NETNS_DIR:-/tmp/polychip-netns}
cmd=${1:-}
shift || true

die() { echo "mpi-netns: $*" >&2; exit 1; }
hosts_up() { cat "$STATE/hosts.count" 2>/dev/null || echo 0; }

shape() {  # shape NETNS DEV RATE DELAY BURST
    local ns=$1 dev=$2 rate=$3 delay=$4 burst=$5
    if [ -n "$delay" ] && ip netns exec "$ns" tc qdisc add dev "$dev" root netem delay "$delay" rate "$rate" limit 100000 2>/dev/null; then
        echo "netem"
        return
    fi
    # tbf: a bucket of BURST bytes (default 32 KiB, about 260 us at 1 Gbit/s) passes unshaped
    # after an idle period — a message no larger goes at the veth's own speed; a queue of at most
    # 10 ms, about a switch port's buffer.
    ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 10ms
    echo "tbf"
}

up() {
    local n=2 rate=1gbit delay=200us burst=32kb
    while [ $# -gt 0 ]; do
        case $1 in
            --hosts) n=$2; shift 2 ;;
            --rate) rate=$2; shift 2 ;;
            --delay) delay=$2; shift 2 ;;
            --burst) burst=$2; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] && [ "$n" -le 64 ] || die "--hosts must be 2…64"
    [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
    [ "$(hosts_up)" -eq 0 ] || die "already up ($(hosts_up) hosts); run down first"
    mkdir -p "$STATE"
    ip netns add pc-sw || die "ip netns add failed: network namespaces are not permitted here"
    ip -n pc-sw link add br0 type bridge
    ip -n pc-sw link set br0 up
    sysctl -qw net.ipv4.ip_forward=1
    local how=""
    : > "$STATE/hosts"
    for i in $(seq 0 $((n - 1))); do
        local ns=pc-h$i
        ip netns add $ns
        ip -n $ns link set lo up
        # Message-passing traffic idles between collectives: keep TCP's window across idle periods.
        ip netns exec $ns sysctl -qw net.ipv4.tcp_slow_start_after_idle=0
        # Management link to the root namespace (mpirun <-> orted), unshaped.
        ip link add pcm$i type veth peer name mgmt netns $ns
        ip addr add 10.78.$i.1/24 dev pcm$i
        ip link set pcm$i up
        ip -n $ns addr add 10.78.$i.2/24 dev mgmt
        ip -n $ns link set mgmt up
        ip -n $ns route add 10.78.0.0/16 via 10.78.$i.1
        # Data link into the bridge, shaped in both directions.
        ip link add eth0 netns $ns type veth peer name p$i netns pc-sw
        ip -n $ns addr add 10.77.0.$((i + 1))/24 dev eth0
        ip -n $ns link set eth0 up
        ip -n pc-sw link set p$i master br0
        ip -n pc-sw link set p$i up
        how=$(shape $ns eth0 "$rate" "$delay" "$burst")
        shape pc-sw p$i "$rate" "$delay" "$burst" >/dev/null
        echo "10.78.$i.2 slots=64" >> "$STATE/hosts"
    done
    # The rsh agent: "AGENT HOST CMD..." runs CMD in the namespace that owns HOST.
    cat > "$STATE/rsh" <<'EOF'
#!/bin/sh
host=$1; shift
case $host in 10.78.*.2) i=${host#10.78.}; i=${i%.2} ;; *) echo "mpi-netns rsh: unknown host $host" >&2; exit 255 ;; esac
# Each host has its own session directory: the namespaces share /tmp.
dir=$(dirname "$0")/tmp-h$i
mkdir -p "$dir"
# A host name of its own too (a UTS namespace), as separate machines have: pc-h$i.
exec ip netns exec "pc-h$i" unshare --uts /bin/sh -c "hostname pc-h$i && exec env OMPI_MCA_orte_tmpdir_base='$dir' /bin/sh -c \"\$0\"" "$*"
EOF
    chmod +x "$STATE/rsh"
    echo "$n" > "$STATE/hosts.count"
    echo "$rate" > "$STATE/rate"
    if [ "$how" = netem ]; then
        echo "$delay" > "$STATE/delay"
        echo "mpi-netns: $n hosts, links shaped with netem: $rate and $delay per link, each way (host to host crosses two links: 2 x $delay one way)"
    else
        echo "none (no netem in this kernel)" > "$STATE/delay"
        echo "mpi-netns: $n hosts, links rate-shaped with tbf at $rate each way (burst $burst)."
        echo "mpi-netns: no added delay: 'tc qdisc add … netem' failed (the kernel has no sch_netem); the latency is the veth path's own."
    fi
}

run() {
    local k=1
    while [ $# -gt 0 ]; do
        case $1 in
            --ranks-per-host) k=$2; shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    local n
    n=$(hosts_up)
    [ "$n" -ge 2 ] || die "not up; run: $0 up"
    [[ $k =~ ^[0-9]+$ ]] && [ "$k" -ge 1 ] && [ "$k" -le 64 ] || die "--ranks-per-host must be 1…64"
    [ $# -gt 0 ] || die "give the command to run after --"
    local bin=$1; shift
    bin=$(readlink -f "$bin")
    # --bind-to none: each daemon believes it has a node to itself and would pin every host's
    # first rank to the same core. mpi_yield_when_idle: waiting ranks yield the CPU, which the
    # kernel needs to move the packets (the hosts share the machine's cores). btl_tcp_links 2:
    # with one TCP connection per pair, Open MPI's TCP transport here sometimes carried the two
    # directions of an exchange one after the other (half the bandwidth); two do not.
    exec mpirun --allow-run-as-root --enable-recovery --bind-to none --hostfile "$STATE/hosts" -np $((n * k)) --map-by ppr:$k:node \
        --mca plm_rsh_agent "$STATE/rsh" --mca oob_tcp_if_include 10.78.0.0/16 \
        --mca btl tcp,vader,self --mca btl_tcp_if_include 10.77.0.0/24 --mca btl_tcp_links 2 --mca mpi_yield_when_idle 1 \
        -x PATH \
        "$bin" "$@"
}

ping_pong() {
    local src dir
    dir=$(mktemp -d)
    src="$dir/pp.c"
    cat > "$src" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int c, char **v) {
    MPI_Init(&c, &v); int r; MPI_Comm_rank(MPI_COMM_WORLD, &r);
    size_t sizes[] = {8, 4096, 65536, 1 << 20, 16 << 20}; char *buf = malloc(16 << 20);
    for (int s = 0; s < 5; s++) {
        int it = sizes[s] <= 65536 ? 200 : 10; MPI_Barrier(MPI_COMM_WORLD); double t0 = MPI_Wtime();
        for (int i = 0; i < it; i++) {
            if (r == 0) { MPI_Send(buf, sizes[s], MPI_BYTE, 1, 0, MPI_COMM_WORLD); MPI_Recv(buf, sizes[s], MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE); }
            else if (r == 1) { MPI_Recv(buf, sizes[s], MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE); MPI_Send(buf, sizes[s], MPI_BYTE, 0, 0, MPI_COMM_WORLD); }
        }
        double t = (MPI_Wtime() - t0) / it / 2;
        if (r == 0) printf("%9zu bytes: one-way %9.1f us, %8.1f MB/s\n", sizes[s], t * 1e6, sizes[s] / t / 1e6);
    }
    MPI_Finalize(); return 0;
}
EOF
    mpicc -O2 "$src" -o "$dir/pp"
    run -- "$dir/pp"
}

down() {
    local n
    n=$(hosts_up)
    for i in $(seq 0 $((n > 0 ? n - 1 : 63))); do
        ip netns del pc-h$i 2>/dev/null || true
        ip link del pcm$i 2>/dev/null || true
    done
    ip netns del pc-sw 2>/dev/null || true
    rm -rf "$STATE"
    echo "mpi-netns: down"
}

case $cmd in
    up) up "$@" ;;
    run) run "$@" ;;
    ping) ping_pong ;;
    down) down ;;
    *) die "usage: $0 up [--hosts N] [--rate R] [--delay D] [--burst B] | run [--ranks-per-host K] -- CMD... | ping | down" ;;
esac
