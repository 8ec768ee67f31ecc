#!/bin/bash
# HAProxy's own cost per proxied idle TLS connection, and the user map's
# cost per entry (issue 15, SCALING.md §5 and §3).
#
# One TLS cloud-server (--shard 0) behind HAProxy running the shipped
# deploy/haproxy/haproxy.cfg (addresses, paths and maxconn replaced), with a
# user map of MAP_USERS generated entries (moved users: whole SNI -> shard0;
# 0 = the shipped empty map). One cloud-load opens N TLS connections over
# N/10 users through the proxy and stays silent until its go-file appears.
# Read before the load and SETTLE s after setup: HAProxy's RSS and CPU time
# (utime + stime of all its threads, /proc/PID/stat), the server's RSS.
# Prints per run: haproxy KiB per connection, haproxy CPU µs per connection
# set up (it relays the TLS handshake and the Hello/Welcome), haproxy RSS
# with the map loaded before any connection, the map file's size, the
# seconds haproxy took to load it, and the server's KiB per connection.
# File descriptors: HAProxy needs two per connection, so N must stay below
# half of `ulimit -n` (20,000 here: N <= 9,000).
# Needs `cargo build --release` and haproxy. Stops only the PIDs it started.
#   benches/haproxy_idle.sh                  # N=5000 RUNS=3 MAP_USERS=0
#   MAP_USERS=1000000 RUNS=1 benches/haproxy_idle.sh
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
N=${N:-5000}
RUNS=${RUNS:-3}
SETTLE=${SETTLE:-35}
MAP_USERS=${MAP_USERS:-0}
TCK=$(getconf CLK_TCK)
command -v haproxy > /dev/null || { echo "haproxy is not installed (apt-get install -y haproxy)"; exit 1; }
rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }
cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

one_run() { # prints the figures of one run
    local W SP HP LP PORT HPORT h0 h1 c0 c1 s0 s1 held t0 t1 mapsize
    W=$(mktemp -d)
    # cloud-load runs up to 512 handshakes at once from one address:
    # above the server's per-address bound (PROTOCOL.md R-3.5.5).
    $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q --max-handshakes-per-address 100000 --shard 0 > $W/server.out 2>&1 &
    SP=$!
    for _ in $(seq 100); do grep -q listening $W/server.out && break; sleep 0.1; done
    PORT=$(grep -m1 listening $W/server.out | grep -o '[0-9]*$')
    HPORT=$(free_port)
    printf 'r00 shard0\nr01 shard1\nr02 shard2\n' > $W/cloudservice-shards.map
    cp $ROOT/deploy/haproxy/cloudservice-users.map $W/
    if [ "$MAP_USERS" -gt 0 ]; then
        python3 - "$MAP_USERS" >> $W/cloudservice-users.map <<'EOF'
import os, sys
n = int(sys.argv[1])
out = sys.stdout
for _ in range(n):
    out.write("r%s.route.cloudservice shard0\n" % os.urandom(16).hex())
EOF
    fi
    mapsize=$(stat -c %s $W/cloudservice-users.map)
    sed -e "s#/etc/haproxy/#$W/#g" -e "s#/run/haproxy/cloudservice.sock#$W/admin.sock#" \
        -e "s#bind :7000#bind 127.0.0.1:$HPORT#" -e '/log \/dev\/log/d' \
        -e 's/maxconn 100000/maxconn 9000/' -e 's/maxconn 50000/maxconn 9000/' \
        -e "s/10\.0\.0\.1[0-2]:7000/127.0.0.1:$PORT/" \
        $ROOT/deploy/haproxy/haproxy.cfg > $W/haproxy.cfg
    t0=$(date +%s.%N)
    haproxy -db -f $W/haproxy.cfg > $W/haproxy.out 2>&1 &
    HP=$!
    for _ in $(seq 600); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$HPORT),1)" 2>/dev/null && break
        sleep 0.1
    done
    t1=$(date +%s.%N)
    sleep 2
    h0=$(rss $HP); c0=$(cpu $HP); s0=$(rss $SP)
    $BIN/cloud-load 127.0.0.1 $HPORT -n $N -u $((N / 10)) -r 600 -d 1 \
        --connect-rate 100000 --max-handshakes 512 --setup-timeout 240 \
        --go-file $W/go > $W/load.out 2>&1 &
    LP=$!
    for _ in $(seq 2400); do
        grep -q connected $W/load.out && break
        kill -0 $LP 2>/dev/null || break
        sleep 0.1
    done
    c1=$(cpu $HP)
    sleep $SETTLE
    h1=$(rss $HP); s1=$(rss $SP)
    touch $W/go
    wait $LP
    held=$(grep -o 'connected held=[0-9]*' $W/load.out | head -1 | grep -o '[0-9]*$')
    kill -TERM $HP; wait $HP
    kill -TERM $SP; wait $SP
    python3 -c "
h=${held:-0}
print(f'held={h} haproxy_KiB_per_conn={($h1-$h0)/h:.2f} haproxy_cpu_us_per_conn={($c1-$c0)/$TCK*1e6/h:.1f} haproxy_rss_idle_MiB={$h0/1024:.1f} map_bytes=$mapsize map_load_s={$t1-$t0:.1f} server_KiB_per_conn={($s1-$s0)/h:.2f}')" 2>/dev/null \
        || echo "failed: $(tail -3 $W/load.out) $(tail -3 $W/haproxy.out)"
    rm -rf $W
}

for i in $(seq $RUNS); do
    echo "run $i (N=$N MAP_USERS=$MAP_USERS): $(one_run)"
done
