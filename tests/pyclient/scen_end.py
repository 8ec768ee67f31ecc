"""Server-initiated closes (§4.5, §9.1): the handshake Timeout of a silent and
of a half-sent Hello, and ShuttingDown on SIGTERM with an upload open (which
must be discarded). Both Errors carry request ID 0."""

from __future__ import annotations

import os
import signal
import time

import blake3

import wire
from conn import Closed, Conn
from ctx import Ctx
from scen_push import upload
from server import Server
from verdict import expect, log

HANDSHAKE_TIMEOUT = 10.0


def open_silent(ctx: Ctx) -> tuple[list[Conn], float]:
    """Opened at the start; checked by `handshake_timeouts` at the end."""
    silent = ctx.connect("silent")
    half = ctx.connect("half-hello")
    half.send(wire.hello(1, wire.NEW_USER, bytes(16), 0)[:20])
    return [silent, half], time.monotonic()


def closing_error(conn: Conn, code: int, section: str, timeout: float) -> float:
    try:
        frm, value = conn.read_frame(timeout)
    except Closed as err:
        expect(False, section, f"[{conn.label}] closed without Error "
               f"{wire.error_name(code)} ({err})")
        return time.monotonic()
    when = time.monotonic()
    expect(frm.kind == wire.ERROR and value[0] == code and frm.rid == 0, section,
           f"[{conn.label}] expected Error {wire.error_name(code)} rid 0, got "
           f"{frm.name()} rid {frm.rid} {value!r}")
    conn.expect_closed(section)
    conn.close()
    return when


def handshake_timeouts(ctx: Ctx, conns: list[Conn], opened: float) -> None:
    for conn in conns:
        when = closing_error(conn, wire.CODE["Timeout"], "§8 R-9.1.3", HANDSHAKE_TIMEOUT + 10)
        took = when - opened
        expect(HANDSHAKE_TIMEOUT - 0.5 <= took, "§8 R-9.1.3", f"[{conn.label}] handshake "
               f"Timeout after {took:.1f} s, the spec gives 10 s")
        log(f"ok   [{conn.label}] Error Timeout rid 0 after {took:.1f} s, closed")


def shutdown(ctx: Ctx) -> None:
    ready = ctx.resume("ready-at-shutdown", 1)
    uploading = ctx.resume("uploading-at-shutdown", 2)
    data = b"never complete"
    uploading.send(wire.file_begin(1000, 0, len(data), blake3.blake3(data).digest(),
                                   "half-upload.txt")
                   + wire.frame(wire.FILE_CHUNK, 1000, data[:5]))
    uploading.ping()  # the FileBegin has been read; Ping is legal in Upload
    upload(ctx, ready, "pushed-during-an-upload.txt", b"Notify reaches Upload(R) too\n")
    notes = uploading.drain_notifies(10.0, until=ctx.head)
    expect(ctx.head in notes, "§9.1 R-9.1.3", f"a connection in phase Upload got Notifies "
           f"{notes}, expected head {ctx.head}")
    os.kill(ctx.server.proc.pid, signal.SIGTERM)
    for conn in (ready, uploading):
        closing_error(conn, wire.CODE["ShuttingDown"], "§9.1 R-9.1.3", 15)
    status = ctx.server.stop()
    expect(status == 0, "README", f"server exited {status} after SIGTERM")
    expect(not os.path.lexists(os.path.join(ctx.server.mirror(ctx.user_hex),
                                            "half-upload.txt")),
           "§9.1 R-9.1.3", "an upload open at shutdown was stored")
    ctx.check_mirror("the shutdown")
    log("ok   SIGTERM: Error ShuttingDown rid 0 to each connection, open upload "
        "discarded, exit 0")


def busy(binary: str, data_dir: str) -> None:
    """A server at --max-connections 2: the third connection gets Error Busy
    (request ID 0) before any Hello, then a close (§4.5, README)."""
    os.makedirs(data_dir)
    server = Server(binary, data_dir, ["--max-connections", "2"])
    try:
        held = [Conn(server.port, f"held-{i}") for i in range(2)]
        for conn in held:
            expect(conn.hello(wire.NEW_USER, bytes(16), 0)[0].kind == wire.WELCOME,
                   "§4.1 R-4.1.3", "NewUser refused below the connection limit")
        extra = Conn(server.port, "over-limit")
        closing_error(extra, wire.CODE["Busy"], "§4.5 R-9.1.1", 10)
        for conn in held:
            conn.close()
        log("ok   --max-connections 2: the third connection got Error Busy rid 0, closed")
    finally:
        status = server.stop()
    expect(status == 0, "README", f"second server exited {status} after SIGTERM")
