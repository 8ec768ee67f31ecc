# A rewrites f in a loop, kill -9, then (client stopped) mv f g / rm h, restart A.
source "$(dirname "$0")/lib.sh"; setup
A=$T/A; B=$T/B
for i in $(seq 100); do echo "f $i" > $A/f; echo "h $i" > $A/h; done; kill -9 $APID; wait $APID 2>/dev/null
mv $A/f $A/g; rm $A/h
startA; waitconv 25 >/dev/null
echo "A: $(cd $A && ls | tr '\n' '|')  f=$(cat $A/f 2>/dev/null) g=$(cat $A/g) h=$(cat $A/h 2>/dev/null)"
cmp3 | head -1
teardown; echo $T
