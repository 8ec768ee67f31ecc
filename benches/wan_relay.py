#!/usr/bin/env python3
"""TCP relay for benches/wan.sh: adds a fixed delay in each direction and
counts the payload bytes it forwards each way ("bytes on the wire", without
TCP/IP headers).

    wan_relay.py --delay-ms 10 --stats FILE NAME=LISTEN_PORT:HOST:PORT ...

Each mapping listens on 127.0.0.1:LISTEN_PORT and forwards every accepted
connection to HOST:PORT. Bytes read on one side are held DELAY ms, then
written to the other side, so a request and its answer take 2 x DELAY more
than without the relay (RTT = 2 x DELAY); the rate limit is the link's (tc
tbf in wan.sh), not the relay's. At most 16 MiB is held per direction of a
connection (reading pauses beyond that), so memory is bounded whatever the
peers send.

FILE is rewritten (write to FILE.tmp, rename) after every connection opens
and closes and every 0.5 s, one line per mapping: NAME, bytes client ->
server ("up"), bytes server -> client ("down"), open connections,
connections closed so far, separated by spaces. The counters are cumulative; wan.sh takes
differences. Stops on SIGTERM/SIGINT.

--trace TRACE (optional) appends one line per event, wall-clock seconds
(time.time(), the clock of `date +%s.%N`) first, for a timeline of each
connection (benches/wan_timeline.py reads it):
    T open  NAME CONN                 a client connected to the relay
    T conn  NAME CONN                 the relay's connection to the server is up
    T read  NAME CONN up|down BYTES   bytes read from the client (up) / server (down)
    T write NAME CONN up|down BYTES   the same bytes handed to the other side's socket
    T drain NAME CONN up|down         that socket's unacknowledged bytes (SIOCOUTQ)
                                      reached 0: the peer's kernel holds every byte
                                      written so far (polled every 2 ms after a write)
    T eof   NAME CONN up|down         end of that direction
    T close NAME CONN
"""

import argparse
import asyncio
import fcntl
import os
import signal
import struct
import termios
import time

HOLD_LIMIT = 16 << 20
READ_SIZE = 256 << 10

stats = {}
stats_path = ""
trace_file = None
next_conn = 0


def trace(*fields):
    """One line of the --trace file (nothing without --trace)."""
    if trace_file is not None:
        trace_file.write(f"{time.time():.6f} " + " ".join(str(f) for f in fields) + "\n")


def outq(writer):
    """Bytes written to WRITER's socket that its peer has not acknowledged (TIOCOUTQ), or 0."""
    sock = writer.get_extra_info("socket")
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, ValueError):
        return 0


def write_stats():
    tmp = stats_path + ".tmp"
    with open(tmp, "w") as f:
        for name, st in stats.items():
            f.write(f"{name} {st['up']} {st['down']} {st['active']} {st['closed']}\n")
    os.replace(tmp, stats_path)


async def pump(reader, writer, delay, st, key, tag):
    """Copy reader to writer, each piece DELAY seconds after it was read."""
    loop = asyncio.get_running_loop()
    draining = None

    async def watch_drain():
        # Every 2 ms until the peer acknowledged all written bytes (bounded: 60 s).
        for _ in range(30000):
            if outq(writer) == 0:
                trace("drain", tag, key)
                return
            await asyncio.sleep(0.002)
    queue = asyncio.Queue()
    held = 0
    room = asyncio.Event()
    room.set()

    async def read_side():
        nonlocal held
        try:
            while True:
                await room.wait()
                data = await reader.read(READ_SIZE)
                await queue.put((loop.time() + delay, data))
                if not data:
                    trace("eof", tag, key)
                    return
                trace("read", tag, key, len(data))
                held += len(data)
                if held >= HOLD_LIMIT:
                    room.clear()
        except (ConnectionError, OSError):
            await queue.put((loop.time() + delay, b""))

    async def write_side():
        nonlocal held, draining
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
            if trace_file is not None:
                trace("write", tag, key, len(data))
                if draining is None or draining.done():
                    draining = asyncio.ensure_future(watch_drain())
            st[key] += len(data)
            held -= len(data)
            if held < HOLD_LIMIT:
                room.set()

    reading = asyncio.ensure_future(read_side())
    try:
        await write_side()
    finally:
        reading.cancel()
        if draining is not None and not draining.done():
            await asyncio.wait({draining}, timeout=5)


async def handle(name, host, port, delay, client_r, client_w):
    global next_conn
    st = stats[name]
    next_conn += 1
    tag = f"{name} {next_conn}"
    trace("open", tag)
    st["active"] += 1
    write_stats()
    try:
        server_r, server_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        st["active"] -= 1
        st["closed"] += 1
        write_stats()
        return
    trace("conn", tag)
    up = asyncio.ensure_future(pump(client_r, server_w, delay, st, "up", tag))
    down = asyncio.ensure_future(pump(server_r, client_w, delay, st, "down", tag))
    try:
        # Done when both directions ended; a reset ends both.
        done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                for p in pending:
                    p.cancel()
        if pending and all(t.exception() is None for t in done):
            # One side said EOF: give the other 10 s to finish, then cut.
            await asyncio.wait(pending, timeout=10)
            for p in pending:
                p.cancel()
    finally:
        for w in (client_w, server_w):
            try:
                w.close()
            except OSError:
                pass
        st["active"] -= 1
        st["closed"] += 1
        trace("close", tag)
        write_stats()


async def main():
    global stats_path, trace_file
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delay-ms", type=float, required=True, help="delay added in each direction")
    ap.add_argument("--stats", required=True, help="JSON counters file")
    ap.add_argument("--trace", help="append a timeline of every connection to this file")
    ap.add_argument("maps", nargs="+", help="NAME=LISTEN_PORT:HOST:PORT")
    args = ap.parse_args()
    stats_path = args.stats
    if args.trace:
        trace_file = open(args.trace, "a", buffering=1 << 20)
    delay = args.delay_ms / 1000.0
    servers = []
    for m in args.maps:
        name, rest = m.split("=", 1)
        lport, host, port = rest.split(":")
        stats[name] = {"up": 0, "down": 0, "active": 0, "closed": 0}

        def cb(r, w, name=name, host=host, port=int(port)):
            return handle(name, host, port, delay, r, w)

        servers.append(await asyncio.start_server(cb, "127.0.0.1", int(lport)))
    write_stats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("relay ready", flush=True)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except asyncio.TimeoutError:
            write_stats()
            if trace_file is not None:
                trace_file.flush()
    for s in servers:
        s.close()
    write_stats()
    if trace_file is not None:
        trace_file.close()


if __name__ == "__main__":
    asyncio.run(main())
