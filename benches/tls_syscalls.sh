#!/bin/bash
# The server's socket system calls for one upload and one download of MIB
# MiB (default 256) of random data over TLS and over --insecure-plaintext on
# loopback (issue 12: what a TLS transfer costs the server in calls, which a
# loaded machine does not move as it moves wall time). The server runs under
# `strace -f -c -e trace=sendto,write,recvfrom,read`, once per direction (the
# same data directory, so the download is served what the upload stored);
# `read`/`write` include the actors' file I/O, `sendto`/`recvfrom` are the
# sockets alone; "errors" are EAGAIN (the reactor reads until WouldBlock).
# Needs strace and `cargo build --release`; stops only the PIDs it started,
# every transfer bounded by LIMIT seconds.
#   benches/tls_syscalls.sh                          # this build
#   BIN=/other/target/release benches/tls_syscalls.sh  # another build
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
MIB=${MIB:-256}
LIMIT=${LIMIT:-300}
W=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill -TERM $p 2>/dev/null; done; rm -rf $W' EXIT
trap 'exit 130' INT TERM
mkdir -p $W/src
head -c $((MIB * 1024 * 1024)) /dev/urandom > $W/src/big.img
start() { # $1 = run tag, rest = server options; sets SP (strace), SERVER, PORT
    strace -f -c -e trace=sendto,write,recvfrom,read -o $W/$1.strace \
        $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q "${@:2}" > $W/$1.out 2>&1 &
    SP=$!
    PIDS+=($SP)
    for _ in $(seq 100); do grep -q listening $W/$1.out 2>/dev/null && break; sleep 0.1; done
    PORT=$(grep -m1 listening $W/$1.out | grep -o '[0-9]*$')
    SERVER=$(ps --ppid $SP -o pid= | tr -d ' ')
}
stop() { # the server itself, so that strace writes its summary and ends
    kill -TERM $SERVER
    wait $SP
}
calls() { # $1 = strace summary, $2 = syscall: "calls errors"
    awk -v s=$2 '$NF == s { if (NF == 6) print $4, $5; else print $4, 0 }' $1
}
echo "| $MIB MiB, server | sendto calls (EAGAIN) | recvfrom calls (EAGAIN) | write calls | read calls (EAGAIN) |"
echo "|---|---|---|---|---|"
for mode in tls plaintext; do
    extra=()
    [ $mode = plaintext ] && extra=(--insecure-plaintext)
    rm -rf $W/data $W/a $W/b; mkdir -p $W/data $W/a $W/b
    cp -p $W/src/big.img $W/a/big.img
    start $mode-upload "${extra[@]}"
    timeout $LIMIT $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q "${extra[@]}" > $W/user.txt
    stop
    U=$(grep -o '[0-9a-f]\{32\}' $W/user.txt | head -1)
    start $mode-download "${extra[@]}"
    timeout $LIMIT $BIN/cloud-client 127.0.0.1 $PORT $W/b 1 $U --once -q "${extra[@]}" > /dev/null
    stop
    cmp -s $W/a/big.img $W/b/big.img && same=identical || same=DIFFERENT
    for dir in upload download; do
        f=$W/$mode-$dir.strace
        read -r s se <<< "$(calls $f sendto)"
        read -r r re <<< "$(calls $f recvfrom)"
        read -r w _ <<< "$(calls $f write)"
        read -r rd rde <<< "$(calls $f read)"
        echo "| $mode $dir ($same) | ${s:-0} (${se:-0}) | ${r:-0} (${re:-0}) | ${w:-0} | ${rd:-0} (${rde:-0}) |"
    done
done
