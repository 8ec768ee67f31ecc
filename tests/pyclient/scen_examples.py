"""The spec's own examples against this client's codec, before any server is
involved: every `hex example=NAME` block of PROTOCOL.md that this client
knows is encoded (client frames) or strictly decoded (server frames) and
compared, and the §7.4 conflict-name table is recomputed. An example this
client does not know is listed as not checked (the spec may gain examples).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import struct

import blake3

import conflict
import wire
from verdict import expect, log

UID = bytes.fromhex("9f1c2a7e4b6d8053c1e9f2a4b6c8d0e1")
H = lambda data: blake3.blake3(data).digest()  # noqa: E731
E = wire.Entry

def mod251(n: int) -> bytes:
    """§5.5.1: n bytes where byte i is i mod 251."""
    return bytes(i % 251 for i in range(n))


# Client → server frames: the bytes this client sends.
ENCODED = {
    "hello-resume": lambda: wire.hello(1, wire.RESUME, UID, 2),
    "key-hello-new-client": lambda: wire.key_hello(1, wire.NEW_CLIENT, UID, 0,
                                                   bytes(range(0x00, 0x20)), b"laptop"),
    "key-hello-resume": lambda: wire.key_hello(1, wire.RESUME, UID, 3,
                                               bytes(range(0xa0, 0xc0)), b"laptop"),
    "ping": lambda: wire.frame(wire.PING, 9),
    "pong": lambda: wire.frame(wire.PONG, 9),
    "pull": lambda: wire.pull(5, 17),
    "ack": lambda: wire.ack(6, 21),
    "makedir": lambda: wire.make_dir(10, "photos"),
    "delete": lambda: wire.delete(11, 4, "old.txt"),
    "removedir": lambda: wire.remove_dir(12, 21, "tmp"),
    "rename": lambda: wire.rename(13, 9, "draft.txt", "docs/final.txt"),
    "filebegin-empty": lambda: wire.file_begin(16, 0, 0, H(b""), "empty.txt"),
    "fileend-empty": lambda: wire.frame(wire.FILE_END, 16),
    "fetch": lambda: wire.fetch(15, 21, "photos/cat.txt"),
    "filebegin-2500": lambda: wire.file_begin(17, 0, 2500, H(mod251(2500)), "2500.bin"),
    "filebegin-300000": lambda: wire.file_begin(18, 0, 300000, H(mod251(300000)),
                                                "300000.bin"),
    "x-a-hello": lambda: wire.hello(1, wire.NEW_USER, bytes(16), 0),
    "x-a-filebegin": lambda: wire.file_begin(2, 0, 6, H(b"hello\n"), "hello.txt"),
    "x-a-filechunk": lambda: wire.frame(wire.FILE_CHUNK, 2, b"hello\n"),
    "x-a-fileend": lambda: wire.frame(wire.FILE_END, 2),
    "x-b-hello": lambda: wire.hello(1, wire.NEW_CLIENT, UID, 0),
    "x-b-pull": lambda: wire.pull(2, 0),
    "x-b-fetch": lambda: wire.fetch(3, 1, "hello.txt"),
    "x-b-ack": lambda: wire.ack(4, 1),
    "pullmodes": lambda: wire.pull_modes(30, 21),
    "setmode-executable": lambda: wire.set_mode(31, 22, wire.MODE_EXEC, "bin/hi.sh"),
    "setmode-plain": lambda: wire.set_mode(32, 23, 0, "bin/hi.sh"),
}

# Server → client frames: (kind, request ID, decoded value).
DECODED = {
    "welcome-resume": (wire.WELCOME, 1, (UID, 2, 17)),
    "pong": (wire.PONG, 9, None),
    "notify": (wire.NOTIFY, 0, 1),
    "error-not-found": (wire.ERROR, 7, (11, "not found")),
    "key-welcome-new-client": (wire.KEY_WELCOME, 1, (UID, 3, 17, bytes(range(0xa0, 0xc0)))),
    "key-welcome-resume": (wire.KEY_WELCOME, 1, (UID, 3, 17, bytes(32))),
    "error-revoked": (wire.ERROR, 0, (14, "revoked")),
    "error-bad-credential": (wire.ERROR, 1, (15, "bad device key")),
    "error-timeout": (wire.ERROR, 0, (10, "")),
    "error-bad-path": (wire.ERROR, 7, (2, "bad path")),
    "error-unknown-code": (wire.ERROR, 11, (999, "")),
    "error-device-in-use": (wire.ERROR, 1, (29, "device 3 of this user is connected from "
                            "203.0.113.7:51234 since 2026-12-02 11:20:03 UTC; one live "
                            "connection per device")),
    "changebatch-incremental": (wire.CHANGE_BATCH, 5, wire.Batch(21, 2, [
        E(3, 18, 0, bytes(32), "old"), E(2, 20, 0, bytes(32), "photos"),
        E(1, 21, 5, H(b"meow\n"), "photos/cat.txt")])),
    "changebatch-empty": (wire.CHANGE_BATCH, 8, wire.Batch(21, 2, [])),
    "pushack-applied": (wire.PUSH_ACK, 10, (0, 22, "photos")),
    "pushack-conflict": (wire.PUSH_ACK, 14, (1, 23, conflict.conflict_name(
        "docs/report.txt", 2, dt.datetime(2026, 11, 26, 10, 12, 33), 1))),
    "pushack-stale": (wire.PUSH_ACK, 11, (2, 6, "old.txt")),
    "x-a-welcome": (wire.WELCOME, 1, (UID, 1, 0)),
    "x-a-pushack": (wire.PUSH_ACK, 2, (0, 1, "hello.txt")),
    "x-b-welcome": (wire.WELCOME, 1, (UID, 2, 1)),
    "x-b-changebatch": (wire.CHANGE_BATCH, 2, wire.Batch(1, 3, [
        E(1, 1, 6, H(b"hello\n"), "hello.txt")])),
    "x-b-filebegin": (wire.FILE_BEGIN, 3, (1, 6, H(b"hello\n"), "hello.txt")),
    "x-b-filechunk": (wire.FILE_CHUNK, 3, b"hello\n"),
    "x-b-fileend": (wire.FILE_END, 3, None),
    "modebatch": (wire.MODE_BATCH, 30, wire.Batch(23, 2, [
        E(2, 22, 0, bytes(32), "bin"),
        E(1, 23, 18, H(b"#!/bin/sh\necho hi\n"), "bin/hi.sh", wire.MODE_EXEC)])),
}

BLOCK_RE = re.compile(r"```hex example=(\S+)\n(.*?)```", re.S)
ROW_RE = re.compile(r"^\| `([^`]+)` \| (\d+) \| (\d+) \| `([^`]+)` \|$", re.M)


def check_frame(name: str, raw: bytes) -> str:
    if name in ENCODED:
        mine = ENCODED[name]()
        expect(mine == raw, "§11 examples", f"example {name}: this client encodes "
               f"{mine.hex(' ')}, the spec shows {raw.hex(' ')}")
    if name in DECODED:
        kind, rid, want = DECODED[name]
        try:
            got_kind, got_rid, length = wire.check_header(raw[:12])
            frm = wire.Frame(got_kind, got_rid, raw[12:])
            expect(length == len(raw) - 12, "§3.1 R-3.1.1", f"example {name}: payload_len")
            value = wire.decode(frm)
        except wire.WireError as err:
            expect(False, "§3.3 R-3.3.3", f"example {name} does not decode: {err}")
            return "bad"
        expect((got_kind, got_rid, value) == (kind, rid, want), "§11 examples",
               f"example {name} decodes to {frm.name()} rid {got_rid} {value!r}, "
               f"this client expected rid {rid} {want!r}")
    return "checked" if name in ENCODED or name in DECODED else "unknown"


def unknown_codes(rng: random.Random) -> None:
    """R-1.4.1.1, R-4.5.8: every `u16` code decodes (one not in §4.5 is
    unknown, never BadValue) and an unknown one is treated as closing; a
    text over 1024 bytes or a trailing byte is still a bad frame (R-1.4.1.2).
    Client-side only: all 65,536 codes with random messages."""
    for code in range(1 << 16):
        msg = "".join(rng.choice("ab é📁") for _ in range(rng.randint(0, 6)))
        raw = msg.encode()
        payload = struct.pack(">HH", code, len(raw)) + raw
        try:
            got = wire.decode(wire.Frame(wire.ERROR, 11, payload))
        except wire.WireError as err:
            expect(False, "R-1.4.1.1", f"Error code {code} does not decode: {err}")
            return
        expect(got == (code, msg), "R-1.4.1.1", f"Error code {code} decodes to {got!r}")
        if code not in wire.ERROR_NAMES:
            expect(wire.error_closes(code) and code not in wire.RETRY_SAME_PUSH,
                   "R-4.5.8", f"unknown code {code} not treated as closing")
    for bad, reason in ((struct.pack(">HH", 999, 1025) + b"x" * 1025, "FieldTooLong"),
                        (struct.pack(">HH", 999, 0) + b"\0", "TrailingBytes"),
                        (struct.pack(">H", 999), "Truncated")):
        try:
            wire.decode(wire.Frame(wire.ERROR, 11, bad))
            expect(False, "R-1.4.1.2", f"Error code 999 {bad[:8].hex()}: not {reason}")
        except wire.WireError as err:
            expect(err.reason == reason, "R-1.4.1.2", f"got {err.reason}, want {reason}")
    expect(not wire.error_closes(13) and 13 not in wire.RETRY_SAME_PUSH, "R-4.5.7",
           "Unstorable must leave the connection open and never be retried")
    log("ok   codec: all 65,536 Error codes decode; unknown ones are closing (R-4.5.8); "
        "long text, trailing or missing bytes are still bad frames")


def run(spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as fh:
        text = fh.read()
    seen: dict[str, list[str]] = {"checked": [], "unknown": [], "bad": []}
    for name, body in BLOCK_RE.findall(text):
        seen[check_frame(name, bytes.fromhex(body))].append(name)
    missing = (set(ENCODED) | set(DECODED)) - set(seen["checked"])
    expect(not missing, "spec", f"examples this client knows are gone: {sorted(missing)}")
    rows = ROW_RE.findall(text)
    for path, client_id, attempt, want in rows:
        got = conflict.conflict_name(path, int(client_id),
                                     dt.datetime(2026, 11, 26, 10, 12, 33), int(attempt))
        expect(got == want, "§7.4 R-7.4.1", f"conflict name of {path!r}: this client makes "
               f"{got!r}, the table says {want!r}")
    expect(len(rows) >= 7, "§7.4 R-7.4.1", f"only {len(rows)} conflict-name rows found")
    unknown_codes(random.Random(1408))
    log(f"ok   spec examples: {len(seen['checked'])} frames and {len(rows)} conflict "
        f"names agree with this client's codec"
        + (f"; not checked (new to this client): {seen['unknown']}" if seen["unknown"] else ""))


def spec_file() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", "protocol-spec", "PROTOCOL.md")
