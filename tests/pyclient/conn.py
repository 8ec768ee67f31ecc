"""One client connection (§3.4, §9.2): framing over TLS 1.3 (§12, tlslayer.py)
or, for a plaintext server, over the bare TCP socket; request IDs, Notify
anywhere, and the request/reply helpers of §4–§5.

Every frame read is decoded strictly (wire.py); a server frame that breaks the
spec raises `SpecViolation`. Timeouts are in seconds.
"""

from __future__ import annotations

import socket
import struct
import time

import blake3

import tlslayer
import wire
from verdict import SpecViolation, expect

REPLY_TIMEOUT = 20.0


class Closed(Exception):
    """The server closed the connection."""


class Conn:
    """A connection to 127.0.0.1:`port`. With `trust` it speaks TLS 1.3 with
    the SNI of `sni_user` (§12.3) and checks the certificate before anything
    else is sent (R-12.2.4; `TrustRefused` otherwise); without, plaintext.
    A server that answers the ClientHello with a plaintext frame (Busy,
    R-12.4.5; a plaintext server, R-12.4.1) leaves that frame readable and
    `before_tls` set; nothing can be sent then."""

    def __init__(self, port: int, label: str, rcvbuf: int | None = None,
                 trust: tlslayer.Trust | None = None, sni_user: bytes | None = None):
        self.label = label
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.buf = bytearray()
        self.notifies: list[int] = []
        self.rid = 0
        self.user_id = b""
        self.client_id = 0
        self.pace = 0.0  # seconds to sleep after each recv: a slow reader
        self.batch_sizes: list[int] = []  # entries per batch of the last pull reply
        self.tls: tlslayer.TlsChannel | None = None
        self.before_tls = False
        self.fingerprint: str | None = None
        if trust is not None:
            self._start_tls(trust, tlslayer.sni_for(sni_user))

    def _start_tls(self, trust: tlslayer.Trust, sni: str) -> None:
        channel = tlslayer.TlsChannel(self.sock, sni)
        try:
            der = channel.handshake(REPLY_TIMEOUT)
        except tlslayer.PlaintextAnswer as answer:
            self.buf += answer.data
            self.before_tls = True
            return
        except (ConnectionError, tlslayer.TlsFailed) as err:
            self.close()
            raise Closed(f"[{self.label}] TLS handshake: {err}") from err
        try:
            self.fingerprint = trust.check(der)
        except tlslayer.TrustRefused:
            channel.close()
            raise
        expect(channel.version() == "TLSv1.3", "§12.1 R-12.1.1",
               f"[{self.label}] negotiated {channel.version()}")
        expect(channel.alpn() == tlslayer.ALPN, "§12.1 R-12.1.2",
               f"[{self.label}] server selected ALPN {channel.alpn()!r}")
        expect(channel.cipher() in tlslayer.SUITES, "§12.1 R-12.1.1",
               f"[{self.label}] cipher suite {channel.cipher()}")
        self.tls = channel

    # ------------------------------------------------------------ raw I/O

    def next_rid(self) -> int:
        self.rid += 1
        return self.rid

    def send(self, data: bytes) -> None:
        if self.before_tls:
            raise Closed(f"[{self.label}] the server answered the ClientHello in "
                         f"plaintext: {bytes(self.buf[:64]).hex()}")
        if self.tls is not None:
            self.tls.send(data)
        else:
            self.sock.sendall(data)

    def close(self) -> None:
        try:
            if self.tls is not None:
                self.tls.close()
            else:
                self.sock.close()
        except OSError:
            pass

    def _recv(self, max_read: int, deadline: float) -> bytes:
        if self.tls is not None:
            return self.tls.recv(max_read, deadline)
        self.sock.settimeout(max(0.001, deadline - time.monotonic()))
        return self.sock.recv(max_read)

    def _fill(self, n: int, deadline: float, max_read: int = 1 << 20) -> None:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SpecViolation("§3.4 R-3.4.5", f"[{self.label}] no reply within "
                                    f"the timeout ({len(self.buf)} of {n} bytes)")
            try:
                data = self._recv(max_read, deadline)
            except socket.timeout:
                continue
            except ConnectionResetError as err:
                raise Closed(str(err)) from err
            if not data:
                raise Closed(f"[{self.label}] EOF with {len(self.buf)} bytes buffered")
            self.buf += data
            if self.pace:
                time.sleep(self.pace)

    def read_frame(self, timeout: float = REPLY_TIMEOUT,
                   max_read: int = 1 << 20) -> tuple[wire.Frame, object]:
        """The next frame and its decoded payload (Notify included)."""
        deadline = time.monotonic() + timeout
        self._fill(wire.HEADER_LEN, deadline, max_read)
        try:
            kind, rid, length = wire.check_header(bytes(self.buf[:12]))
        except wire.WireError as err:
            raise SpecViolation("§3.3 R-3.3.3", f"[{self.label}] server sent a bad "
                                f"header {bytes(self.buf[:12]).hex()}: {err}") from err
        self._fill(wire.HEADER_LEN + length, deadline, max_read)
        payload = bytes(self.buf[12:12 + length])
        del self.buf[:12 + length]
        frm = wire.Frame(kind, rid, payload)
        try:
            value = wire.decode(frm)
        except wire.WireError as err:
            raise SpecViolation("§3.3 R-3.3.3", f"[{self.label}] server sent a bad "
                                f"{frm.name()} payload {payload[:80].hex()}: {err}") from err
        return frm, value

    def reply(self, timeout: float = REPLY_TIMEOUT) -> tuple[wire.Frame, object]:
        """The next frame that is not a Notify; Notifies are recorded (§3.4)."""
        while True:
            frm, value = self.read_frame(timeout)
            if frm.kind != wire.NOTIFY:
                return frm, value
            expect(frm.rid == 0, "§3.4 R-3.4.3", f"Notify with request ID {frm.rid}")
            self.notifies.append(value)

    def drain_notifies(self, wait: float, until: int | None = None) -> list[int]:
        """Reads for `wait` s, or until a Notify with head ≥ `until` arrived
        (so a loaded machine only slows the run); only Notify may arrive
        unasked (§3.4)."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (until is not None and self.notifies
                             and max(self.notifies) >= until):
                return list(self.notifies)
            try:
                frm, value = self.read_frame(left)
            except SpecViolation:
                if len(self.buf) == 0:
                    return list(self.notifies)
                raise
            expect(frm.kind == wire.NOTIFY and frm.rid == 0, "§3.4 R-3.4.6",
                   f"[{self.label}] unasked {frm.name()} rid {frm.rid}: {value!r}")
            self.notifies.append(value)

    def expect_closed(self, section: str, timeout: float = 10.0) -> None:
        """The server must close now: only EOF (or a Notify) may follow."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                frm, value = self.read_frame(max(0.01, deadline - time.monotonic()))
            except Closed:
                return
            except SpecViolation as err:
                raise SpecViolation(section, f"[{self.label}] connection not "
                                    f"closed after a closing Error ({err})") from err
            expect(frm.kind == wire.NOTIFY, section,
                   f"[{self.label}] {frm.name()} after a closing Error")

    # ------------------------------------------------------------ requests

    def hello(self, mode: int, user_id: bytes, client_id: int):
        rid = self.next_rid()
        self.send(wire.hello(rid, mode, user_id, client_id))
        frm, value = self.reply()
        expect(frm.rid == rid, "§4.1 R-4.1.5", f"{frm.name()} to Hello rid {rid} has rid {frm.rid}")
        if frm.kind == wire.WELCOME:
            self.user_id, self.client_id, _ = value
        return frm, value

    def key_hello(self, mode: int, user_id: bytes, client_id: int, secret: bytes,
                  name: bytes = b"pyclient"):
        """KeyHello (§4.6); returns the reply (KeyWelcome or Error)."""
        rid = self.next_rid()
        self.send(wire.key_hello(rid, mode, user_id, client_id, secret, name))
        frm, value = self.reply()
        expect(frm.rid == rid, "§4.1 R-4.1.5",
               f"{frm.name()} to KeyHello rid {rid} has rid {frm.rid}")
        if frm.kind == wire.KEY_WELCOME:
            self.user_id, self.client_id = value[0], value[1]
        return frm, value

    def ping(self) -> None:
        rid = self.next_rid()
        self.send(wire.frame(wire.PING, rid))
        frm, _ = self.reply()
        expect(frm.kind == wire.PONG and frm.rid == rid, "§4.3 R-4.3.1",
               f"Ping rid {rid} answered by {frm.name()} rid {frm.rid}")

    def push(self, data: bytes, rid: int):
        """Sends one push frame; returns (frame, value) of its one reply (§5.4)."""
        self.send(data)
        return self.push_reply(rid)

    def push_reply(self, rid: int):
        frm, value = self.reply()
        expect(frm.kind in (wire.PUSH_ACK, wire.ERROR), "§5.4 R-5.4.1",
               f"push rid {rid} answered by {frm.name()}")
        expect(frm.rid == rid, "§3.4 R-3.4.1", f"reply to push rid {rid} has rid {frm.rid}")
        return frm, value

    def upload(self, path: str, data: bytes, base: int,
               chunk: int = wire.CHUNK_SIZE, digest: bytes | None = None,
               size: int | None = None):
        rid = self.next_rid()
        digest = blake3.blake3(data).digest() if digest is None else digest
        size = len(data) if size is None else size
        parts = [wire.file_begin(rid, base, size, digest, path)]
        for off in range(0, len(data), chunk):
            parts.append(wire.frame(wire.FILE_CHUNK, rid, data[off:off + chunk]))
        parts.append(wire.frame(wire.FILE_END, rid))
        for part in parts:
            self.send(part)
        return self.push_reply(rid)

    def pull(self, cursor: int) -> tuple[int, bool, list[wire.Entry]]:
        """Pull and read its whole reply, checking §5.2's batch rules."""
        rid = self.next_rid()
        self.send(wire.pull(rid, cursor))
        return self.read_pull_reply(rid)

    def pull_modes(self, cursor: int) -> tuple[int, bool, list[wire.Entry]]:
        """PullModes (§15.2) and its whole reply of ModeBatches."""
        rid = self.next_rid()
        self.send(wire.pull_modes(rid, cursor))
        return self.read_pull_reply(rid, wire.MODE_BATCH)

    def read_pull_reply(self, rid: int, kind: int = wire.CHANGE_BATCH
                        ) -> tuple[int, bool, list[wire.Entry]]:
        entries: list[wire.Entry] = []
        first: wire.Batch | None = None
        self.batch_sizes = []
        while True:
            frm, batch = self.reply()
            expect(frm.kind == kind, "§5.1 R-5.1.1, R-15.2.1",
                   f"Pull rid {rid} answered by {frm.name()} {batch!r}")
            expect(frm.rid == rid, "§5.2 R-5.2.2", f"batch of Pull rid {rid} has rid {frm.rid}")
            if first is None:
                first = batch
            expect(batch.head == first.head, "§5.2 R-5.2.2", "batches of one reply differ in head")
            expect((batch.flags & wire.FLAG_FULL) == (first.flags & wire.FLAG_FULL),
                   "§5.2 R-5.2.2", "batches of one reply differ in the full flag")
            entries.extend(batch.entries)
            self.batch_sizes.append(len(batch.entries))
            if batch.flags & wire.FLAG_LAST:
                return first.head, bool(first.flags & wire.FLAG_FULL), entries

    def fetch(self, path: str, version: int):
        """Fetch; returns ('file', version, bytes) or ('error', code)."""
        rid = self.next_rid()
        self.send(wire.fetch(rid, version, path))
        return self.read_fetch_reply(rid, path)

    def read_fetch_reply(self, rid: int, path: str):
        frm, value = self.reply()
        expect(frm.rid == rid, "§3.4 R-3.4.1", f"reply to Fetch rid {rid} has rid {frm.rid}")
        if frm.kind == wire.ERROR:
            return ("error", value[0])
        expect(frm.kind == wire.FILE_BEGIN, "§5.5 R-5.5.8", f"Fetch answered by {frm.name()}")
        version, size, digest, got_path = value
        expect(got_path == path, "§5.5 R-5.5.8", f"FileBegin path {got_path!r} for Fetch {path!r}")
        data = bytearray()
        while True:
            frm, value = self.reply()
            expect(frm.rid == rid, "§3.4 R-3.4.5", f"{frm.name()} inside fetch rid {rid} "
                   f"has rid {frm.rid}")
            if frm.kind == wire.FILE_END:
                break
            expect(frm.kind == wire.FILE_CHUNK, "§3.4 R-3.4.5",
                   f"{frm.name()} inside the fetch reply of {path!r}")
            data += value
            expect(len(data) <= size, "§5.5 R-5.5.1", "fetch chunks exceed FileBegin size")
        expect(len(data) == size, "§5.5 R-5.5.1", f"fetch of {path!r}: {len(data)} bytes, "
               f"FileBegin said {size}")
        expect(blake3.blake3(bytes(data)).digest() == digest, "§1.4 R-5.5.4",
               f"fetch of {path!r}: content does not match FileBegin hash")
        return ("file", version, bytes(data))


def u64(value: int) -> bytes:
    return struct.pack(">Q", value)
