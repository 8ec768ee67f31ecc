#!/bin/bash
# Idle memory per connection, TLS against --insecure-plaintext (issue 12):
# a server holding N connections (default 19,000 over N/10 users) opened by
# one cloud-load that stays silent until its go-file appears. The server's
# RSS is read before the load, and SETTLE seconds after setup (past the 30 s
# actor retirement, so what remains is the cost of the connections).
# Prints one line per run and the median of RUNS runs per transport.
# Needs `cargo build --release` first. Stops only the PIDs it started.
#   benches/tls_idle.sh            # N=19000 RUNS=3 SETTLE=35
#   N=5000 RUNS=1 benches/tls_idle.sh
set -u
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release}
N=${N:-19000}
RUNS=${RUNS:-3}
SETTLE=${SETTLE:-35}
MODES=${MODES:-"tls plaintext"}
rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }

one_run() { # $1 = tls | plaintext; prints "KiB/conn setup_s"
    local W extra SP LP PORT r0 r1 t0 t1 held
    W=$(mktemp -d)
    extra=()
    [ "$1" = plaintext ] && extra=(--insecure-plaintext)
    # cloud-load runs up to 512 handshakes at once from one address:
    # above the server's per-address bound (PROTOCOL.md R-3.5.5).
    $BIN/cloud-server 0 --bind 127.0.0.1 --data-dir $W/data -q --max-handshakes-per-address 100000 "${extra[@]}" > $W/server.out 2>&1 &
    SP=$!
    for _ in $(seq 100); do grep -q listening $W/server.out && break; sleep 0.1; done
    PORT=$(grep -m1 listening $W/server.out | grep -o '[0-9]*$')
    sleep 1
    r0=$(rss $SP)
    t0=$(date +%s.%N)
    $BIN/cloud-load 127.0.0.1 $PORT -n $N -u $((N / 10)) -r 600 -d 1 \
        --connect-rate 100000 --max-handshakes 512 --setup-timeout 240 \
        --go-file $W/go "${extra[@]}" > $W/load.out 2>&1 &
    LP=$!
    for _ in $(seq 2400); do
        grep -q connected $W/load.out && break
        kill -0 $LP 2>/dev/null || break
        sleep 0.1
    done
    t1=$(date +%s.%N)
    sleep $SETTLE
    r1=$(rss $SP)
    touch $W/go
    wait $LP
    held=$(grep -o 'connected held=[0-9]*' $W/load.out | head -1 | grep -o '[0-9]*$')
    kill -TERM $SP
    wait $SP
    python3 -c "print(f'{($r1 - $r0) / ${held:-0}:.2f} {$t1 - $t0:.1f} ${held:-0} $r0 $r1')" 2>/dev/null \
        || echo "failed: $(tail -3 $W/load.out)"
    rm -rf $W
}

for mode in $MODES; do
    results=()
    for i in $(seq $RUNS); do
        line=$(one_run $mode)
        echo "$mode run $i: KiB/conn setup_s held rss_before_kB rss_after_kB = $line"
        results+=("$(echo $line | awk '{print $1}')")
    done
    printf '%s\n' "${results[@]}" | sort -n | awk -v m=$mode '{a[NR]=$1} END {print m ": median " a[int((NR+1)/2)] " KiB per idle connection over " NR " runs"}'
done
