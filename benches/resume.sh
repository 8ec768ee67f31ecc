#!/bin/bash
# Resume after a kill (issue 11 target 7: "interrupted 1 GiB upload killed at
# ~60 % and restarted: bytes sent after the restart <= 45 % of the file").
#
#   sudo benches/resume.sh                         # 1 GiB, 200 Mbit/s, 20 ms RTT, client then server killed, RUNS=1
#   RUNS=3 MIB=256 AT=60 RATE=100mbit benches/resume.sh
#   VICTIMS=server benches/resume.sh
#
# The link is wan.sh's: two private network namespaces joined by a veth
# pair (MTU 1500), each end's egress limited with `tc ... tbf` to RATE, and
# benches/wan_relay.py on the client side adding RTT/2 ms each way and
# counting the payload bytes each way (the counts are what is judged; the
# rate only makes "60 %" hittable: the relay's counters are written every
# 0.5 s, so at 200 Mbit/s a kill lands within ~13 MB, 1.2 % of 1 GiB).
# cloud-server (TLS, the default) runs in the server namespace,
# cloud-client --once in the client namespace, both the release binaries.
#
# For each victim in VICTIMS (client, server), in a fresh data directory:
# device A makes a user (straight to the server, not measured), then a new
# MIB-MiB random file in A is uploaded through the link; once the relay
# counted AT % of the file's size gone up, the victim gets SIGKILL (killing
# the server kills the client too: a --once client would stop or retry on
# its own), the server is restarted if it was killed, and the client runs
# --once again to the end. Reported: bytes up before the restart (all that
# the relay delivered, including what it still held at the kill), bytes up
# after the restart (the target's measure), their ratio to the file size,
# the seconds and client CPU of the restarted run, the server's peak RSS
# above its idle RSS during it (sampled from /proc every 50 ms), and
# whether the server's copy equals A's (cmp).
#
# Needs root (ip netns, tc), iproute2, python3, `cargo build --release`, and
# about 3 x MIB MiB free under WORK (default: a new directory in $TMPDIR).
# Every wait is bounded (LIMIT seconds, 600); processes are stopped by PID
# and the namespaces removed on exit. Results: one TSV line per measurement
# in WORK/results.tsv (kept), and a summary.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$HERE/../target/release}
RATE=${RATE:-200mbit}
RTT=${RTT:-20}
RUNS=${RUNS:-1}
MIB=${MIB:-1024}
AT=${AT:-60}
VICTIMS=${VICTIMS:-client server}
LIMIT=${LIMIT:-600}
BURST=${BURST:-64kb}

die() { echo "resume.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root: it creates network namespaces (ip netns) and shapes them (tc)"
for tool in ip tc python3 timeout cmp; do command -v $tool > /dev/null || die "'$tool' not found"; done
for b in cloud-server cloud-client; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: run cargo build --release first (or set BIN)"
done
for v in $VICTIMS; do case $v in client|server) ;; *) die "unknown victim '$v'";; esac; done

WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK" || die "cannot create $WORK"
W=$(cd "$WORK" && pwd)
OUT=$W/results.tsv
NC=csres-c$$
NS=csres-s$$
VC=crc$$
VS=crs$$
PIDS=()
# shellcheck source=benches/netns_link.sh
. "$HERE/netns_link.sh"
cleanup() {
    netns_stop
    rm -rf "$W/run" "$W/big.img"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the link (as benches/wan.sh) ------------------------------------------
netns_link 10.77.1
LINK="$RATE each way (tc tbf, burst $BURST), ${RTT} ms round trip added by the relay, MTU 1500, veth between two network namespaces"

TCK=$(getconf CLK_TCK)
now() { date +%s.%N; }
mine() { awk '{print $16 + $17}' /proc/$$/stat; }   # CPU ticks of this shell's reaped children
up() { awk '$1 == "cs" { print $2 }' $W/relay.stats; }
active() { awk '$1 == "cs" { print $4 }' $W/relay.stats; }
settle() { # until the relay holds no connection (15 s at most)
    for _ in $(seq 150); do [ "$(active)" = 0 ] && return; sleep 0.1; done
    echo "  (relay: a connection still open after 15 s)"
}
rss() { awk '/VmRSS/ { print $2 }' /proc/$1/status 2> /dev/null || echo 0; }

SP=
start_server() { # in the server namespace on port 7000, data in $W/run/data; sets SP
    : > $W/run/server.out
    ip netns exec $NS $BIN/cloud-server 7000 --bind 0.0.0.0 --data-dir $W/run/data -q >> $W/run/server.out 2>&1 &
    SP=$!
    PIDS+=($SP)
    for _ in $(seq 100); do grep -q listening $W/run/server.out 2> /dev/null && return; sleep 0.1; done
    die "cloud-server did not start: $(cat $W/run/server.out)"
}

echo "resume benchmark: $LINK; ${MIB} MiB, kill at ${AT} %, victims: $VICTIMS; RUNS=$RUNS"
echo "commit $(git -C $HERE rev-parse --short HEAD 2> /dev/null), binaries $BIN, results $OUT"
echo "load at start: $(uptime)"
SIZE=$((MIB << 20))
head -c $SIZE /dev/urandom > $W/big.img || die "cannot write $W/big.img"
CUT=$((SIZE * AT / 100))

ip netns exec $NC python3 $HERE/wan_relay.py --delay-ms $(awk "BEGIN { print $RTT / 2 }") --stats $W/relay.stats \
    cs=17000:10.77.1.2:7000 > $W/relay.out 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready $W/relay.out 2> /dev/null && [ -f $W/relay.stats ] && break; sleep 0.1; done
grep -q ready $W/relay.out || die "relay did not start: $(cat $W/relay.out)"

for run in $(seq $RUNS); do
    for victim in $VICTIMS; do
        echo "run $run/$RUNS, $victim killed ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
        rm -rf $W/run
        mkdir -p $W/run/a $W/run/data
        start_server
        echo seed > $W/run/a/seed.txt
        ip netns exec $NS timeout $LIMIT $BIN/cloud-client 127.0.0.1 7000 $W/run/a 1 --once -q > $W/run/user.out 2>&1 \
            || die "the user could not be made: $(tail -3 $W/run/user.out)"
        U=$(grep -o '[0-9a-f]\{32\}' $W/run/user.out | head -1)
        [ -n "$U" ] || die "no user id: $(cat $W/run/user.out)"
        cp $W/big.img $W/run/a/big.img
        settle
        u0=$(up)
        t0=$(now)
        # Not through a shell function: $! must be the client itself (ip netns exec execs it).
        ip netns exec $NC $BIN/cloud-client 127.0.0.1 17000 $W/run/a 1 --once -q > $W/run/first.out 2>&1 &
        CP=$!
        PIDS+=($CP)
        moved=0
        while :; do
            moved=$(( $(up) - u0 ))
            [ $moved -ge $CUT ] && break
            kill -0 $CP 2> /dev/null || die "the upload ended before ${AT} % crossed ($moved bytes): $(tail -3 $W/run/first.out)"
            awk "BEGIN { exit !($(now) - $t0 > $LIMIT) }" && die "the upload stalled at $moved bytes"
            sleep 0.05
        done
        if [ $victim = server ]; then kill -KILL $SP; fi
        kill -KILL $CP 2> /dev/null
        wait $CP 2> /dev/null
        [ $victim = server ] && wait $SP 2> /dev/null
        settle
        before=$(( $(up) - u0 ))
        [ $victim = server ] && start_server
        idle=$(rss $SP)
        u1=$(up)
        m0=$(mine)
        t1=$(now)
        timeout $LIMIT ip netns exec $NC $BIN/cloud-client 127.0.0.1 17000 $W/run/a 1 --once -q > $W/run/second.out 2>&1 &
        CP=$!
        peak=$idle
        while kill -0 $CP 2> /dev/null; do
            r=$(rss $SP)
            [ "$r" -gt "$peak" ] && peak=$r
            sleep 0.05
        done
        wait $CP
        rc=$?
        t2=$(now)
        m1=$(mine)
        settle
        after=$(( $(up) - u1 ))
        same=DIFFERENT
        cmp -s $W/run/a/big.img $W/run/data/AllClients/$U/big.img && same=identical
        secs=$(awk "BEGIN { printf \"%.2f\", $t2 - $t1 }")
        ccpu=$(awk "BEGIN { printf \"%.2f\", ($m1 - $m0) / $TCK }")
        ratio=$(awk "BEGIN { printf \"%.1f\", 100 * $after / $SIZE }")
        bratio=$(awk "BEGIN { printf \"%.1f\", 100 * $before / $SIZE }")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$victim" "$SIZE" "$moved" "$before" "$after" "$ratio" \
            "$secs" "$ccpu" $((peak - idle)) "$rc" "$same" >> $OUT
        printf '  %-6s killed at %s B crossed, %s B (%s %%) delivered before the restart; after the restart %s B = %s %% of the file in %s s (client CPU %s s), server RSS +%s kB over idle %s kB, exit %s, server copy %s\n' \
            $victim "$moved" "$before" "$bratio" "$after" "$ratio" "$secs" "$ccpu" $((peak - idle)) "$idle" "$rc" "$same"
        [ $rc = 0 ] || echo "    second run's last lines: $(tail -3 $W/run/second.out)"
        kill -TERM $SP
        wait $SP 2> /dev/null
    done
done

echo "summary (run, victim, size, bytes at the kill, bytes before restart, bytes after, after/size %, s, client CPU s, server RSS kB over idle, exit, copy):"
cat $OUT
echo "target 7: bytes after the restart <= 45 % of the file"
awk -F'\t' '{ v = ($7 <= 45 && $11 == 0 && $12 == "identical") ? "met" : "MISSED"; printf "  run %s, %s killed: %s %% -> %s\n", $1, $2, $7, v }' $OUT
echo "load at end: $(uptime)"
