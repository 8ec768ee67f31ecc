#!/bin/bash
# TLS against --insecure-plaintext (issue 12): 1 GiB up and down with the real
# client (`--once`, loopback), and full handshakes per second of server CPU.
# Needs `cargo build --release` first and ~3 GiB free in $TMPDIR. Stops only
# the PIDs it started.
#   benches/tls_transfer.sh          # RUNS=1
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
RUNS=${RUNS:-1}
W=$(mktemp -d)
head -c $((1024*1024*1024)) /dev/urandom > $W/big.img
cpu() { awk '{print $14 + $15}' /proc/$1/stat; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
start() { # $1 = data dir, rest = server options; sets SP PORT
    $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $1 -q "${@:2}" > $1.out 2>&1 &
    SP=$!
    for _ in $(seq 100); do grep -q listening $1.out 2>/dev/null && break; sleep 0.1; done
    PORT=$(grep -m1 listening $1.out | grep -o '[0-9]*$')
}
for run in $(seq $RUNS); do
for mode in tls plaintext; do
    extra=()
    [ $mode = plaintext ] && extra=(--insecure-plaintext)
    rm -rf $W/data $W/a $W/b; mkdir -p $W/data $W/a $W/b
    cp $W/big.img $W/a/big.img
    start $W/data "${extra[@]}"
    t0=$(date +%s.%N)
    timeout 300 $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q "${extra[@]}" > $W/user.txt
    t1=$(date +%s.%N)
    U=$(grep -o '[0-9a-f]\{32\}' $W/user.txt | head -1)
    timeout 300 $BIN/cloud-client 127.0.0.1 $PORT $W/b 1 $U --once -q "${extra[@]}" > /dev/null
    t2=$(date +%s.%N)
    cmp -s $W/a/big.img $W/b/big.img && same=identical || same=DIFFERENT
    # Handshakes: 10,000 connections over 100 users, server CPU counted.
    c0=$(cpu $SP)
    $BIN/cloud-load 127.0.0.1 $PORT -n 10000 -u 100 -r 600 -d 1 --connect-rate 100000 \
        --max-handshakes 512 "${extra[@]}" > $W/load.out 2>&1
    c1=$(cpu $SP)
    setup=$(grep -o 'setup time (s) | [0-9.]*' $W/load.out | grep -o '[0-9.]*$')
    tck=$(getconf CLK_TCK)
    echo "$mode run $run: upload 1 GiB $(secs $t0 $t1) s, download $(secs $t1 $t2) s ($same);" \
        "10,000 connections set up in $setup s using $(python3 -c "print(f'{($c1 - $c0) / $tck:.2f}')") s of server CPU" \
        "= $(python3 -c "print(round(10000 / max(($c1 - $c0) / $tck, 0.01)))") connections per server CPU-second"
    kill -TERM $SP; wait $SP
done
done
rm -rf $W
