source "$(dirname "$0")/lib.sh"; setup
A=$T/A
for i in $(seq ${N:-5}); do echo "v$i" > $A/f$((i%${K:-1})); done; sleep ${S:-0}; kill -9 $APID; wait $APID 2>/dev/null
startA; waitconv 15 >/dev/null
echo "conflicts: $(ls $A | grep -c conflict) files: $(ls $A | wc -l)"
teardown
