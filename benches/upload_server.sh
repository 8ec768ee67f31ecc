#!/bin/bash
# Server cost of delta uploads on loopback (issue 11, server side), two builds
# of cloud-server side by side: a 1 GiB random file uploaded first, then 1 MiB
# overwritten mid-file and uploaded again. For each step: wall seconds, the
# server's CPU (utime+stime from /proc/PID/stat) and what it read
# (/proc/PID/io: rchar = bytes through read calls, read_bytes = from the disk,
# not the page cache). Builds alternate within each run; medians of RUNS.
#   BINS="/path/before /path/after" RUNS=3 MIB=1024 benches/upload_server.sh
# Each directory holds cloud-server and cloud-client. Needs ~3.5 x MIB MiB
# free in $TMPDIR. Stops only the PIDs it started; every step bounded.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BINS=${BINS:-$ROOT/target/release}
RUNS=${RUNS:-3}
MIB=${MIB:-1024}
W=$(mktemp -d)
SP=
cleanup() { [ -n "$SP" ] && kill -TERM $SP 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
tck=$(getconf CLK_TCK)
cpu() { awk -v t=$tck '{printf "%.2f", ($14+$15)/t}' /proc/$SP/stat; }
io() { awk -v k=$1 '$1==k":"{print $2}' /proc/$SP/io; }
step() { # name bin
  local c0 r0 d0 t0 t1
  c0=$(cpu); r0=$(io rchar); d0=$(io read_bytes); t0=$(date +%s.%N)
  timeout 600 $2/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q > $W/user-$1.txt || echo "client failed: $1"
  t1=$(date +%s.%N)
  python3 -c "print('$1', '$2', round($t1-$t0,2), round($(cpu)-$c0,2), $(io rchar)-$r0, $(io read_bytes)-$d0)" >> $W/rows
}
uptime
for run in $(seq $RUNS); do
  for bin in $BINS; do
    rm -rf $W/data $W/a; mkdir -p $W/data $W/a
    head -c $((MIB*1024*1024)) /dev/urandom > $W/a/big.img
    $bin/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q > $W/server.out 2>&1 &
    SP=$!
    for i in $(seq 50); do grep -q listening $W/server.out && break; sleep 0.1; done
    PORT=$(grep -o '[0-9]*$' $W/server.out | head -1)
    step first $bin
    python3 - "$W/a/big.img" <<'PY'
import sys,os
f=open(sys.argv[1],'r+b'); n=os.path.getsize(sys.argv[1]); f.seek(n//2+12345); f.write(os.urandom(1<<20)); f.close()
PY
    step edit $bin
    U=$(awk '{print $3}' $W/user-first.txt)
    cmp $W/a/big.img $W/data/AllClients/$U/big.img || echo "MISMATCH $bin"
    grep -o 'detail=.*delta.*' $W/data/connectionLog.txt | tail -1
    kill -TERM $SP; wait $SP; SP=
  done
done
python3 - $W/rows <<'PY'
import sys, statistics as st, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, b, wall, cpu, rchar, rb = line.split()
    rows[(name, b)].append((float(wall), float(cpu), int(rchar), int(rb)))
print("| step | build | wall s (runs) | server CPU s | server rchar MB | server read_bytes MB |")
print("|---|---|---|---|---|---|")
for (name, b), v in rows.items():
    med = lambda i: st.median(x[i] for x in v)
    runs = "/".join(str(x[0]) for x in v)
    print(f"| {name} | {b} | {med(0):.2f} ({runs}) | {med(1):.2f} | {med(2)/1e6:.1f} | {med(3)/1e6:.1f} |")
PY
uptime
