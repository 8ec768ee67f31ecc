#!/bin/bash
# Many small files downloaded on loopback (issue 11 target 5, the client's
# receive loop): device A uploads FILES (default 2000) new files of 4 KiB in
# 100 directories; then a new device B joins and downloads them all with
# `cloud-client --once` (it exits once every file is placed and durable).
# Reports B's wall time, RUNS times (default 5), and the median. With
# CLIENTS="dirA dirB" each run times each of those cloud-client builds in
# turn against the same server and files (before/after in one run, same
# load). Needs `cargo build --release`; stops only the PIDs it started.
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
CLIENTS=${CLIENTS:-$BIN}
FILES=${FILES:-2000}
RUNS=${RUNS:-5}
W=$(mktemp -d)
SP=
cleanup() { [ -n "$SP" ] && kill -TERM $SP 2> /dev/null && wait $SP 2> /dev/null; rm -rf "$W"; }
trap cleanup EXIT
now() { date +%s.%N; }
echo "small_download: FILES=$FILES x 4 KiB, RUNS=$RUNS, load $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p $W/data $W/a
python3 - $W/a $FILES << 'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, 'd%02d' % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'f%05d' % i), 'wb') as f: f.write(os.urandom(4096))
PY
$BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q > $W/server.out 2>&1 &
SP=$!
for _ in $(seq 100); do grep -q listening $W/server.out && break; sleep 0.1; done
PORT=$(grep -o '[0-9]*$' $W/server.out | head -1)
timeout 600 $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q > $W/user.txt || { echo "upload failed"; exit 1; }
U=$(awk '{print $3}' $W/user.txt)
declare -A T
for run in $(seq $RUNS); do
    for c in $CLIENTS; do
        rm -rf $W/b; mkdir -p $W/b
        t0=$(now)
        timeout 600 $c/cloud-client 127.0.0.1 $PORT $W/b 1 --once -q $U > $W/b.out 2>&1 || echo "run $run $c: client failed: $(tail -2 $W/b.out)"
        t1=$(now)
        s=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")
        T[$c]="${T[$c]:-} $s"
        diff -r -q -x .cloudservice $W/a $W/b > /dev/null || echo "run $run $c: B differs from A"
        echo "run $run $c: $s s (load $(cut -d' ' -f1 /proc/loadavg))"
    done
done
med() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" $*; }
for c in $CLIENTS; do echo "$c: median $(med ${T[$c]}) s of ($(echo ${T[$c]} | tr ' ' '/'))"; done
