#!/bin/bash
# Delta downloads on loopback (issue 11, PROTOCOL.md §13.4), bounded: device A
# uploads a random file of SIZE_MIB (default 1024) MiB; device B downloads it
# (first download), then after each edit on A (1 MiB overwritten mid-file,
# 1 MiB inserted at the start, 1 MiB appended, a copy under a new name) B
# downloads again. For each: B's wall time, the bytes the server sent
# (cloudservice_sent_bytes_total from --metrics) and what B's client read and
# wrote through system calls (rchar/wchar of /proc/PID/io, taken when it has
# exited and before it is reaped, so its threads are all counted), RUNS times
# (default 3), and the median. Needs `cargo build --release`, curl, and about 4 x SIZE_MIB free
# in $TMPDIR. Stops only the PIDs it started.
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
MPORT=${MPORT:-19477}
W=$(mktemp -d)
now() { date +%s.%N; }
sent() { curl -s http://127.0.0.1:$MPORT/metrics | awk '/^cloudservice_sent_bytes_total/{print $2}'; }
declare -A T B R WR
# Runs a command; prints its rchar and wchar (its threads' included).
io_run() {
  python3 - "$@" <<'PY2'
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
io = dict(l.split(': ') for l in open(f'/proc/{p.pid}/io').read().splitlines())
p.wait()
print(io['rchar'], io['wchar'])
PY2
}
for run in $(seq $RUNS); do
  rm -rf $W/*; mkdir -p $W/data $W/a $W/b
  head -c $((SIZE_MIB*1024*1024)) /dev/urandom > $W/a/big.img
  $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data --metrics 127.0.0.1:$MPORT -q > $W/server.out 2>&1 &
  SP=$!
  for i in $(seq 50); do grep -q listening $W/server.out && break; sleep 0.1; done
  PORT=$(grep -o '[0-9]*$' $W/server.out | head -1)
  timeout 600 $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q > $W/user.txt
  U=$(awk '{print $3}' $W/user.txt)
  step() { # name: download on B, record seconds and bytes
    local s0 t0 t1 s1 io
    s0=$(sent); t0=$(now)
    io=$(io_run timeout 600 $BIN/cloud-client 127.0.0.1 $PORT $W/b 1 --once -q $U)
    t1=$(now); s1=$(sent)
    R[$1]="${R[$1]:-} ${io% *}"; WR[$1]="${WR[$1]:-} ${io#* }"
    T[$1]="${T[$1]:-} $(python3 -c "print(round($t1-$t0,2))")"
    B[$1]="${B[$1]:-} $(python3 -c "print(int($s1-$s0))")"
    cmp -s $W/a/big.img $W/b/big.img || echo "run $run $1: B differs from A" >&2
  }
  upload() { timeout 600 $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q > /dev/null; }
  step "first download"
  python3 - "$W/a/big.img" <<'PY'
import sys,os
f=open(sys.argv[1],'r+b'); f.seek(os.path.getsize(sys.argv[1])//2+12345); f.write(os.urandom(1<<20)); f.close()
PY
  upload; step "1 MiB overwritten mid-file"
  { head -c $((1024*1024)) /dev/urandom; cat $W/a/big.img; } > $W/a/.new && mv $W/a/.new $W/a/big.img
  upload; step "1 MiB inserted at the start"
  head -c $((1024*1024)) /dev/urandom >> $W/a/big.img
  upload; step "1 MiB appended"
  cp $W/a/big.img $W/a/copy.img
  upload; step "copy to a new name"
  cmp -s $W/a/copy.img $W/b/copy.img || echo "run $run: copy differs" >&2
  kill -TERM $SP; wait $SP
done
med() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" $*; }
echo "| download on B after ($SIZE_MIB MiB file, median of $RUNS) | seconds | bytes sent by the server | B read (rchar, MiB) | B wrote (wchar, MiB) |"
echo "|---|---|---|---|---|"
mib() { python3 -c "print(round($1/1048576, 1))"; }
for k in "first download" "1 MiB overwritten mid-file" "1 MiB inserted at the start" "1 MiB appended" "copy to a new name"; do
  echo "| $k | $(med ${T[$k]}) | $(med ${B[$k]} | cut -d. -f1) | $(mib $(med ${R[$k]})) | $(mib $(med ${WR[$k]})) |"
  [ -n "${VERBOSE:-}" ] && echo "  runs: seconds${T[$k]}; rchar${R[$k]}" >&2
done
rm -rf $W
