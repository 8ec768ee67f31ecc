source "$(dirname "$0")/lib.sh"; setup
A=$T/A; B=$T/B
for i in $(seq 200); do echo "v$i" > $A/f$((i%20)); done; sleep ${S:-0}; kill -9 $SPID; wait $SPID 2>/dev/null
echo "after-crash" > $A/f1; echo "B-during" > $B/g
sleep 1; $BIN/cloud-server $PORT --bind 127.0.0.1 --data-dir $T/data >>$T/server.out 2>>$T/server.err & SPID=$!
r=$(waitconv 40 | head -1)
echo "$r conflicts: $(ls $A | grep -c conflict) f1=$(cat $B/f1) g=$(cat $A/g 2>/dev/null)"
bad=0; for k in $(seq 2 19); do [ "$(cat $B/f$k)" = "v$((180+k))" ] || bad=$((bad+1)); done; echo "stale main on B: $bad/18"
teardown; echo $T
