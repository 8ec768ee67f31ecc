# A rewrites 20 files in a tight loop, is killed -9 right after, then restarted (no other device writes).
source "$(dirname "$0")/lib.sh"; setup
A=$T/A; B=$T/B
for i in $(seq 200); do echo "burst $i" > $A/burst$((i%20)); done; kill -${SIG:-9} $APID; wait $APID 2>/dev/null
startA; waitconv 25 >/dev/null
echo "conflict copies: $(ls $A | grep -c conflict)"; 
bad=0; for k in $(seq 0 19); do i=$((180+k)); [ $k = 0 ] && i=200; [ "$(cat $A/burst$k)" = "burst $i" ] || { bad=$((bad+1)); echo "  burst$k = '$(cat $A/burst$k)' expected 'burst $i'"; }; done; echo "wrong main content: $bad/20"
cmp3 | head -1
teardown; echo $T
