#!/bin/bash
# How long moving one user between shards takes (issue 15, SCALING.md §4):
# `cloud-server export` from a running shard (the user is refused with
# Moving from its start) and `cloud-server import` into another running
# shard, for a user holding M files of SIZE bytes (uploaded first by one
# `cloud-client --once` over TLS). The user moves A -> B, B -> A, ... RUNS
# times; each run prints the export and import wall times and the files and
# bytes they report, then the medians.
# Needs `cargo build --release` first. Stops only the PIDs it started.
#   benches/move_user.sh                 # M=10000 SIZE=4096 RUNS=3
#   M=1000 SIZE=1048576 benches/move_user.sh
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
M=${M:-10000}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-3}
W=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -TERM $p 2>/dev/null; wait $p 2>/dev/null; done; rm -rf $W; }
trap cleanup EXIT
start() { # $1 = name, $2 = shard; sets PORT (not in a subshell: PIDS must keep the PID)
    $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/$1 -q --shard $2 > $W/$1.out 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q listening $W/$1.out && break; sleep 0.1; done
    PORT=$(grep -m1 listening $W/$1.out | grep -o '[0-9]*$')
}
start a 0
PA=$PORT
start b 1
mkdir -p $W/folder
python3 - "$W/folder" "$M" "$SIZE" <<'EOF'
import os, sys
d, m, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(m):
    sub = os.path.join(d, "d%03d" % (i // 1000))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%06d" % i), "wb") as f:
        f.write(os.urandom(size))
EOF
timeout 900 $BIN/cloud-client 127.0.0.1 $PA $W/folder 5 --once > $W/client.out 2>&1
USER=$(grep -o 'user id: [0-9a-f]*' $W/client.out | head -1 | awk '{print $3}')
[ -n "$USER" ] || { echo "upload failed: $(tail -3 $W/client.out)"; exit 1; }
from=a; to=b
: > $W/times
for i in $(seq $RUNS); do
    rm -rf $W/x
    t0=$(date +%s.%N)
    out=$($BIN/cloud-server export $W/$from $USER --to $W/x 2>&1) || { echo "export failed: $out"; exit 1; }
    t1=$(date +%s.%N)
    in=$($BIN/cloud-server import $W/$to $W/x 2>&1) || { echo "import failed: $in"; exit 1; }
    t2=$(date +%s.%N)
    e=$(python3 -c "print(f'{$t1 - $t0:.2f}')"); m=$(python3 -c "print(f'{$t2 - $t1:.2f}')")
    echo "run $i $from->$to: export ${e} s, import ${m} s; $(echo "$out" | grep -o '([0-9]* files, [0-9]* bytes)')"
    echo "$e $m" >> $W/times
    tmp=$from; from=$to; to=$tmp
done
sort -n -k1 $W/times | awk '{a[NR]=$1} END {printf "median export %s s", a[int((NR+1)/2)]}'
sort -n -k2 $W/times | awk '{a[NR]=$2} END {printf ", median import %s s (M='$M' SIZE='$SIZE', '$RUNS' runs)\n", a[int((NR+1)/2)]}'
