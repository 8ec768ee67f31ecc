#!/bin/bash
# Delta transfer on loopback (issue 11), bounded: a 1 GiB random file uploaded
# by the real client, then 1 MiB overwritten mid-file, 1 MiB appended, and a
# copy under a new name; for each the time, the chunk bytes the server did not
# already hold (from connectionLog.txt), and the server's peak RSS during the
# step: sampled every 50 ms, and the kernel's exact peak (VmHWM, reset with
# `echo 5 > /proc/PID/clear_refs` as the step starts; issue 11 target 6:
# <= 64 MiB above idle).
# Needs `cargo build --release` first and ~3.5 GiB free in $TMPDIR. Stops only
# the PIDs it started. No WAN shaping (the ip netns/tc harness is not written).
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
W=$(mktemp -d)
mkdir -p $W/data $W/a
head -c $((1024*1024*1024)) /dev/urandom > $W/a/big.img
$BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q > $W/server.out 2>&1 &
SP=$!
for i in $(seq 50); do grep -q listening $W/server.out && break; sleep 0.1; done
PORT=$(grep -o '[0-9]*$' $W/server.out | head -1)
rss() { awk '/VmRSS/{print $2}' /proc/$SP/status; }
hwm() { awk '/VmHWM/{print $2}' /proc/$SP/status; }
# sample CLIENT_PID: the server's peak RSS while the client runs, "SAMPLED kB (VmHWM N kB, +M kB over idle)".
sample() {
    echo 5 > /proc/$SP/clear_refs 2>/dev/null
    local max=0
    while kill -0 $1 2>/dev/null; do r=$(rss); [ "$r" -gt "$max" ] && max=$r; sleep 0.05; done
    local h=$(hwm)
    echo "$max kB (VmHWM $h kB, +$((h - IDLE)) kB over idle)"
}
IDLE=$(rss)
echo "idle server RSS: $IDLE kB (load: $(cut -d' ' -f1-3 /proc/loadavg))"
t0=$(date +%s.%N); timeout 300 $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q > $W/user.txt & CP=$!; M=$(sample $CP); wait $CP; t1=$(date +%s.%N)
echo "first upload 1 GiB: $(python3 -c "print(round($t1 - $t0, 2))") s, peak server RSS $M"
echo "after first upload RSS: $(rss) kB"
python3 - "$W/a/big.img" <<'PY'
import sys,os
f=open(sys.argv[1],'r+b'); f.seek(512*1024*1024+12345); f.write(os.urandom(1<<20)); f.close()
PY
t0=$(date +%s.%N); timeout 300 $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q & CP=$!; M=$(sample $CP); wait $CP; t1=$(date +%s.%N)
echo "1 MiB overwritten mid-file: $(python3 -c "print(round($t1 - $t0, 2))") s, peak server RSS $M"
grep 'delta' $W/data/connectionLog.txt | tail -1 | grep -o 'detail=.*'
head -c $((1024*1024)) /dev/urandom >> $W/a/big.img
t0=$(date +%s.%N); timeout 300 $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q & CP=$!; M=$(sample $CP); wait $CP; t1=$(date +%s.%N)
echo "1 MiB appended: $(python3 -c "print(round($t1 - $t0, 2))") s, peak server RSS $M"
grep 'delta' $W/data/connectionLog.txt | tail -1 | grep -o 'detail=.*'
cp $W/a/big.img $W/a/copy.img
t0=$(date +%s.%N); timeout 300 $BIN/cloud-client 127.0.0.1 $PORT $W/a 1 --once -q & CP=$!; M=$(sample $CP); wait $CP; t1=$(date +%s.%N)
echo "copy to a new name: $(python3 -c "print(round($t1 - $t0, 2))") s, peak server RSS $M"
grep 'delta' $W/data/connectionLog.txt | tail -1 | grep -o 'detail=.*'
U=$(cat $W/user.txt | awk '{print $3}')
cmp $W/a/big.img $W/data/AllClients/$U/big.img && echo "server copy identical"
cmp $W/a/copy.img $W/data/AllClients/$U/copy.img && echo "server copy.img identical"
kill -TERM $SP; wait $SP
rm -rf $W
