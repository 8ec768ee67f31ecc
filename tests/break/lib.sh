# source me. Sets up server + two clients A, B of one user in a fresh temp dir.
BIN=${BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/release}
RATE=${RATE:-0.5}
setup() {
  T=$(mktemp -d /tmp/brk.XXXXXX); mkdir -p $T/data $T/A $T/B
  $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $T/data >$T/server.out 2>$T/server.err & SPID=$!
  for i in $(seq 50); do PORT=$(grep -o 'listening on [0-9.]*:[0-9]*' $T/server.out | sed 's/.*://'); [ -n "$PORT" ] && break; sleep 0.1; done
  startA; for i in $(seq 100); do ID=$(grep -o 'user id: [0-9a-f]*' $T/A.out | awk '{print $3}'); [ -n "$ID" ] && break; sleep 0.1; done
  startB "$ID"; sleep 1.5
}
startA() { $BIN/cloud-client 127.0.0.1 $PORT $T/A $RATE $1 -v >>$T/A.out 2>>$T/A.err & APID=$!; }
startB() { $BIN/cloud-client 127.0.0.1 $PORT $T/B $RATE $1 -v >>$T/B.out 2>>$T/B.err & BPID=$!; }
tree() { (cd $1 && find . -path ./.cloudservice -prune -o -print | sort | while read f; do if [ -d "$f" ]; then echo "D $f"; elif [ -L "$f" ]; then echo "L $f"; else echo "F $f $(md5sum <"$f" | cut -c1-8)"; fi; done); }
cmp3() { tree $T/A >$T/ta; tree $T/B >$T/tb; tree $T/data/AllClients/$ID >$T/ts; if diff -q $T/ta $T/tb >/dev/null && diff -q $T/ta $T/ts >/dev/null; then echo SAME; return 0; else echo DIFF; diff $T/ta $T/tb | sed 's/^/AB /'; diff $T/ta $T/ts | sed 's/^/AS /'; return 1; fi; }
waitconv() { for i in $(seq ${1:-20}); do sleep 1; cmp3 >/dev/null && { echo "SAME after ${i}s"; return 0; }; done; cmp3; }
teardown() { kill $APID $BPID 2>/dev/null; sleep 0.5; kill $SPID 2>/dev/null; wait 2>/dev/null; }
# check that content (md5 prefix) exists somewhere in dir
hascontent() { tree $1 | grep -q " ${2:0:8}\$"; }
