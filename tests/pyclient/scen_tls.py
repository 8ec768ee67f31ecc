"""The TLS layer (§12) as an outsider sees it: the certificate and its
fingerprint (R-12.2.1), pinning in every accepted spelling and a refused
pin (R-12.2.3, R-12.4.4), TLS 1.2 and ALPN probes (R-12.1.1, R-12.1.2),
the §12.3 routing-key example, a plaintext Hello to a TLS server and
garbage instead of a ClientHello (R-12.4.1, R-12.4.2), a TLS client at a
plaintext server (R-12.4.1), and a server with another certificate
(trust on first use refuses it, R-12.2.3)."""

from __future__ import annotations

import os
import re
import socket
import ssl
import stat
import time

import tlslayer
import wire
from conn import Closed, Conn
from ctx import Ctx
from server import Server
from verdict import expect, log

# §12.3: "Example, for the user of §11 (`HEX`; ...)" and its two lines.
EXAMPLE_USER_RE = re.compile(r"Example, for the user of §11 \(`([0-9a-f]{32})`")
EXAMPLE_KEY_RE = re.compile(r"^routing key: ([0-9a-f]{32})$", re.M)
EXAMPLE_SNI_RE = re.compile(r"^SNI: +(\S+)$", re.M)
TEXT_TLS_SERVER = "this server requires TLS; the client was started with --insecure-plaintext"
TEXT_PLAIN_SERVER = "this server runs with --insecure-plaintext and does not speak TLS"


def routing_example(spec_text: str) -> None:
    """The §12.3 example, recomputed from the formula."""
    user = EXAMPLE_USER_RE.search(spec_text)
    key = EXAMPLE_KEY_RE.search(spec_text)
    sni = EXAMPLE_SNI_RE.search(spec_text)
    expect(bool(user and key and sni), "§12.3", "the routing-key example is gone")
    uid = bytes.fromhex(user.group(1))
    got = tlslayer.routing_key(uid)
    expect(got == key.group(1), "§12.3", f"routing key of {user.group(1)}: this client "
           f"computes {got}, the spec says {key.group(1)}")
    expect(tlslayer.sni_for(uid) == sni.group(1), "§12.3",
           f"SNI {tlslayer.sni_for(uid)}, the spec says {sni.group(1)}")
    log(f"ok   §12.3 routing key example: {got}")


def certificate(ctx: Ctx) -> None:
    """R-12.2.1: the key and certificate files are 0600, the certificate is
    ECDSA P-256, and the printed fingerprint is SHA-256 of its DER, which
    is what the server presents."""
    tls_dir = os.path.join(ctx.server.data_dir, "tls")
    for name in ("server.key", "server.crt"):
        mode = stat.S_IMODE(os.stat(os.path.join(tls_dir, name)).st_mode)
        expect(mode == 0o600, "§12.2 R-12.2.1", f"{name} has mode {mode:o}, spec says 600")
    with open(os.path.join(tls_dir, "server.crt"), encoding="ascii") as fh:
        pem = fh.read()
    der = ssl.PEM_cert_to_DER_cert(pem)
    expect(tlslayer.is_p256_certificate(der), "§12.2 R-12.2.1",
           "the generated certificate is not an ECDSA P-256 key")
    expect(tlslayer.fingerprint(der) == ctx.server.fingerprint, "§12.2 R-12.2.1",
           f"printed fingerprint {ctx.server.fingerprint}, SHA-256 of server.crt "
           f"{tlslayer.fingerprint(der)}")
    conn = ctx.connect("cert")
    expect(conn.fingerprint == ctx.server.fingerprint, "§12.2 R-12.2.1",
           f"presented {conn.fingerprint}, printed {ctx.server.fingerprint}")
    conn.close()
    log("ok   certificate: files 0600, ECDSA P-256, printed fingerprint = SHA-256 of "
        "the DER presented")


def pinning(ctx: Ctx, scratch: str) -> None:
    """R-12.2.3 2.: the printed fingerprint pins, in each spelling R-12.2.1
    accepts; a wrong pin refuses the server before any Hello (R-12.2.4)."""
    fp = ctx.server.fingerprint
    spellings = [fp, fp.upper(), ":".join(fp[i:i + 2] for i in range(0, 64, 2)),
                 "SHA256:" + fp]
    for i, spelled in enumerate(spellings):
        trust = tlslayer.Trust(os.path.join(scratch, f"pinned-{i}"),
                               tlslayer.parse_fingerprint(spelled))
        conn = Conn(ctx.server.port, "pinned", trust=trust, sni_user=ctx.user_id)
        frm, value = conn.hello(wire.VISIT, ctx.user_id, 1)
        expect(frm.kind == wire.WELCOME, "§12.2 R-12.2.3", f"pinned Visit: {frm.name()}")
        conn.close()
    wrong = bytearray(bytes.fromhex(fp))
    wrong[0] ^= 0x80
    trust = tlslayer.Trust(os.path.join(scratch, "pinned-wrong"), wrong.hex())
    try:
        Conn(ctx.server.port, "wrong-pin", trust=trust, sni_user=ctx.user_id)
        expect(False, "§12.2 R-12.2.3", "a wrong pin was accepted")
    except tlslayer.TrustRefused as err:
        expect(fp in str(err) and wrong.hex() in str(err), "§12.4 R-12.4.4",
               f"the refusal does not name both fingerprints: {err}")
    expect(not os.path.exists(trust.known_file), "§12.4 R-12.4.4",
           "a refused server was recorded")
    log(f"ok   pinned in {len(spellings)} spellings: accepted; a wrong pin: refused "
        "before the Hello, both fingerprints named")


def tls12_refused(ctx: Ctx) -> None:
    """R-12.1.1: a client offering only TLS 1.2 gets an alert, not a session."""
    sock = socket.create_connection(("127.0.0.1", ctx.server.port))
    channel = tlslayer.TlsChannel(
        sock, tlslayer.NEW_USER_SNI, tlslayer.client_context(ssl.TLSVersion.TLSv1_2))
    try:
        channel.handshake(10)
        expect(False, "§12.1 R-12.1.1", f"TLS 1.2 accepted ({channel.version()})")
    except (tlslayer.TlsFailed, ConnectionError) as err:
        log(f"ok   a TLS 1.2-only ClientHello is refused ({err})")
    finally:
        sock.close()


def alpn_probes(ctx: Ctx) -> None:
    """R-12.1.2: without ALPN the server MAY accept; with only another
    protocol the spec says it refuses with no_application_protocol."""
    results = {}
    for name, offer in (("none", []), ("other", ["http/1.1"])):
        sock = socket.create_connection(("127.0.0.1", ctx.server.port))
        channel = tlslayer.TlsChannel(sock, tlslayer.NEW_USER_SNI,
                                      tlslayer.client_context(alpn=offer))
        try:
            channel.handshake(10)
            results[name] = f"accepted, ALPN {channel.alpn()!r}"
        except (tlslayer.TlsFailed, ConnectionError) as err:
            results[name] = f"refused: {err}"
        finally:
            sock.close()
    refusal = results["other"].upper().replace("_", " ")
    expect(results["other"].startswith("refused") and "NO APPLICATION PROTOCOL"
           in refusal, "§12.1 R-12.1.2",
           f"only another ALPN offered: {results['other']}")
    log(f"ok   ALPN: none offered -> {results['none']}; only http/1.1 -> {results['other']}")


def raw_answer(port: int, data: bytes, wait: float = 10.0) -> bytes:
    """Sends `data` on a bare TCP connection; returns all bytes until EOF."""
    sock = socket.create_connection(("127.0.0.1", port))
    got = b""
    deadline = time.monotonic() + wait
    try:
        sock.sendall(data)
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                break
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk
        raise Closed(f"not closed within {wait} s after {data[:8].hex()} "
                     f"(got {got[:16].hex()})")
    finally:
        sock.close()


def plaintext_error(raw: bytes, section: str, text: str) -> None:
    """`raw` must be exactly one Error BadFrame, request ID 0, with `text`."""
    expect(len(raw) >= wire.HEADER_LEN, section, f"no plaintext Error: {raw.hex()}")
    kind, rid, length = wire.check_header(raw[:wire.HEADER_LEN])
    expect(kind == wire.ERROR and rid == 0 and len(raw) == wire.HEADER_LEN + length,
           section, f"expected one Error frame rid 0, got {raw[:40].hex()}")
    code, msg = wire.decode_error(raw[wire.HEADER_LEN:])
    expect(code == wire.CODE["BadFrame"] and msg == text, section,
           f"Error {wire.error_name(code)} {msg!r}, spec says BadFrame {text!r}")


def mismatches(ctx: Ctx) -> None:
    """R-12.4.1: a plaintext Hello gets one plaintext Error and a close;
    R-12.4.2: bytes that are neither get a TLS alert and a close."""
    raw = raw_answer(ctx.server.port, wire.hello(1, wire.RESUME, ctx.user_id, 1))
    plaintext_error(raw, "§12.4 R-12.4.1", TEXT_TLS_SERVER)
    garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = raw_answer(ctx.server.port, garbage)
    expect(raw[:1] == b"\x15" and len(raw) >= 7, "§12.4 R-12.4.2",
           f"garbage instead of a ClientHello answered by {raw[:16].hex()}, not an alert")
    log(f"ok   plaintext Hello to a TLS server: one Error BadFrame rid 0 {TEXT_TLS_SERVER!r}, "
        f"closed; garbage: TLS alert {raw[:7].hex()}, closed")


def plaintext_server(binary: str, data_dir: str) -> None:
    """A server started with --insecure-plaintext: plaintext frames work
    there; a TLS client gets one plaintext Error and reports it (R-12.4.1)."""
    os.makedirs(data_dir)
    server = Server(binary, data_dir, plaintext=True)
    try:
        conn = Conn(server.port, "plain")
        frm, value = conn.hello(wire.NEW_USER, bytes(16), 0)
        expect(frm.kind == wire.WELCOME, "§4.1 R-4.1.3",
               f"plaintext NewUser at a plaintext server: {frm.name()} {value!r}")
        conn.close()
        trust = tlslayer.Trust(os.path.join(data_dir, "..", "plain-known"))
        conn = Conn(server.port, "tls-at-plain", trust=trust)
        expect(conn.before_tls, "§12.4 R-12.4.1",
               "a TLS client at a plaintext server got no plaintext answer")
        plaintext_error(bytes(conn.buf), "§12.4 R-12.4.1", TEXT_PLAIN_SERVER)
        conn.close()
        expect(trust.known() is None, "§12.4 R-12.4.1", "a plaintext server was trusted")
        log(f"ok   plaintext server: frames work; a TLS ClientHello gets one Error "
            f"BadFrame {TEXT_PLAIN_SERVER!r}")
    finally:
        status = server.stop()
    expect(status == 0, "README", f"plaintext server exited {status} after SIGTERM")


def other_certificate(ctx_trust: tlslayer.Trust, server: Server) -> None:
    """R-12.2.3 1.: a server presenting another certificate than the one
    recorded on first use is refused, naming both, before any Hello."""
    recorded = ctx_trust.known()
    try:
        Conn(server.port, "other-certificate", trust=ctx_trust)
        expect(False, "§12.2 R-12.2.3", "trust on first use accepted another certificate")
    except tlslayer.TrustRefused as err:
        expect(recorded in str(err) and server.fingerprint in str(err), "§12.4 R-12.4.4",
               f"the refusal does not name both fingerprints: {err}")
    expect(ctx_trust.known() == recorded, "§12.4 R-12.4.4", "the recorded fingerprint changed")
    log("ok   trust on first use: another server's certificate refused, both named")
