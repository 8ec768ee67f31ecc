#!/bin/bash
# What a push that displaces files costs the server (PROTOCOL.md R-14.1.4:
# the content a push takes out of the folder is kept as a version, read
# and hashed first unless the file is as the server last knew it). One
# device pushes a folder to a fresh server, then four measured pushes:
#   overwrite    a 1 GiB file replaced by other random content
#   rmdir-small  a directory of 10,000 files of 4 KiB removed (RemoveDir)
#   rmdir-big    a directory of 100 files of 10 MiB removed (RemoveDir)
#   delete       the 1 GiB file deleted
# For each: the client's wall seconds (`cloud-client --once`; a removal of
# 10 or more files includes the client's fixed removal hold, 1-3 s,
# R-5.6.6), the server's CPU (utime+stime, /proc/PID/stat, counted from when the
# server is idle after the step before) and what it
# read (/proc/PID/io: rchar through read calls, read_bytes from the disk).
# COLD=1 drops the server folder's pages from the cache (posix_fadvise
# DONTNEED, no root needed) before each measured push. Builds alternate
# within each run; medians of RUNS (default 5), each run on fresh
# directories:
#   SERVERS="/path/before /path/after" RUNS=5 benches/displace_server.sh
# Each directory holds cloud-server; the client is the first one's
# cloud-client. Needs ~6 GiB free in $TMPDIR. Stops only the PIDs it
# started; every step bounded.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SERVERS=${SERVERS:-$ROOT/target/release}
RUNS=${RUNS:-5}
MIB=${MIB:-1024}
COLD=${COLD:-0}
CLIENT=$(echo $SERVERS | awk '{print $1}')/cloud-client
W=$(mktemp -d)
SP=
cleanup() { [ -n "$SP" ] && kill -TERM $SP 2> /dev/null && wait $SP 2> /dev/null; rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 1' TERM INT
tck=$(getconf CLK_TCK)
cpu() { awk -v t=$tck '{printf "%.2f", ($14+$15)/t}' /proc/$SP/stat; }
io() { awk -v k=$1 '$1==k":"{print $2}' /proc/$SP/io; }
push() { timeout 900 $CLIENT 127.0.0.1 $PORT $W/a 1 --once -q > $W/user.txt; }
uncache() {
    [ "$COLD" = 1 ] || return 0
    python3 - "$W/data/AllClients" << 'PY'
import os, sys
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        fd = os.open(os.path.join(d, f), os.O_RDONLY)
        os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
PY
}
quiet() { # until the server's CPU stops moving (a chunk list cut after an upload), at most 60 s
    local a b
    for _ in $(seq 60); do a=$(cpu); sleep 1; b=$(cpu); [ "$a" = "$b" ] && return; done
}
step() { # name server-dir
    local c0 r0 d0 t0 t1
    sync; uncache; quiet
    c0=$(cpu); r0=$(io rchar); d0=$(io read_bytes); t0=$(date +%s.%N)
    push || echo "push failed: $1 $2"
    t1=$(date +%s.%N)
    echo "$1 $2 $(python3 -c "print(round($t1-$t0,2))") $(python3 -c "print(round($(cpu)-$c0,2))") $(($(io rchar) - r0)) $(($(io read_bytes) - d0))" | tee -a $W/rows
}
echo "displace_server: MIB=$MIB RUNS=$RUNS COLD=$COLD load $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p $W/gen/small $W/gen/many
head -c $((MIB * 1024 * 1024)) /dev/urandom > $W/gen/big.img
head -c $((MIB * 1024 * 1024)) /dev/urandom > $W/big.new
echo keep > $W/gen/keep.txt
python3 - $W/gen << 'PY'
import os, sys
root = sys.argv[1]
for i in range(10000):
    d = os.path.join(root, 'small', 'd%02d' % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'f%05d' % i), 'wb') as f: f.write(os.urandom(4096))
for i in range(100):
    with open(os.path.join(root, 'many', 'm%03d' % i), 'wb') as f: f.write(os.urandom(10 << 20))
PY
for run in $(seq $RUNS); do
    for s in $SERVERS; do
        rm -rf $W/data $W/a; mkdir -p $W/data; cp -a $W/gen $W/a
        $s/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q > $W/server.out 2>&1 &
        SP=$!
        for _ in $(seq 100); do grep -q listening $W/server.out && break; sleep 0.1; done
        PORT=$(grep -o '[0-9]*$' $W/server.out | head -1)
        push || echo "first push failed: $s"
        U=$(awk '{print $3}' $W/user.txt)
        diff -r -q $W/gen $W/data/AllClients/$U > /dev/null || echo "run $run $s: server copy differs"
        cp $W/big.new $W/a/.big.tmp && mv $W/a/.big.tmp $W/a/big.img
        step overwrite $s
        cmp -s $W/big.new $W/data/AllClients/$U/big.img || echo "run $run $s: overwrite not on the server"
        rm -rf $W/a/small
        step rmdir-small $s
        rm -rf $W/a/many
        step rmdir-big $s
        rm $W/a/big.img
        step delete $s
        [ -e $W/data/AllClients/$U/big.img ] && echo "run $run $s: delete not on the server"
        kill -TERM $SP; wait $SP 2> /dev/null; SP=
    done
done
python3 - $W/rows << 'PY'
import sys, statistics as st, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, b, wall, cpu, rchar, rb = line.split()
    rows[(name, b)].append((float(wall), float(cpu), int(rchar), int(rb)))
print("| push | server | client wall s, median (runs) | server CPU s, median (runs) | server rchar MB | server read_bytes MB |")
print("|---|---|---|---|---|---|")
for (name, b), v in rows.items():
    med = lambda i: st.median(x[i] for x in v)
    runs = lambda i: "/".join(str(x[i]) for x in v)
    print(f"| {name} | {b} | {med(0):.2f} ({runs(0)}) | {med(1):.2f} ({runs(1)}) | {med(2)/1e6:.1f} | {med(3)/1e6:.1f} |")
PY
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
