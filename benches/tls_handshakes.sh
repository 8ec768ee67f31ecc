#!/bin/bash
# Full TLS handshakes per second of one core, and pull latency at 1,900
# pulls/s, TLS against --insecure-plaintext (issue 12).
#
# Handshakes: one cloud-load opens 10,000 connections (TCP, TLS 1.3 full
# handshake, Hello, Welcome) over 100 users; the CPU time (utime + stime,
# /proc/PID/task/PID/stat) of the server's reactor thread (the main thread:
# it accepts, runs every TLS handshake and routes the Hello; the actors'
# Hello/Welcome work is on their own threads) is read before and after,
# which is not skewed by other processes the way wall time is on a shared
# machine. Reactor CPU per connection, TLS minus plaintext, is the cost of
# one handshake; 1 / that is handshakes per second of one core.
# Pulls: 1,900 connections over 190 users, one pull each per second for
# DURATION s; cloud-load's round-trip p50 / p99 (wall time: on a shared
# machine its p99 follows the machine's load), and the reactor's CPU per
# pull over the measure phase (after setup, from the go-file on).
# Prints one line per run and mode, then the medians over RUNS runs.
# Needs `cargo build --release` first. Stops only the PIDs it started.
#   benches/tls_handshakes.sh            # RUNS=3 DURATION=20
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
N=${N:-10000}
W=$(mktemp -d)
TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' /proc/$1/task/$1/stat; }
start() { # $1 = data dir, rest = server options; sets SP PORT
    # cloud-load runs up to 512 handshakes at once from one address:
    # above the server's per-address bound (PROTOCOL.md R-3.5.5).
    $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $1 -q --max-handshakes-per-address 100000 "${@:2}" > $1.out 2>&1 &
    SP=$!
    for _ in $(seq 100); do grep -q listening $1.out 2>/dev/null && break; sleep 0.1; done
    PORT=$(grep -m1 listening $1.out | grep -o '[0-9]*$')
}
field() { grep -o "$1 | [0-9.]* / [0-9.]*" $2 | grep -o '[0-9.]* / [0-9.]*$'; }
: > $W/results
for run in $(seq $RUNS); do
    for mode in tls plaintext; do
        extra=()
        [ $mode = plaintext ] && extra=(--insecure-plaintext)
        rm -rf $W/data; mkdir -p $W/data
        start $W/data "${extra[@]}"
        c0=$(cpu $SP)
        timeout 600 $BIN/cloud-load 127.0.0.1 $PORT -n $N -u $((N / 100)) -r 600 -d 1 \
            --connect-rate 100000 --max-handshakes 512 "${extra[@]}" > $W/load.out 2>&1
        c1=$(cpu $SP)
        held=$(grep -o 'connections held (end / after setup / asked) | [0-9]* / [0-9]*' $W/load.out \
            | grep -o '[0-9]*$')
        rm -f $W/go
        timeout 600 $BIN/cloud-load 127.0.0.1 $PORT -n 1900 -u 190 -r 1 -d $DURATION \
            --go-file $W/go "${extra[@]}" > $W/pull.out 2>&1 &
        LP=$!
        for _ in $(seq 3000); do
            grep -q connected $W/pull.out && break
            kill -0 $LP 2>/dev/null || break
            sleep 0.1
        done
        c2=$(cpu $SP)
        touch $W/go
        wait $LP
        c3=$(cpu $SP)
        pulls=$(grep -o 'pulls completed | [0-9]*' $W/pull.out | grep -o '[0-9]*$')
        us=$(python3 -c "print(f'{($c3 - $c2) / $TCK * 1e6 / max(${pulls:-0}, 1):.1f}')")
        p50=$(grep -o 'pull round trip p50 (ms) | [0-9.]*' $W/pull.out | grep -o '[0-9.]*$')
        p99=$(grep -o 'pull round trip p99 (ms) | [0-9.]*' $W/pull.out | grep -o '[0-9.]*$')
        rate=$(grep -o 'pulls/s | [0-9.]*' $W/pull.out | grep -o '[0-9.]*$')
        ms=$(python3 -c "print(f'{($c1 - $c0) / $TCK * 1000 / max(${held:-0}, 1):.3f}')")
        echo "$mode run $run: reactor CPU $ms ms per connection (${held:-0} held);" \
            "pulls ${rate:-?}/s p50 ${p50:-?} ms p99 ${p99:-?} ms, reactor CPU $us us per pull"
        echo "$mode $ms ${p50:-nan} ${p99:-nan} $us" >> $W/results
        kill -TERM $SP; wait $SP
    done
done
python3 - $W/results <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {}
for mode in ("tls", "plaintext"):
    cols = [[float(x) for x in r[1:]] for r in rows if r[0] == mode]
    med[mode] = [statistics.median(c) for c in zip(*cols)]
    print(f"{mode}: median reactor CPU {med[mode][0]:.3f} ms per connection, "
          f"pull p50 {med[mode][1]:.2f} ms, p99 {med[mode][2]:.2f} ms, reactor "
          f"{med[mode][3]:.1f} us per pull over {len(cols)} runs")
extra = med["tls"][0] - med["plaintext"][0]
print(f"TLS handshake: {extra:.3f} ms of reactor CPU = {1000 / extra:.0f} handshakes/s on one core"
      if extra > 0 else "TLS handshake cost not above plaintext noise")
print(f"pull p99 TLS / plaintext: {med['tls'][2] / med['plaintext'][2]:.2f}")
EOF
rm -rf $W
