# A bursts writes; B (receiver) is killed -9 while downloading; B restarts.
source "$(dirname "$0")/lib.sh"; setup
A=$T/A; B=$T/B
for i in $(seq 200); do echo "v$i" > $A/f$((i%20)); mkdir -p $A/d$((i%7)); mv $A/f$((i%20)) $A/d$((i%7))/ 2>/dev/null; done; sleep ${S:-0.1}; kill -9 $BPID; wait $BPID 2>/dev/null
startB; r=$(waitconv 20 | head -1)
echo "$r conflicts: $(find $A | grep -c conflict) files: $(find $A -type f -not -path '*/.cloudservice/*' | wc -l)"
teardown; echo $T
