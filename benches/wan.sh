#!/bin/bash
# WAN benchmark (issue 11 targets 1-5, issue 12's 1 GiB TLS vs plaintext):
# CloudService and rsync side by side over one simulated WAN link, in one run.
#
#   sudo benches/wan.sh                                  # 100mbit, 20 ms RTT, medians of 3 (25-30 min a run)
#   RUNS=1 BIG_MIB=64 INS_MIB=16 FILES=200 benches/wan.sh   # a quick look (about 1 min)
#   SCENARIOS="edit insert" RATE=50mbit RTT=40 benches/wan.sh
#
# The link: two private network namespaces made here (client side, server
# side) joined by a veth pair with MTU 1500, each end's egress rate-limited
# with `tc qdisc ... tbf` (RATE each way), and a relay (benches/wan_relay.py)
# on the client side that holds every byte RTT/2 ms in each direction and
# counts the payload bytes each way: those are the "bytes" columns. The
# server side runs cloud-server (TLS, the default), a second cloud-server
# with --insecure-plaintext and an rsync daemon; the client side runs
# cloud-client and the rsync client, every one through the relay and link.
# Setting up a scenario's starting state (the file both devices already
# hold before an edit) goes straight to the server inside its namespace and
# is not measured.
#
# Scenarios (SCENARIOS, all by default), each measured for CloudService and
# for rsync (`rsync -a` to/from `rsync://`), upload from device A then
# download to device B, which already holds the previous state:
#   first     a new BIG_MIB file (1 GiB), first upload and first download  (target 5)
#   edit      1 MiB overwritten in the middle of it                          (target 1)
#   append    1 MiB appended to it                                           (target 3)
#   copy      it copied to a new name in the folder                          (target 4)
#   insert    1 MiB inserted at the start of an INS_MIB file (256 MiB)       (target 2)
#   small     FILES (10,000) new files of 4 KiB in 100 directories          (target 5)
#   plaintext the "first" upload and download with both ends --insecure-plaintext
#             (issue 12: TLS <= 1.2x plaintext)
# Times are the wall time of `cloud-client --once` (it exits once the server
# acknowledged every push / once every download is placed) and of rsync.
# "server CPU" is cloud-server's utime+stime over the step, or the rsync
# daemon's including its reaped children; "client CPU" that of the client
# (cloud-client or rsync) of the step.
#
# Needs root (ip netns, tc), iproute2, rsync, python3, `cargo build
# --release`, and about 20 GiB free under WORK (default: a new directory in
# $TMPDIR); every step is bounded by LIMIT seconds; processes started here
# are stopped by PID and the namespaces removed on exit, whatever happens.
# KEEP=1 keeps WORK/run (folders, server logs) for a look afterwards.
# TRACE=1 has the relay log every connection's reads, writes and drains
# (WORK/trace.txt) and each step's start and end (WORK/steps.txt); at the end
# benches/wan_timeline.py prints each step's timeline (connections, bursts
# each way, time after the last byte) into WORK/timeline.txt; the measured
# cloud-client runs with -v (its log: WORK/log-SCENARIO-TOOL-DIRECTION-RUN.txt).
# GEN=DIR keeps the generated files (big.img, ins.img, the 1 MiB patches,
# small/) in DIR and reuses those already there with the right size, so two
# invocations (say main's binaries, then a branch's: BIN=...) measure the
# same bytes:  GEN=/var/tmp/wan-gen BIN=/path/a/release benches/wan.sh; then
# GEN=/var/tmp/wan-gen BIN=/path/b/release benches/wan.sh. Without GEN the
# files are drawn anew in WORK/gen and removed at the end.
# Results: one TSV line per measurement in OUT (default WORK/results.tsv,
# kept), then a table of medians.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$HERE/../target/release}
RATE=${RATE:-100mbit}
RTT=${RTT:-20}
RUNS=${RUNS:-3}
BIG_MIB=${BIG_MIB:-1024}
INS_MIB=${INS_MIB:-256}
FILES=${FILES:-10000}
SCENARIOS=${SCENARIOS:-first edit append copy insert small plaintext}
LIMIT=${LIMIT:-600}
BURST=${BURST:-64kb}

die() { echo "wan.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root: it creates network namespaces (ip netns) and shapes them (tc)"
for tool in ip tc rsync python3 timeout; do
    command -v $tool > /dev/null || case $tool in
        ip|tc) die "'$tool' not found: install iproute2 (apt-get install -y iproute2)";;
        rsync) die "'rsync' not found: it is the reference; install it (apt-get install -y rsync)";;
        *) die "'$tool' not found";;
    esac
done
for b in cloud-server cloud-client; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: run cargo build --release first (or set BIN)"
done
for s in $SCENARIOS; do
    case $s in first|edit|append|copy|insert|small|plaintext) ;; *) die "unknown scenario '$s'";; esac
done

WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK" || die "cannot create $WORK"
W=$(cd "$WORK" && pwd)
OUT=${OUT:-$W/results.tsv}
GEN=${GEN:-}
G=${GEN:-$W/gen}
mkdir -p "$G" || die "cannot create $G"
G=$(cd "$G" && pwd)
NC=cswan-c$$
NS=cswan-s$$
VC=cwc$$
VS=cws$$
PIDS=()
# shellcheck source=benches/netns_link.sh
. "$HERE/netns_link.sh"
cleanup() {
    netns_stop
    [ "${KEEP:-0}" = 1 ] || rm -rf "$W/run"
    [ "${KEEP:-0}" = 1 ] || [ -n "$GEN" ] || rm -rf "$W/gen"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the link -------------------------------------------------------------
netns_link 10.77.0
LINK="$RATE each way (tc tbf, burst $BURST), ${RTT} ms round trip added by the relay, MTU 1500, veth between two network namespaces"

incli() { ip netns exec $NC "$@"; }
CSLOG=-q
[ "${TRACE:-0}" = 1 ] && CSLOG=-v # the measured client's timestamped log: WORK/log-SCENARIO-TOOL-DIRECTION-RUN.txt
insrv() { ip netns exec $NS "$@"; }
TCK=$(getconf CLK_TCK)
ticks() { # CPU ticks of $1 and its reaped children, once it has no child left (5 s at most)
    for _ in $(seq 100); do [ -z "$(cat /proc/$1/task/*/children 2> /dev/null)" ] && break; sleep 0.05; done
    awk '{print $14 + $15 + $16 + $17}' /proc/$1/stat 2> /dev/null || echo 0
}
now() { date +%s.%N; }
# CPU ticks of the client side: this shell's reaped children (the client or
# rsync run under `timeout` is waited for, so its CPU lands here).
mine() { awk '{print $16 + $17}' /proc/$$/stat; }
relay() { # relay MAPPING up|down|active: the relay's counter
    awk -v m=$1 -v f=$2 '$1 == m { print (f == "up" ? $2 : f == "down" ? $3 : $4) }' $W/relay.stats
}
settle() { # wait (at most 15 s) until the relay holds no connection of mapping $1
    for _ in $(seq 150); do [ "$(relay $1 active)" = 0 ] && return; sleep 0.1; done
    echo "  (relay: a $1 connection still open after 15 s)"
}

start_server() { # $1 name, $2 port, rest = options; sets SP_<name>
    mkdir -p $W/run/$1
    ip netns exec $NS $BIN/cloud-server $2 --bind 0.0.0.0 --data-dir $W/run/$1 -q "${@:3}" > $W/run/$1.out 2>&1 &
    PIDS+=($!)
    eval "SP_$1=$!"
    for _ in $(seq 100); do grep -q listening $W/run/$1.out 2> /dev/null && return; sleep 0.1; done
    die "cloud-server $1 did not start: $(cat $W/run/$1.out)"
}

# One measured step: measure SCENARIO TOOL DIRECTION MAPPING SERVER_PID cmd...
measure() {
    local scen=$1 tool=$2 dir=$3 map=$4 pid=$5
    shift 5
    settle $map
    local u0 d0 c0 t0 t1 u1 d1 c1 rc m0 m1
    u0=$(relay $map up); d0=$(relay $map down); c0=$(ticks $pid); m0=$(mine); t0=$(now)
    timeout $LIMIT ip netns exec $NC "$@" > $W/run/step.out 2>&1
    rc=$?
    t1=$(now); m1=$(mine)
    if [ "${TRACE:-0}" = 1 ]; then
        echo "$t0 $t1 $scen $tool $dir $run $map" >> $W/steps.txt
        cp $W/run/step.out $W/log-$scen-$tool-$dir-$run.txt
    fi
    settle $map
    u1=$(relay $map up); d1=$(relay $map down); c1=$(ticks $pid)
    local secs cpu ccpu
    secs=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")
    cpu=$(awk "BEGIN { printf \"%.2f\", ($c1 - $c0) / $TCK }")
    ccpu=$(awk "BEGIN { printf \"%.2f\", ($m1 - $m0) / $TCK }")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scen" "$tool" "$dir" "$run" "$secs" \
        $((u1 - u0)) $((d1 - d0)) "$cpu" "$ccpu" "$rc" >> "$OUT"
    printf '  %-9s %-12s %-8s %8s s  up %12d B  down %12d B  server CPU %6s s  client CPU %6s s%s\n' "$scen" "$tool" "$dir" \
        "$secs" $((u1 - u0)) $((d1 - d0)) "$cpu" "$ccpu" "$([ $rc = 0 ] || echo "  EXIT $rc: $(tail -2 $W/run/step.out)")"
}

same() { # same DIR1 DIR2: content equal, ignoring CloudService's own files
    if diff -r -q -x .cloudservice -x .cloudignore "$1" "$2" > /dev/null 2>&1; then echo identical; else echo DIFFERENT; fi
}

# Device A / B of CloudService: cs_up|cs_down SCENARIO tls|pt (TLS server
# on relay port 17000, plaintext one on 17001) and of rsync.
cs_step() { # $1 upload|download, $2 scenario, $3 tls|pt
    local dev=a port=17000 map=cs pid=$SP_srv tool=cloudservice flag=
    [ $1 = download ] && dev=b
    if [ $3 = pt ]; then dev=${dev}pt port=17001 map=cspt pid=$SP_srvpt tool=cloudservice-plaintext flag=--insecure-plaintext; fi
    measure $2 $tool $1 $map $pid $BIN/cloud-client 127.0.0.1 $port $W/run/$dev 1 --once $CSLOG $flag
}
cs_up() { cs_step upload $1 $2; }
cs_down() { cs_step download $1 $2; }
rs_up() { measure $1 rsync upload rsync $RP rsync -a $W/run/ra/$2/ rsync://127.0.0.1:18730/bench/$2/; }
rs_down() { measure $1 rsync download rsync $RP rsync -a rsync://127.0.0.1:18730/bench/$2/ $W/run/rb/$2/; }
# Starting state without the link: straight to the server, in its namespace.
cs_direct() { # $1 folder, $2 port, $3 plaintext flag, $4 user (join) or empty
    insrv timeout $LIMIT $BIN/cloud-client 127.0.0.1 $2 $1 1 $4 --once -q $3 > $W/run/direct.out 2>&1 \
        || die "direct sync of $1 failed: $(tail -3 $W/run/direct.out)"
}
rs_seed() { # $1 subdir: the same files in rsync's A, daemon and B folders
    for d in module rb; do mkdir -p $W/run/$d/$1; cp -a $W/run/ra/$1/. $W/run/$d/$1/ 2> /dev/null; done
}
check() { # check SCENARIO SUBDIR: B's copies equal A's
    echo "  $1: cloudservice A/B $(same $W/run/a/$2 $W/run/b/$2), rsync A/B $(same $W/run/ra/$2 $W/run/rb/$2)"
}
patch() { # patch FILE OFFSET|append|insert PATCHFILE
    python3 - "$@" << 'PY'
import os, sys
path, where, patch = sys.argv[1], sys.argv[2], open(sys.argv[3], 'rb').read()
if where == 'append':
    with open(path, 'ab') as f: f.write(patch)
elif where == 'insert':
    tmp = os.path.join(os.path.dirname(os.path.dirname(path)), '.insert.tmp')
    with open(path, 'rb') as src, open(tmp, 'wb') as dst:
        dst.write(patch)
        while True:
            b = src.read(1 << 22)
            if not b: break
            dst.write(b)
    os.replace(tmp, path)
else:
    with open(path, 'r+b') as f: f.seek(int(where)); f.write(patch)
PY
}

echo "WAN benchmark: $LINK; RUNS=$RUNS; BIG=${BIG_MIB} MiB, INSERT base ${INS_MIB} MiB, FILES=$FILES"
echo "commit $(git -C $HERE rev-parse --short HEAD 2> /dev/null), binaries $BIN, results $OUT"
echo "load at start: $(uptime)"

echo "test data in $G$([ -n "$GEN" ] && echo ' (GEN: files of the right size are reused)')"
has() { case " $SCENARIOS " in *" $1 "*) return 0;; esac; return 1; }
gen() { # gen FILE BYTES: random bytes, or (GEN) the file already there
    if [ -n "$GEN" ] && [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$2" ]; then
        echo "  reusing $1 ($(cksum < "$1" | cut -d' ' -f1))"
        return
    fi
    head -c "$2" /dev/urandom > "$1"
}
if has first || has edit || has append || has copy || has plaintext; then
    gen $G/big.img $((BIG_MIB << 20))
fi
has insert && gen $G/ins.img $((INS_MIB << 20))
for p in edit append insert; do gen $G/$p.patch $((1 << 20)); done
if has small && ! { [ -n "$GEN" ] && [ "$(find $G/small -type f 2> /dev/null | wc -l)" = "$FILES" ]; }; then
    rm -rf $G/small
    mkdir -p $G/small
    python3 - $G/small $FILES << 'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, 'd%02d' % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'f%05d' % i), 'wb') as f: f.write(os.urandom(4096))
PY
fi

for run in $(seq $RUNS); do
    echo "run $run/$RUNS ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
    rm -rf $W/run
    mkdir -p $W/run/a $W/run/b $W/run/apt $W/run/bpt $W/run/ra $W/run/rb $W/run/module
    start_server srv 7000
    start_server srvpt 7001 --insecure-plaintext
    printf 'use chroot = no\nuid = root\ngid = root\nmax connections = 8\n[bench]\n    path = %s\n    read only = false\n' \
        $W/run/module > $W/run/rsyncd.conf
    ip netns exec $NS rsync --daemon --no-detach --config=$W/run/rsyncd.conf --port=8730 --address=0.0.0.0 \
        --log-file=$W/run/rsyncd.log > $W/run/rsyncd.out 2>&1 &
    RP=$!
    PIDS+=($RP)
    ip netns exec $NC python3 $HERE/wan_relay.py --delay-ms $(awk "BEGIN { print $RTT / 2 }") --stats $W/relay.stats \
        $([ "${TRACE:-0}" = 1 ] && echo --trace $W/trace.txt) \
        cs=17000:10.77.0.2:7000 cspt=17001:10.77.0.2:7001 rsync=18730:10.77.0.2:8730 > $W/run/relay.out 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q ready $W/run/relay.out 2> /dev/null && [ -f $W/relay.stats ] && break; sleep 0.1; done
    grep -q ready $W/run/relay.out || die "relay did not start: $(cat $W/run/relay.out)"
    # Device A makes the user, device B joins; straight to the servers (not measured).
    cs_direct $W/run/a 7000 "" ""
    U=$(grep -o '[0-9a-f]\{32\}' $W/run/direct.out | head -1)
    [ -n "$U" ] || die "no user id from the first client: $(cat $W/run/direct.out)"
    cs_direct $W/run/b 7000 "" $U
    cs_direct $W/run/apt 7001 --insecure-plaintext ""
    UPT=$(grep -o '[0-9a-f]\{32\}' $W/run/direct.out | head -1)
    cs_direct $W/run/bpt 7001 --insecure-plaintext $UPT
    big_ready=no
    ensure_big() { # the BIG file on both devices and the server, for either tool
        [ $big_ready = yes ] && return
        mkdir -p $W/run/a/big $W/run/ra/big
        cp $G/big.img $W/run/a/big/big.img
        cp -a $W/run/a/big/big.img $W/run/ra/big/big.img
        cs_direct $W/run/a 7000 "" ""
        cs_direct $W/run/b 7000 "" ""
        rs_seed big
        big_ready=yes
    }
    for scen in $SCENARIOS; do
        case $scen in
        first)
            if [ $big_ready = no ]; then
                mkdir -p $W/run/a/big $W/run/ra/big
                # -p: the file is as old for CloudService as rsync's copy
                # below (cp -a) is for rsync. A file modified within the last
                # 300 ms is one a writer may still be at: the client waits
                # until it has seen it unchanged that long (scanner/settle.rs),
                # which rsync does not; with a fresh copy that wait was in
                # CloudService's time only (BENCHMARKS.md, issue 12's last target).
                cp -p $G/big.img $W/run/a/big/big.img
                cs_up first tls
                cs_down first tls
                cp -a $W/run/a/big/big.img $W/run/ra/big/big.img
                rs_up first big
                rs_down first big
                check first big
                big_ready=yes
            fi
            ;;
        edit | append)
            ensure_big
            if [ $scen = edit ]; then where=$(((BIG_MIB << 19) + 12345)); else where=append; fi
            patch $W/run/a/big/big.img $where $G/$scen.patch
            patch $W/run/ra/big/big.img $where $G/$scen.patch
            cs_up $scen tls
            cs_down $scen tls
            rs_up $scen big
            rs_down $scen big
            check $scen big
            ;;
        copy)
            ensure_big
            cp $W/run/a/big/big.img $W/run/a/big/copy.img
            cp $W/run/ra/big/big.img $W/run/ra/big/copy.img
            cs_up copy tls
            cs_down copy tls
            rs_up copy big
            rs_down copy big
            check copy big
            ;;
        insert)
            mkdir -p $W/run/a/ins $W/run/ra/ins
            cp $G/ins.img $W/run/a/ins/ins.img
            cp -a $W/run/a/ins/ins.img $W/run/ra/ins/ins.img
            cs_direct $W/run/a 7000 "" ""
            cs_direct $W/run/b 7000 "" ""
            rs_seed ins
            patch $W/run/a/ins/ins.img insert $G/insert.patch
            patch $W/run/ra/ins/ins.img insert $G/insert.patch
            cs_up insert tls
            cs_down insert tls
            rs_up insert ins
            rs_down insert ins
            check insert ins
            ;;
        small)
            cp -a $G/small $W/run/a/small
            cs_up small tls
            cs_down small tls
            cp -a $G/small $W/run/ra/small
            rs_up small small
            rs_down small small
            check small small
            ;;
        plaintext)
            mkdir -p $W/run/apt/big
            cp -p $G/big.img $W/run/apt/big/big.img # as old as in "first" (see there)
            cs_up plaintext pt
            cs_down plaintext pt
            echo "  plaintext: cloudservice A/B $(same $W/run/apt/big $W/run/bpt/big)"
            ;;
        esac
    done
    # Stop this run's processes before the next one deletes their folders.
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2> /dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
    done
    PIDS=()
    rm -f $W/relay.stats
done
echo "load at end: $(uptime)"
if [ "${TRACE:-0}" = 1 ] && [ -f $W/steps.txt ]; then
    python3 $HERE/wan_timeline.py $W/steps.txt $W/trace.txt > $W/timeline.txt && echo "timelines: $W/timeline.txt"
fi

python3 - "$OUT" "$LINK" << 'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter='\t'))
groups = {}
for scen, tool, d, run, secs, up, down, cpu, ccpu, rc in rows:
    g = groups.setdefault((scen, d, tool), [])
    g.append((float(secs), int(up), int(down), float(cpu), rc, float(ccpu)))
med = lambda xs: statistics.median(xs)
print(f"\nMedians ({sys.argv[2]}); bytes = payload through the relay, up = towards the server")
print("| scenario | direction | tool | runs | seconds | bytes up | bytes down | server CPU s | client CPU s | vs rsync (time / bytes) |")
print("|---|---|---|---|---|---|---|---|---|---|")
seen = []
for (scen, d, tool) in groups:
    if (scen, d) not in seen: seen.append((scen, d))
for scen, d in seen:
    ref = groups.get((scen, d, 'rsync'))
    for (s2, d2, tool), g in groups.items():
        if (s2, d2) != (scen, d): continue
        t, u, dn, c = med([x[0] for x in g]), med([x[1] for x in g]), med([x[2] for x in g]), med([x[3] for x in g])
        cc = med([x[5] for x in g])
        fails = sum(1 for x in g if x[4] != '0')
        vs = ''
        if ref and tool != 'rsync':
            rt = med([x[0] for x in ref])
            rb = med([x[1] + x[2] for x in ref])
            vs = f"{t / rt:.2f}x / {(u + dn) / max(rb, 1):.2f}x"
        tag = f" ({fails} failed)" if fails else ''
        print(f"| {scen} | {d} | {tool}{tag} | {len(g)} | {t:.2f} | {u:,.0f} | {dn:,.0f} | {c:.2f} | {cc:.2f} | {vs} |")
PY
