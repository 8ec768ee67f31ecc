#!/bin/bash
# Many small files uploaded on loopback (issue 11 target 5, the server's
# side): FILES (default 2000) new files of 4 KiB in 100 directories pushed
# by a new device with `cloud-client --once` (it exits once every push is
# acknowledged) to a fresh server. With SERVERS="dirA dirB" each run times
# each of those cloud-server builds in turn (before/after in one run, same
# load; the client is the first directory's). Reports wall seconds and the
# server's CPU (utime+stime, /proc/PID/stat) with medians of RUNS (default
# 3); SERVER_ARGS (e.g. --fsync) go to every server. Needs
# `cargo build --release`; stops only the PIDs it started.
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
SERVERS=${SERVERS:-$BIN}
FILES=${FILES:-2000}
RUNS=${RUNS:-3}
SERVER_ARGS=${SERVER_ARGS:-}
CLIENT=$(echo $SERVERS | awk '{print $1}')/cloud-client
W=$(mktemp -d)
SP=
cleanup() { [ -n "$SP" ] && kill -TERM $SP 2> /dev/null && wait $SP 2> /dev/null; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
tck=$(getconf CLK_TCK)
cpu() { awk -v t=$tck '{printf "%.2f", ($14+$15)/t}' /proc/$SP/stat; }
echo "small_upload: FILES=$FILES x 4 KiB, RUNS=$RUNS, SERVER_ARGS='$SERVER_ARGS', load $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p $W/gen
python3 - $W/gen $FILES << 'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, 'd%02d' % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'f%05d' % i), 'wb') as f: f.write(os.urandom(4096))
PY
declare -A T C
for run in $(seq $RUNS); do
    for s in $SERVERS; do
        rm -rf $W/data $W/a; mkdir -p $W/data; cp -a $W/gen $W/a
        $s/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q $SERVER_ARGS > $W/server.out 2>&1 &
        SP=$!
        for _ in $(seq 100); do grep -q listening $W/server.out && break; sleep 0.1; done
        PORT=$(grep -o '[0-9]*$' $W/server.out | head -1)
        c0=$(cpu); t0=$(now)
        timeout 600 $CLIENT 127.0.0.1 $PORT $W/a 1 --once -q > $W/user.txt || echo "run $run $s: upload failed"
        t1=$(now); c1=$(cpu)
        U=$(awk '{print $3}' $W/user.txt)
        diff -r -q $W/gen $W/data/AllClients/$U > /dev/null || echo "run $run $s: server copy differs"
        w=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }"); c=$(awk "BEGIN { printf \"%.2f\", $c1 - $c0 }")
        T[$s]="${T[$s]:-} $w"; C[$s]="${C[$s]:-} $c"
        echo "run $run $s: $w s, server CPU $c s (load $(cut -d' ' -f1 /proc/loadavg))"
        kill -TERM $SP; wait $SP 2> /dev/null; SP=
    done
done
med() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" $*; }
for s in $SERVERS; do
    echo "$s: wall median $(med ${T[$s]}) s of ($(echo ${T[$s]} | tr ' ' '/')), server CPU median $(med ${C[$s]}) s of ($(echo ${C[$s]} | tr ' ' '/'))"
done
