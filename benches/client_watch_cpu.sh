#!/usr/bin/env bash
# The cost of a client watching a large, quiet folder: the average CPU of
# one `cloud-client` (utime + stime from /proc/PID/stat) over a window, with
# its periodic full stat comparison (the safety-net rescan) and its pulls.
#
#   cargo build --release
#   bash benches/client_watch_cpu.sh [FILES] [SECONDS] [PULLING_RATE]
#
# Defaults: 10000 files (100 directories of 100), 300 s, pulling every 0.5 s.
# Prints the client's CPU share of one core and the duration of every full
# comparison it logged. Loopback only; stops what it started, by PID.
set -euo pipefail

files=${1:-10000}
seconds=${2:-300}
rate=${3:-0.5}
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d /tmp/cs-watch-cpu.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/data" "$work/folder"
"$bin/cloud-server" "$port" --bind 127.0.0.1 --data-dir "$work/data" -q >/dev/null 2>&1 &
pids+=($!)
sleep 0.5

dirs=$(( (files + 99) / 100 ))
for d in $(seq 1 "$dirs"); do
    mkdir -p "$work/folder/d$d"
    for f in $(seq 1 100); do
        n=$(( (d - 1) * 100 + f ))
        [ "$n" -le "$files" ] || break
        printf 'file %d\n' "$n" > "$work/folder/d$d/f$f.txt"
    done
done
sleep 1
"$bin/cloud-client" 127.0.0.1 "$port" "$work/folder" "$rate" --once -q >/dev/null

"$bin/cloud-client" 127.0.0.1 "$port" "$work/folder" "$rate" -v 2>"$work/client.log" &
client=$!
pids+=("$client")
# Let the start-up comparison and the first rehash of just-written records pass.
sleep 5

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$client/stat"; }
start_cpu=$(cpu)
start=$(date +%s.%N)
sleep "$seconds"
end_cpu=$(cpu)
end=$(date +%s.%N)

python3 - "$start_cpu" "$end_cpu" "$start" "$end" "$ticks" "$files" "$rate" <<'EOF'
import sys
c0, c1, t0, t1, hz, files, rate = sys.argv[1:]
used = (int(c1) - int(c0)) / int(hz)
wall = float(t1) - float(t0)
print(f"files {files}, pulling every {rate} s, window {wall:.0f} s: "
      f"client CPU {used:.2f} s = {100 * used / wall:.3f} % of one core")
EOF
echo "full comparisons logged (whole run):"
grep -o 'compared [0-9]* paths with the index in [0-9.]* ms' "$work/client.log" || true
