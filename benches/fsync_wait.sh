#!/bin/bash
# A 1 GiB upload to a server with --fsync (TLS, --once, fresh folders, `sync`
# before each), two builds ALTERNATING: wall time and the server's wait in
# the final fdatasync of the file (after the last byte, before the PushAck),
# from `strace --seccomp-bpf` (only fdatasync, fsync and sync_file_range
# stop), with the count and time of sync_file_range calls. Medians at the end.
#   OLD=/path/to/old/release NEW=target/release RUNS=5 benches/fsync_wait.sh
# Needs strace and ~3 GiB free in $TMPDIR; stops only the PIDs it started.
set -u
RUNS=${RUNS:-5}
OLD=${OLD:?OLD=directory of the old cloud-server and cloud-client}
NEW=${NEW:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
W=$(mktemp -d)
trap 'rm -rf $W' EXIT
head -c $((1024*1024*1024)) /dev/urandom > $W/big.img
echo "load at start: $(uptime)"
for run in $(seq $RUNS); do for v in old new; do
  [ $v = old ] && B=$OLD || B=$NEW
  rm -rf $W/data $W/a; mkdir -p $W/data $W/a; cp -p $W/big.img $W/a/; sync
  strace -f --seccomp-bpf -T -e trace=fdatasync,fsync,sync_file_range -o $W/st.$v.$run $B/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q --fsync > $W/s.out 2>&1 & STP=$!
  for _ in $(seq 300); do grep -q listening $W/s.out 2>/dev/null && break; sleep 0.1; done
  SP=$(pgrep -P $STP | head -1)  # the server: strace's child
  PORT=$(grep -m1 listening $W/s.out | grep -o '[0-9]*$')
  t0=$(date +%s.%N)
  timeout 120 $B/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q > /dev/null
  t1=$(date +%s.%N)
  kill -TERM $SP; wait $STP
  # the longest fdatasync = the 1 GiB file's; sum of sync_file_range times
  fd=$(grep fdatasync $W/st.$v.$run | grep -o '<[0-9.]*>' | tr -d '<>' | sort -n | tail -1)
  sfr=$(grep sync_file_range $W/st.$v.$run | grep -o '<[0-9.]*>' | tr -d '<>' | awk '{s+=$1; n++} END {printf "%d calls %.3f s", n, s}')
  printf '%s\t%s\t%.2f\t%s\t%s\n' $run $v $(python3 -c "print($t1-$t0)") ${fd:-0} "$sfr" | tee -a $W/res.tsv
done; done
echo "load at end: $(uptime)"
python3 - $W/res.tsv <<'PY'
import sys, statistics as st
g={}
for l in open(sys.argv[1]):
    f=l.split('\t'); g.setdefault(f[1],[]).append((float(f[2]),float(f[3])))
for k,xs in sorted(g.items()):
    ts=sorted(x[0] for x in xs); fs=sorted(x[1] for x in xs)
    print(k, "n", len(xs), "wall median %.2f (%.2f-%.2f)" % (st.median(ts), ts[0], ts[-1]), "final fdatasync median %.3f (%.3f-%.3f)" % (st.median(fs), fs[0], fs[-1]))
PY
