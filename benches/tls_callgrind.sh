#!/bin/bash
# The server's (or SIDE=client: the client's) instructions for one upload and one download of MIB MiB over
# TLS (or PLAIN=1: --insecure-plaintext), counted by valgrind's callgrind:
# unlike CPU time, instruction counts do not move with the machine's load,
# so two builds' copies and allocations can be compared on a busy machine
# (issue 12, TLS transfer cost). Prints the total of each phase and the
# share of memcpy/memmove, memset and malloc/free in it.
# Needs valgrind and `cargo build --release` first. Stops only the PIDs it
# started; each client run bounded by LIMIT seconds.
#   benches/tls_callgrind.sh                       # this build, 64 MiB
#   BIN=/path/to/other/release MIB=16 benches/tls_callgrind.sh
#   SIDE=client benches/tls_callgrind.sh           # the client's instead
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
MIB=${MIB:-64}
LIMIT=${LIMIT:-600}
PLAIN=${PLAIN:-0}
SIDE=${SIDE:-server}
W=$(mktemp -d)
SP=
trap '[ -n "$SP" ] && kill -TERM $SP 2>/dev/null; [ -z "${KEEP:-}" ] && rm -rf $W' EXIT
extra=()
[ "$PLAIN" = 1 ] && extra=(--insecure-plaintext)
mkdir -p $W/a $W/b
head -c $((MIB * 1024 * 1024)) /dev/urandom > $W/a/big.img
if [ "$SIDE" = client ]; then
    # The server runs bare; each client run is counted in a file of its own.
    $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q "${extra[@]}" > $W/server.out 2>&1 &
    SP=$!
    for _ in $(seq 600); do grep -q listening $W/server.out 2>/dev/null && break; sleep 0.2; done
    PORT=$(grep -m1 listening $W/server.out | grep -o '[0-9]*$')
    timeout $LIMIT valgrind --tool=callgrind --callgrind-out-file=$W/cg.out.1 \
        $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q "${extra[@]}" > $W/user.txt 2> $W/vg1.err
    U=$(grep -o '[0-9a-f]\{32\}' $W/user.txt | head -1)
    timeout $LIMIT valgrind --tool=callgrind --callgrind-out-file=$W/cg.out.2 \
        $BIN/cloud-client 127.0.0.1 $PORT $W/b 1 $U --once -q "${extra[@]}" > /dev/null 2> $W/vg2.err
else
valgrind --tool=callgrind --callgrind-out-file=$W/cg.out \
    $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q "${extra[@]}" > $W/server.out 2>&1 &
SP=$!
for _ in $(seq 600); do grep -q listening $W/server.out 2>/dev/null && break; sleep 0.2; done
PORT=$(grep -m1 listening $W/server.out | grep -o '[0-9]*$')
callgrind_control -z $SP > /dev/null
timeout $LIMIT $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q "${extra[@]}" > $W/user.txt
callgrind_control -d upload $SP > /dev/null
U=$(grep -o '[0-9a-f]\{32\}' $W/user.txt | head -1)
timeout $LIMIT $BIN/cloud-client 127.0.0.1 $PORT $W/b 1 $U --once -q "${extra[@]}" > /dev/null
callgrind_control -d download $SP > /dev/null
fi
cmp -s $W/a/big.img $W/b/big.img && same=identical || same=DIFFERENT
kill -TERM $SP; wait $SP; SP=
[ -n "${KEEP:-}" ] && echo "(callgrind files kept in $W)"; echo "$SIDE instructions, $MIB MiB, $([ "$PLAIN" = 1 ] && echo plaintext || echo TLS), download $same:"
# cg.out.1: counted from the zeroing to the first dump (the upload), cg.out.2: the download
# (SIDE=client: the uploading client's run, the downloading client's run).
for part in 1 2; do
    f=$W/cg.out.$part
    name=$([ $part = 1 ] && echo upload || echo download)
    callgrind_annotate --inclusive=no --threshold=100 $f 2>/dev/null > $W/$part.txt
    total=$(grep -m1 "PROGRAM TOTALS" $W/$part.txt | awk '{gsub(",","",$1); print $1}')
    share() { grep -E "libc.so" $W/$part.txt | grep -E "$1" | awk -v t=$total '{gsub(",","",$1); s+=$1} END {printf "%.1f%%", 100*s/t}'; }
    echo "  $name: $(python3 -c "print(f'{$total/1e9:.3f}')") G instructions;" \
        "memcpy/memmove $(share '(memcpy|memmove)'), memset $(share 'memset'), malloc/free/realloc $(share ':(malloc|free|realloc|cfree|_int_[a-z]*)( |$)')"
done
