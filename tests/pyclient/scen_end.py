"""Server-initiated closes (§4.5, §9.1): the handshake Timeout of a silent and
of a half-sent Hello, and ShuttingDown on SIGTERM with an upload open (which
must be discarded). Both Errors carry request ID 0. Under TLS also a TCP
connection that never sends its ClientHello (closed by the same timeout,
R-12.4.3), and Busy sent in plaintext before any TLS (R-12.4.5)."""

from __future__ import annotations

import os
import signal
import socket
import time

import blake3

import scen_tls
import tlslayer
import wire
from conn import Closed, Conn
from ctx import Ctx
from scen_push import upload
from server import Server
from verdict import expect, log

HANDSHAKE_TIMEOUT = 10.0


def open_silent(ctx: Ctx) -> tuple[list[Conn], float]:
    """Opened at the start; checked by `handshake_timeouts` at the end.
    Under TLS a bare TCP connection (no ClientHello) is opened too: it is
    the last of the list."""
    silent = ctx.connect("silent")
    half = ctx.connect("half-hello")
    half.send(wire.hello(1, wire.NEW_USER, bytes(16), 0)[:20])
    conns = [silent, half]
    if ctx.trust is not None:
        conns.append(Conn(ctx.server.port, "no-client-hello"))
    return conns, time.monotonic()


def closed_silently(conn: Conn, timeout: float) -> float:
    """A connection whose TLS never started can only be closed (R-12.4.3):
    EOF, or a reset, with no frame; returns when."""
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = conn.sock.recv(4096)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not data:
            break
        got += data
    when = time.monotonic()
    expect(when < deadline, "§12.4 R-12.4.3", f"[{conn.label}] not closed within {timeout} s")
    expect(got[:2] != b"CS", "§12.4 R-12.4.3",
           f"[{conn.label}] a frame in clear before any TLS: {got[:16].hex()}")
    conn.close()
    return when


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
        if conn.tls is None and ctx.trust is not None:
            when = closed_silently(conn, HANDSHAKE_TIMEOUT + 10)
            took = when - opened
            expect(HANDSHAKE_TIMEOUT - 0.5 <= took, "§12.4 R-12.4.3", f"[{conn.label}] "
                   f"closed after {took:.1f} s, the spec gives 10 s")
            log(f"ok   [{conn.label}] no ClientHello: closed after {took:.1f} s")
            continue
        when = closing_error(conn, wire.CODE["Timeout"], "§8 R-9.1.3", HANDSHAKE_TIMEOUT + 10)
        took = when - opened
        expect(HANDSHAKE_TIMEOUT - 0.5 <= took, "§8 R-9.1.3", f"[{conn.label}] handshake "
               f"Timeout after {took:.1f} s, the spec gives 10 s")
        log(f"ok   [{conn.label}] Error Timeout rid 0 after {took:.1f} s, closed")


def shutdown(ctx: Ctx) -> None:
    ready = ctx.resume("ready-at-shutdown", 1, visit=True)
    uploading = ctx.resume("uploading-at-shutdown", 2, visit=True)
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


def busy(binary: str, data_dir: str, first_trust: tlslayer.Trust) -> None:
    """A TLS server at --max-connections 2: the third connection gets Error
    Busy (request ID 0) in plaintext instead of a ServerHello (R-12.4.5),
    then a close (§4.5, README). This server has its own certificate: the
    trust recorded with the first server refuses it (R-12.2.3)."""
    os.makedirs(data_dir)
    server = Server(binary, data_dir, ["--max-connections", "2"])
    try:
        scen_tls.other_certificate(first_trust, server)
        trust = tlslayer.Trust(os.path.join(data_dir, "..", "busy-known"), server.fingerprint)
        held = [Conn(server.port, f"held-{i}", trust=trust) for i in range(2)]
        for conn in held:
            expect(conn.hello(wire.NEW_USER, bytes(16), 0)[0].kind == wire.WELCOME,
                   "§4.1 R-4.1.3", "NewUser refused below the connection limit")
        extra = Conn(server.port, "over-limit", trust=trust)
        expect(extra.before_tls, "§12.4 R-12.4.5",
               "the connection over the limit was not refused before TLS")
        closing_error(extra, wire.CODE["Busy"], "§4.5 R-9.1.1", 10)
        for conn in held:
            conn.close()
        log("ok   --max-connections 2: the third connection got Error Busy rid 0 in "
            "plaintext before TLS, closed")
    finally:
        status = server.stop()
    expect(status == 0, "README", f"second server exited {status} after SIGTERM")
