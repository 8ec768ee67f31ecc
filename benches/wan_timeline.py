#!/usr/bin/env python3
"""Timeline of each measured step of a `TRACE=1 benches/wan.sh` run.

    benches/wan_timeline.py WORK/steps.txt WORK/trace.txt [GAP_MS]

steps.txt (written by wan.sh with TRACE=1): one line per step,
`T0 T1 SCENARIO TOOL DIRECTION RUN MAPPING` (wall-clock seconds).
trace.txt: the relay's --trace lines (benches/wan_relay.py).

For every step it prints, in seconds from the step's start (wan.sh's clock
before `ip netns exec`), each connection of the step's relay mapping: when it
opened, then its traffic as bursts (reads in one direction with no read
the other way in between): start, end, bytes, reads, and the longest gap
between two reads of the burst when it is longer than GAP_MS (default 50 ms); for the burst's writes to the far side the last
write and when the far side's kernel had acknowledged all of them ("drain"),
then the end of each direction and the close; last, the step's end (the
command exited). All times are at the relay, which holds bytes RTT/2 each way:
a byte read from the client at t reaches the server's link at t + RTT/2.

Each step ends with a summary line: "before the data" (from the step's start
to the first read of the transfer's direction in a burst of more than 1 MB),
"data" (from there until the far side acknowledged the last byte of the last
such burst, with its bytes and rate) and "after the data" (from that moment
until the command exited).
"""
import sys


def main():
    steps_path, trace_path = sys.argv[1], sys.argv[2]
    gap = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.05
    steps = []
    for line in open(steps_path):
        f = line.split()
        if len(f) >= 7:
            steps.append((float(f[0]), float(f[1]), f[2], f[3], f[4], f[5], f[6]))
    events = []
    for line in open(trace_path):
        f = line.split()
        if len(f) >= 4:
            events.append((float(f[0]), f[1], f[2], f[3], f[4:]))
    events.sort(key=lambda e: e[0])
    for t0, t1, scen, tool, d, run, mapping in steps:
        print(f"== {scen} {tool} {d} run {run}: {t1 - t0:.3f} s")
        # A connection is its number from its "open" in the step to its
        # "close": each run of wan.sh starts a new relay, whose numbers
        # start again at 1 in the same trace file.
        conns = []
        for t, kind, name, conn, rest in events:
            if kind == "open" and name == mapping and t0 <= t <= t1:
                closed = next((e[0] for e in events if e[0] >= t and e[1] == "close"
                               and e[2] == mapping and e[3] == conn), float("inf"))
                conns.append((conn, t, closed))
        summary = None
        for conn, opened, closed in conns:
            evs = [e for e in events
                   if e[2] == mapping and e[3] == conn and opened <= e[0] <= closed]
            bursts = []  # [dir, start, end, bytes, reads, last_write, writes_bytes]
            cur = None
            for t, kind, name, c, rest in evs:
                rel = t - t0
                if kind in ("open", "conn", "close"):
                    print(f"   {rel:9.3f}  {kind} (connection {conn})")
                elif kind == "eof":
                    print(f"   {rel:9.3f}  eof {rest[0]}")
                elif kind == "read":
                    dr, n = rest[0], int(rest[1])
                    if cur is None or cur[0] != dr:
                        cur = [dr, rel, rel, 0, 0, None, None, (0.0, 0.0)]
                        bursts.append(cur)
                    if rel - cur[2] > cur[7][0]:
                        cur[7] = (rel - cur[2], cur[2])
                    cur[2] = rel
                    cur[3] += n
                    cur[4] += 1
                elif kind == "write":
                    dr = rest[0]
                    for b in reversed(bursts):
                        if b[0] == dr:
                            b[5] = rel
                            break
                elif kind == "drain":
                    dr = rest[0]
                    for b in reversed(bursts):
                        if b[0] == dr:
                            b[6] = rel
                            break
            big = [b for b in bursts if b[3] > 1_000_000]
            if big:
                end = big[-1][6] if big[-1][6] is not None else big[-1][5]
                if end is not None:
                    summary = (big[0][1], end, sum(b[3] for b in big))
            for dr, s, e, n, reads, lw, dn, (g, gat) in bursts:
                rate = f", {n / (e - s) / 1e6:.2f} MB/s read" if e - s > 0.5 else ""
                rate += f", longest gap {g:.3f} s after {gat:.3f}" if g > gap else ""
                w = f"; last write {lw:.3f}" if lw is not None else ""
                w += f", drained {dn:.3f}" if dn is not None else ""
                print(f"   {s:9.3f} -> {e:9.3f}  {dr:4} {n:>13,} B in {reads} reads{rate}{w}")
        print(f"   {t1 - t0:9.3f}  step ends (command exited)")
        if summary:
            b0, b1, nb = summary
            print(f"   summary: before the data {b0:.3f} s, data {b1 - b0:.3f} s ({nb:,} B, "
                  f"{nb / (b1 - b0) / 1e6:.3f} MB/s), after the data {t1 - t0 - b1:.3f} s")


if __name__ == "__main__":
    main()
