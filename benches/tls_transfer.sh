#!/bin/bash
# TLS against --insecure-plaintext (issue 12) on loopback: 1 GiB up and down
# with the real client (`--once`), the same file up and down with rsync to an
# rsync daemon (`rsync -a`, when rsync is installed), and full handshakes per
# second of server CPU. Every transfer also reports the server's CPU time
# (utime + stime from /proc; for rsync the daemon's reaped children) and the
# client's, which a loaded machine disturbs less than wall time; medians of
# RUNS at the end.
# Needs `cargo build --release` first and ~4 GiB free in $TMPDIR. Stops only
# the PIDs it started; every transfer bounded by LIMIT seconds.
#   benches/tls_transfer.sh                # RUNS=1, with the handshake figure
#   RUNS=3 LOAD=0 benches/tls_transfer.sh  # transfers only, medians of 3
#   RSYNC=0 ...                            # without the rsync rows
#   SERVER_ARGS=--fsync RSYNC_ARGS=--fsync ... # durable on both sides
# For the same figures over a shaped WAN link: benches/wan.sh
# (SCENARIOS="first plaintext").
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
RUNS=${RUNS:-1}
LOAD=${LOAD:-1}
RSYNC=${RSYNC:-1}
SERVER_ARGS=${SERVER_ARGS:-}   # more cloud-server options, e.g. --fsync
RSYNC_ARGS=${RSYNC_ARGS:-}     # more rsync options, e.g. --fsync
LIMIT=${LIMIT:-300}
MIB=${MIB:-1024}
W=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM $p 2>/dev/null; done; rm -rf $W' EXIT
trap 'exit 130' INT TERM
head -c $((MIB * 1024 * 1024)) /dev/urandom > $W/big.img
tck=$(getconf CLK_TCK)
cpu() { # utime+stime of $1 and of its reaped children, once it has no child left (5 s at most)
    for _ in $(seq 100); do [ -z "$(cat /proc/$1/task/*/children 2>/dev/null)" ] && break; sleep 0.05; done
    awk '{print $14 + $15 + $16 + $17}' /proc/$1/stat
}
mine() { awk '{print $16 + $17}' /proc/$$/stat; }  # CPU of this script's reaped children: the clients
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
cpus() { python3 -c "print(f'{($2 - $1) / $tck:.2f}')"; }
start() { # $1 = data dir, rest = server options; sets SP PORT
    # cloud-load runs up to 512 handshakes at once from one address:
    # above the server's per-address bound (PROTOCOL.md R-3.5.5).
    $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $1 -q --max-handshakes-per-address 100000 $SERVER_ARGS "${@:2}" > $1.out 2>&1 &
    SP=$!
    PIDS+=($SP)
    for _ in $(seq 100); do grep -q listening $1.out 2>/dev/null && break; sleep 0.1; done
    PORT=$(grep -m1 listening $1.out | grep -o '[0-9]*$')
}
echo "load at start: $(uptime)"
echo "server options: ${SERVER_ARGS:-none}; rsync options: ${RSYNC_ARGS:-none}"
: > $W/results.tsv
for run in $(seq $RUNS); do
for mode in tls plaintext; do
    extra=()
    [ $mode = plaintext ] && extra=(--insecure-plaintext)
    rm -rf $W/data $W/a $W/b; mkdir -p $W/data $W/a $W/b
    # -p: as old as rsync's source (the same file, uploaded later). A file
    # modified within the last 300 ms makes cloud-client wait until it has
    # seen it unchanged that long (a writer may still be at it), rsync not.
    cp -p $W/big.img $W/a/big.img
    start $W/data "${extra[@]}"
    c0=$(cpu $SP); m0=$(mine); t0=$(date +%s.%N)
    timeout $LIMIT $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q "${extra[@]}" > $W/user.txt
    t1=$(date +%s.%N); c1=$(cpu $SP); m1=$(mine)
    U=$(grep -o '[0-9a-f]\{32\}' $W/user.txt | head -1)
    timeout $LIMIT $BIN/cloud-client 127.0.0.1 $PORT $W/b 1 $U --once -q "${extra[@]}" > /dev/null
    t2=$(date +%s.%N); c2=$(cpu $SP); m2=$(mine)
    cmp -s $W/a/big.img $W/b/big.img && same=identical || same=DIFFERENT
    echo "$mode run $run: upload $MIB MiB $(secs $t0 $t1) s (server CPU $(cpus $c0 $c1) s, client $(cpus $m0 $m1) s)," \
        "download $(secs $t1 $t2) s (server CPU $(cpus $c1 $c2) s, client $(cpus $m1 $m2) s) ($same)"
    printf '%s\tupload\t%s\t%s\t%s\n' $mode $(secs $t0 $t1) $(cpus $c0 $c1) $(cpus $m0 $m1) >> $W/results.tsv
    printf '%s\tdownload\t%s\t%s\t%s\n' $mode $(secs $t1 $t2) $(cpus $c1 $c2) $(cpus $m1 $m2) >> $W/results.tsv
    if [ $LOAD = 1 ]; then
        # Handshakes: 10,000 connections over 100 users, server CPU counted.
        c0=$(cpu $SP)
        $BIN/cloud-load 127.0.0.1 $PORT -n 10000 -u 100 -r 600 -d 1 --connect-rate 100000 \
            --max-handshakes 512 "${extra[@]}" > $W/load.out 2>&1
        c1=$(cpu $SP)
        setup=$(grep -o 'setup time (s) | [0-9.]*' $W/load.out | grep -o '[0-9.]*$')
        echo "  10,000 connections set up in $setup s using $(cpus $c0 $c1) s of server CPU" \
            "= $(python3 -c "print(round(10000 / max(($c1 - $c0) / $tck, 0.01)))") connections per server CPU-second"
    fi
    kill -TERM $SP; wait $SP
done
if [ $RSYNC = 1 ] && command -v rsync > /dev/null; then
    rm -rf $W/rsyncd $W/rb; mkdir -p $W/rsyncd/module $W/rb
    printf 'use chroot = no\nuid = root\ngid = root\n[bench]\n    path = %s\n    read only = false\n' \
        $W/rsyncd/module > $W/rsyncd/conf
    RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    rsync --daemon --no-detach --config=$W/rsyncd/conf --port=$RPORT --address=127.0.0.1 > $W/rsyncd/out 2>&1 &
    RP=$!
    PIDS+=($RP)
    for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$RPORT) 2>/dev/null && break; sleep 0.1; done
    c0=$(cpu $RP); m0=$(mine); t0=$(date +%s.%N)
    timeout $LIMIT rsync -a $RSYNC_ARGS $W/a/big.img rsync://127.0.0.1:$RPORT/bench/
    t1=$(date +%s.%N); c1=$(cpu $RP); m1=$(mine)
    timeout $LIMIT rsync -a $RSYNC_ARGS rsync://127.0.0.1:$RPORT/bench/big.img $W/rb/
    t2=$(date +%s.%N); c2=$(cpu $RP); m2=$(mine)
    cmp -s $W/a/big.img $W/rb/big.img && same=identical || same=DIFFERENT
    echo "rsync run $run: upload $MIB MiB $(secs $t0 $t1) s (daemon CPU $(cpus $c0 $c1) s, client $(cpus $m0 $m1) s)," \
        "download $(secs $t1 $t2) s (daemon CPU $(cpus $c1 $c2) s, client $(cpus $m1 $m2) s) ($same)"
    printf 'rsync\tupload\t%s\t%s\t%s\n' $(secs $t0 $t1) $(cpus $c0 $c1) $(cpus $m0 $m1) >> $W/results.tsv
    printf 'rsync\tdownload\t%s\t%s\t%s\n' $(secs $t1 $t2) $(cpus $c1 $c2) $(cpus $m1 $m2) >> $W/results.tsv
    kill -TERM $RP; wait $RP 2>/dev/null
fi
done
echo "load at end: $(uptime)"
python3 - $W/results.tsv << 'PY'
import statistics, sys
g = {}
for line in open(sys.argv[1]):
    tool, d, s, c, m = line.split()
    g.setdefault((tool, d), []).append((float(s), float(c), float(m)))
print("| direction | tool | runs | median seconds | median server CPU s | median client CPU s | time vs plaintext | time vs rsync |")
print("|---|---|---|---|---|---|---|---|")
for d in ("upload", "download"):
    for tool in ("tls", "plaintext", "rsync"):
        if (tool, d) not in g: continue
        xs = g[(tool, d)]
        t = statistics.median(x[0] for x in xs); c = statistics.median(x[1] for x in xs)
        m = statistics.median(x[2] for x in xs)
        ref = lambda k: statistics.median(x[0] for x in g[(k, d)]) if (k, d) in g else None
        vp = f"{t / ref('plaintext'):.2f}x" if tool == 'tls' and ref('plaintext') else ''
        vr = f"{t / ref('rsync'):.2f}x" if tool != 'rsync' and ref('rsync') else ''
        print(f"| {d} | {tool} | {len(xs)} | {t:.2f} | {c:.2f} | {m:.2f} | {vp} | {vr} |")
PY
