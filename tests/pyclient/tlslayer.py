"""The TLS layer of PROTOCOL.md §12, written from the spec alone with
Python's `ssl` module (OpenSSL): TLS 1.3 only, ALPN `cloudservice/1`, the
SNI routing key of §12.3, and trust by the certificate fingerprint of
§12.2 (SHA-256 over the DER of the leaf certificate), pinned or on first
use. The handshake runs over memory BIOs so this client sees the server's
first bytes itself: `43 53` instead of a ServerHello is a plaintext Error
(R-12.4.1, R-12.4.5), reported as `PlaintextAnswer`, not a TLS failure.
Timeouts are in seconds.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import time

ALPN = "cloudservice/1"
# the suites the reference implementation offers (TLS 1.3 names).
SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
          "TLS_CHACHA20_POLY1305_SHA256"}
NEW_USER_SNI = "new.cloudservice"
ROUTING_CONTEXT = b"cloudservice routing key v1" + b"\x00"  # §12.3
# OIDs in the DER of an ECDSA P-256 key: id-ecPublicKey
# 1.2.840.10045.2.1 and prime256v1 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1).
OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
OID_P256 = bytes.fromhex("06082a8648ce3d030107")


class TrustRefused(Exception):
    """The server's certificate did not pass this client's trust (R-12.4.4);
    no Hello was sent (R-12.2.4)."""


class TlsFailed(Exception):
    """The TLS handshake failed (an alert, or bytes that are not TLS)."""


class PlaintextAnswer(Exception):
    """The server answered the ClientHello with frame bytes (`43 53`), not a
    ServerHello: `data` is everything received so far (R-12.4.1, R-12.4.5)."""

    def __init__(self, data: bytes):
        super().__init__(f"plaintext answer {data[:12].hex()}")
        self.data = data


def routing_key(user_id: bytes) -> str:
    """§12.3: lowercase hex of the first 16 bytes of
    SHA-256("cloudservice routing key v1" || 0x00 || user_id)."""
    return hashlib.sha256(ROUTING_CONTEXT + user_id).digest()[:16].hex()


def sni_for(user_id: bytes | None) -> str:
    """R-12.3.1: `r<routing key>.route.cloudservice`, or `new.cloudservice`."""
    if not user_id:
        return NEW_USER_SNI
    return "r" + routing_key(user_id) + ".route.cloudservice"


def fingerprint(der: bytes) -> str:
    """R-12.2.1: SHA-256 over the leaf certificate's DER, 64 lowercase hex."""
    return hashlib.sha256(der).hexdigest()


def parse_fingerprint(text: str) -> str:
    """A fingerprint as a user may type it (R-12.2.1: upper case, `:`
    between bytes, a `SHA256:` prefix); ValueError if it is not 32 bytes."""
    text = text.strip()
    if text[:7].upper() == "SHA256:":
        text = text[7:]
    text = text.replace(":", "").lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a SHA-256 fingerprint: {text!r}")
    return text


class Trust:
    """How this client trusts a server (R-12.2.3): pinned to a fingerprint,
    else on first use with the fingerprint recorded in `known_file` (one
    line, 64 hex digits)."""

    def __init__(self, known_file: str, pinned: str | None = None):
        self.known_file = known_file
        self.pinned = pinned

    def known(self) -> str | None:
        try:
            with open(self.known_file, encoding="ascii") as fh:
                return fh.read().strip()
        except FileNotFoundError:
            return None

    def check(self, der: bytes) -> str:
        """Accepts the certificate `der` or raises `TrustRefused` naming both
        fingerprints; records it on first use (and when pinned)."""
        got = fingerprint(der)
        want = self.pinned or self.known()
        if want is not None and got != want:
            why = "pinned" if self.pinned else "this folder recorded"
            raise TrustRefused(
                f"the server's certificate changed: {why} fingerprint {want}, the server "
                f"presented {got}; if the operator replaced it, pin {got}")
        if self.known() is None:
            tmp = self.known_file + ".tmp"
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write(got + "\n")
            os.replace(tmp, self.known_file)
        return got


def client_context(max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
                   alpn: list[str] | None = None) -> ssl.SSLContext:
    """TLS 1.3 only (R-12.1.1), ALPN offered (R-12.1.2), no session tickets
    (R-12.1.3), no client certificate (R-12.1.4). Certificate checks are
    this client's own (`Trust`), so OpenSSL's chain check is off."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = min(ssl.TLSVersion.TLSv1_3, max_version)
    ctx.maximum_version = max_version
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.options |= ssl.OP_NO_TICKET
    ctx.set_alpn_protocols([ALPN] if alpn is None else alpn)
    return ctx


class TlsChannel:
    """One TLS 1.3 client connection over the connected socket `sock`."""

    def __init__(self, sock: socket.socket, sni: str, ctx: ssl.SSLContext | None = None):
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = (ctx or client_context()).wrap_bio(
            self.incoming, self.outgoing, server_side=False, server_hostname=sni)
        self.eof = False

    def handshake(self, timeout: float) -> bytes:
        """Runs the handshake; returns the server's leaf certificate (DER).

        Raises `PlaintextAnswer` when the server's first bytes are `43 53`,
        `TlsFailed` on an alert or non-TLS bytes, `TimeoutError`, or
        `ConnectionError` when the server closes first."""
        deadline = time.monotonic() + timeout
        first = b""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
            except ssl.SSLError as err:
                self._flush()  # the alert OpenSSL queued
                raise TlsFailed(f"{err.reason or err}") from err
            data = self._recv_raw(deadline)
            if len(first) < 2:
                first += data
                if first[:2] == b"CS":
                    raise PlaintextAnswer(first + self._drain_raw(0.5))
            if not data:
                raise ConnectionError(f"server closed during the TLS handshake "
                                      f"(received {first[:8].hex()})")
            self.incoming.write(data)
        self._flush()  # the client Finished
        der = self.obj.getpeercert(binary_form=True)
        if der is None:
            raise TlsFailed("the server presented no certificate")
        return der

    def version(self) -> str | None:
        return self.obj.version()

    def cipher(self) -> str | None:
        cipher = self.obj.cipher()
        return cipher[0] if cipher else None

    def alpn(self) -> str | None:
        return self.obj.selected_alpn_protocol()

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = self.obj.write(view[:16384])
            view = view[n:]
            self._flush()

    def recv(self, max_read: int, deadline: float) -> bytes:
        """Plaintext, at most `max_read` bytes; b"" when the server closed
        (close_notify or a bare TCP close); `socket.timeout` at `deadline`."""
        while True:
            try:
                return self.obj.read(max_read)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            if self.eof:
                return b""
            data = self._recv_raw(deadline)
            if not data:
                self.eof = True
                self.incoming.write_eof()
            else:
                self.incoming.write(data)

    def close(self) -> None:
        try:
            self.obj.unwrap()
        except (ssl.SSLError, ValueError):
            pass
        try:
            self._flush()
        except OSError:
            pass
        self.sock.close()

    def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def _recv_raw(self, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("TLS read timed out")
        self.sock.settimeout(left)
        return self.sock.recv(1 << 16)

    def _drain_raw(self, wait: float) -> bytes:
        """What else arrives within `wait` s (the rest of a plaintext Error)."""
        got = b""
        deadline = time.monotonic() + wait
        try:
            while True:
                data = self._recv_raw(deadline)
                if not data:
                    return got
                got += data
        except (socket.timeout, OSError):
            return got


def is_p256_certificate(der: bytes) -> bool:
    """Whether the DER names an EC public key on P-256 (R-12.2.1)."""
    return OID_EC_PUBLIC_KEY in der and OID_P256 in der
