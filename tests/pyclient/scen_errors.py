"""Error cases (§3.3, §4.5, §6.3, §9.1): every path rule broken in every
path-carrying frame kind (randomized pairing, seed printed), bad headers
(magic, version, unknown kinds, oversized frames), bad payloads, frames out of
phase, upload overflow; each must get the Error the spec names, with the
request ID it names, then a close, and no byte after the bad frame may be
acted on. Also the legal edges of §6.1 (which must be stored) and NotFound.
"""

from __future__ import annotations

import os
import random
import struct

import blake3

import wire
from conn import Closed
from ctx import Ctx
from scen_push import upload
from verdict import expect, log

RID = 0x0A0B0C0D  # a request ID no other frame uses, so a wrong echo shows


def long_path(total: int) -> str:
    """A path of `total` bytes made of 240-byte components (depth ≤ 64)."""
    parts, left = [], total
    while left > 241:
        parts.append("p" * 240)
        left -= 241
    parts.append("q" * left)
    return "/".join(parts)


BAD_PATHS: list[tuple[str, bytes]] = [
    ("P1 BadUtf8", b"bad\xff.txt"),
    ("P1 BadUtf8 (surrogate)", b"a\xed\xa0\x80"),
    ("P2 Empty", b""),
    ("P3 TooLong", long_path(4097).encode()),
    ("P4 Absolute", b"/etc/passwd"),
    ("P5 Nul", b"a\x00b"),
    ("P6 Backslash", b"a\\b"),
    ("P7 ControlCharacter", b"a\nb"),
    ("P7 ControlCharacter DEL", b"x\x7f"),
    ("P8 TooDeep", "/".join(["d"] * 65).encode()),
    ("P9 EmptyComponent", b"a//b"),
    ("P9 EmptyComponent (trailing)", b"a/"),
    ("P10 DotComponent", b"a/./b"),
    ("P11 DotDotComponent", b"../x"),
    ("P11 DotDotComponent (deep)", b"a/../../x"),
    ("P12 ComponentTooLong", b"c" * 256),
    ("P13 Reserved", b".cloudservice/index"),
    ("P13 Reserved (alone)", b".cloudservice"),
]

# Frame makers with one bad path and request ID RID.
CARRIERS = {
    "MakeDir": lambda p: wire.make_dir(RID, p),
    "Delete": lambda p: wire.delete(RID, 1, p),
    "RemoveDir": lambda p: wire.remove_dir(RID, 1, p),
    "Rename(from)": lambda p: wire.rename(RID, 0, p, "ok-to"),
    "Rename(to)": lambda p: wire.rename(RID, 0, "hello-none", p),
    "Fetch": lambda p: wire.fetch(RID, 0, p),
    "FileBegin": lambda p: wire.file_begin(RID, 0, 0, blake3.blake3(b"").digest(), p),
}


class Closer:
    """Runs one closing case and counts cases for the marker names."""

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.n = 0

    def case(self, what: str, data: bytes, code: int, rid: int,
             hello: bool = True, section: str = "§3.3 R-3.3.5",
             quiet: bool = False) -> None:
        """Sends `data` then a valid MakeDir marker in one write; expects
        Error `code` with request ID `rid`, a close, and no marker stored."""
        self.n += 1
        marker = f"after-bad-{self.n}"
        conn = self.ctx.resume("err", 1, visit=True) if hello else self.ctx.connect("err")
        conn.send(data + wire.make_dir(7, marker))
        try:
            frm, value = conn.reply()
        except Closed as err:
            expect(False, section, f"{what}: closed without the Error "
                   f"{wire.error_name(code)} ({err})")
            return
        # the bad frame's request ID whenever its header
        # passed the four checks; 0 only after a header failure.
        self.ctx.expect_error(f"{what} (R-3.3.5)", (frm, value), code, rid)
        expect(wire.error_closes(code, overflow=True), section,
               f"{what}: Error {wire.error_name(code)} does not close (§4.5)")
        conn.expect_closed(section)
        conn.close()
        mirror = self.ctx.server.mirror(self.ctx.user_hex)
        expect(not os.path.lexists(os.path.join(mirror, marker)), section,
               f"{what}: the MakeDir sent after the bad frame was applied")
        if not quiet:
            log(f"ok   {what}: Error {wire.error_name(code)} rid {frm.rid}, closed")


def random_bad_path(rng: random.Random) -> tuple[str, bytes]:
    """A random legal path with one random rule broken (§6.1)."""
    alphabet = "abcxyz.-_ é📁"
    parts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))).strip(".") or "n"
             for _ in range(rng.randint(1, 5))]
    i = rng.randrange(len(parts))
    breaks = [
        ("P1", lambda: "/".join(parts).encode() + b"\xc3"),
        ("P4", lambda: b"/" + "/".join(parts).encode()),
        ("P5", lambda: "/".join(parts).encode().replace(b"a", b"\x00", 1) + b"\x00"),
        ("P6", lambda: "/".join(parts).encode() + b"\\"),
        ("P7", lambda: "/".join(parts).encode() + bytes([rng.randint(1, 31)])),
        ("P9", lambda: "/".join(parts[:i] + [""] + parts[i:]).encode()),
        ("P10", lambda: "/".join(parts[:i] + ["."] + parts[i:]).encode()),
        ("P11", lambda: "/".join(parts[:i] + [".."] + parts[i:]).encode()),
        ("P12", lambda: "/".join(parts[:i] + ["é" * 128] + parts[i:]).encode()),
        ("P13", lambda: "/".join([".cloudservice"] + parts).encode()),
    ]
    rule, make = rng.choice(breaks)
    return f"{rule} random", make()


def bad_paths(closer: Closer, rng: random.Random) -> None:
    """Every listed bad path in every carrier, then random ones."""
    for rule, raw in BAD_PATHS:
        for carrier, make in CARRIERS.items():
            closer.case(f"{carrier} with bad path {rule}", make(raw),
                        wire.CODE["BadPath"], RID, section="§6.3 R-6.3.1", quiet=True)
    for _ in range(40):
        rule, raw = random_bad_path(rng)
        carrier = rng.choice(list(CARRIERS))
        closer.case(f"{carrier} with bad path {rule} {raw!r}", CARRIERS[carrier](raw),
                    wire.CODE["BadPath"], RID, section="§6.3 R-6.3.1", quiet=True)
    log(f"ok   {len(BAD_PATHS)} bad paths x {len(CARRIERS)} frame kinds and 40 random "
        "bad paths: Error BadPath, closed, nothing after it applied")
    closer.case("MakeDir rid 7 '../x' (issue 10's input)", wire.make_dir(7, "../x"),
                wire.CODE["BadPath"], 7, section="§6.3 R-6.3.1")


def bad_headers(closer: Closer) -> None:
    bad_frame = wire.CODE["BadFrame"]
    body = struct.pack(">Q", 0)
    closer.case("bad magic", wire.header(wire.PULL, RID, 8, magic=b"SC") + body, bad_frame, 0)
    closer.case("version 2", wire.header(wire.PULL, RID, 8, version=2) + body, bad_frame, 0)
    for kind in (0x00, 0x0F, 0x15, 0x23, 0x35, 0x7F, 0xFF):
        closer.case(f"unknown kind 0x{kind:02x}", wire.header(kind, RID, 0), bad_frame, 0)
    closer.case("payload_len 1048577", wire.header(wire.FILE_CHUNK, RID, 1048577),
                bad_frame, 0)
    closer.case("payload_len 2^32-1", wire.header(wire.PULL, RID, 0xFFFFFFFF), bad_frame, 0)
    closer.case("oversized frame before Hello", wire.header(wire.HELLO, RID, 1 << 21),
                bad_frame, 0, hello=False)


def bad_payloads(closer: Closer) -> None:
    bad_frame = wire.CODE["BadFrame"]
    closer.case("Pull truncated (7 bytes)", wire.frame(wire.PULL, RID, bytes(7)), bad_frame, RID)
    closer.case("Pull with a trailing byte", wire.frame(wire.PULL, RID, bytes(9)),
                bad_frame, RID)
    closer.case("Ping with a payload byte", wire.frame(wire.PING, RID, b"\0"), bad_frame, RID)
    closer.case("Ack truncated", wire.frame(wire.ACK, RID, b""), bad_frame, RID)
    closer.case("MakeDir path_len beyond the payload",
                wire.frame(wire.MAKE_DIR, RID, b"\x00\x09abc"), bad_frame, RID)
    hello_ok = wire.hello(RID, wire.RESUME, closer.ctx.user_id, 1)
    closer.case("Hello mode 5", hello_ok[:12] + b"\x05" + hello_ok[13:], bad_frame, RID,
                hello=False)
    closer.case("Hello reserved byte set", hello_ok[:13] + b"\x01" + hello_ok[14:],
                bad_frame, RID, hello=False)


def out_of_phase(closer: Closer) -> None:
    wrong = wire.CODE["WrongPhase"]
    ctx = closer.ctx
    closer.case("Pull before Hello", wire.pull(RID, 0), wrong, RID, hello=False, section="§9.1 R-9.1.2")
    closer.case("Ping before Hello", wire.frame(wire.PING, RID), wrong, RID, hello=False,
                section="§9.1 R-9.1.2")
    closer.case("second Hello", wire.hello(RID, wire.RESUME, ctx.user_id, 1), wrong, RID,
                section="§9.1 R-9.1.2")
    closer.case("FileChunk without an upload", wire.frame(wire.FILE_CHUNK, RID, b"x"),
                wrong, RID, section="§9.1 R-9.1.2")
    closer.case("FileEnd without an upload", wire.frame(wire.FILE_END, RID), wrong, RID,
                section="§9.1 R-9.1.2")
    server_only = {
        "Welcome": wire.frame(wire.WELCOME, RID, ctx.user_id + bytes(16)),
        "Error": wire.frame(wire.ERROR, RID, b"\x00\x01\x00\x00"),
        "ChangeBatch": wire.frame(wire.CHANGE_BATCH, RID, bytes(8) + b"\x02\x00\x00"),
        "Notify": wire.frame(wire.NOTIFY, RID, bytes(8)),
        "PushAck": wire.frame(wire.PUSH_ACK, RID, bytes(9) + b"\x00\x01a"),
    }
    for name, data in server_only.items():
        closer.case(f"server-only {name} from the client", data, wrong, RID,
                    section="§3.2 R-3.2.1")
    digest = blake3.blake3(b"12345").digest()
    begin = wire.file_begin(RID, 0, 5, digest, "never-stored.txt")
    closer.case("Pull during an upload", begin + wire.pull(RID + 1, 0), wrong, RID + 1,
                section="§5.5 R-5.5.5")
    closer.case("FileChunk of another request during an upload",
                begin + wire.frame(wire.FILE_CHUNK, RID + 2, b"12345"), wrong, RID + 2,
                section="§5.5 R-5.5.5")
    closer.case("MakeDir during an upload", begin + wire.make_dir(RID + 3, "nope"),
                wrong, RID + 3, section="§5.5 R-5.5.5")
    closer.case("chunks beyond the announced size",
                begin + wire.frame(wire.FILE_CHUNK, RID, b"123456"),
                wire.CODE["SizeMismatch"], RID, section="§5.5 R-5.5.6")


def legal_edges(ctx: Ctx) -> None:
    """§6.1 limits are inclusive: these must be stored (a 4,096-byte path,
    64 components, a 255-byte component, C1 controls)."""
    conn = ctx.resume("edges", 1, visit=True)
    upload(ctx, conn, "/".join(["e"] * 64), b"64 components\n")
    upload(ctx, conn, "n" * 255, b"a 255-byte name\n")
    upload(ctx, conn, "c1\u0085\u009f.txt", b"C1 controls are allowed\n")
    # every legal path is storable, 4,096 bytes included (issue 10
    # item 5); the mirror check and a Fetch show it was stored whole.
    for total in (3900, 4095, 4096):
        path = long_path(total)
        assert len(path.encode()) == total and wire.path_error(path.encode()) is None
        upload(ctx, conn, path, b"long path %d\n" % total)
        got = conn.fetch(path, 0)
        expect(got == ("file", ctx.ver[path], b"long path %d\n" % total), "R-6.1.2",
               f"Fetch of the stored {total}-byte path: {got!r}")
    for path in ("absent.txt", "photos"):
        got = conn.fetch(path, 0)
        expect(got == ("error", wire.CODE["NotFound"]), "§5.5 R-5.5.8",
               f"Fetch of {path!r} (absent or a directory): {got!r}")
    rid = conn.next_rid()
    conn.send(wire.frame(wire.PONG, rid))  # ignored in Ready (§4.3)
    conn.ping()
    conn.close()
    log("ok   legal path edges stored; Fetch NotFound keeps the connection; Pong ignored")


def run(ctx: Ctx) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    seed = int(os.environ.get("PYCLIENT_SEED", seed))
    log(f"error cases: seed {seed} (replay with PYCLIENT_SEED={seed})")
    closer = Closer(ctx)
    bad_paths(closer, random.Random(seed))
    bad_headers(closer)
    bad_payloads(closer)
    out_of_phase(closer)
    legal_edges(ctx)
    ctx.check_mirror("error cases")
