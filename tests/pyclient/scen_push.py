"""Every push kind and every row of the §5.4 server rules that needs no second
device: uploads (empty, multi-chunk, odd and empty chunks, 1 MiB chunks),
MakeDir, Delete, RemoveDir, Rename; Unchanged/Stale answers; Hash- and
SizeMismatch (connection stays open); pipelined pushes; Notify to the other
connection and none to the pusher (§4.4)."""

from __future__ import annotations

import random

import blake3

import wire
from conn import Conn
from ctx import Ctx
from verdict import expect, log


def upload(ctx: Ctx, conn: Conn, path: str, data: bytes, base: int = 0,
           status: int = wire.APPLIED, chunk: int = wire.CHUNK_SIZE) -> int:
    """Uploads and checks the PushAck; updates the model when Applied."""
    version = None if status == wire.APPLIED else ctx.ver.get(path, 0)
    value = ctx.expect_ack(f"upload {path!r} ({len(data)} B, base {base})",
                           conn.upload(path, data, base, chunk), status, path, version)
    if status == wire.APPLIED:
        ctx.created(path, value[1], data)
    return value[1]


def simple(ctx: Ctx, conn: Conn, what: str, make, status: int, path: str,
           version: int | None = None):
    rid = conn.next_rid()
    return ctx.expect_ack(what, conn.push(make(rid), rid), status, path, version)


def uploads(ctx: Ctx, a: Conn, rng: random.Random) -> None:
    upload(ctx, a, "hello.txt", b"hello\n")
    upload(ctx, a, "empty.txt", b"")
    upload(ctx, a, "docs/deep/a.txt", b"nested parents are created\n")
    upload(ctx, a, "big/blob.bin", rng.randbytes(700_000))
    upload(ctx, a, "big/mib.bin", rng.randbytes(1_500_000), chunk=wire.MAX_PAYLOAD)
    upload(ctx, a, "naïve café/ünï cödé 📁.bin", b"unicode path\n")
    # §5.5.1's contents: BLAKE3's multi-chunk tree, 300,000 B as 262,144 + 37,856.
    for n in (2500, 300000):
        upload(ctx, a, f"{n}.bin", bytes(i % 251 for i in range(n)))
    upload(ctx, a, "keep/a/.cloudservice", b"a deeper .cloudservice is legal (P13)\n")
    # No Unicode normalisation, no case folding (§1.4): four distinct paths.
    for name in ("Caf\u00e9.txt", "Cafe\u0301.txt", "case.txt", "CASE.txt"):
        upload(ctx, a, name, name.encode())
    # Any chunk length 0..1 MiB, an empty chunk included (§5.5).
    data = rng.randbytes(100_003)
    rid = a.next_rid()
    frames = [wire.file_begin(rid, 0, len(data), blake3.blake3(data).digest(), "odd.bin")]
    for lo, hi in ((0, 0), (0, 1), (1, 1000), (1000, 1000), (1000, len(data))):
        frames.append(wire.frame(wire.FILE_CHUNK, rid, data[lo:hi]))
    a.send(b"".join(frames) + wire.frame(wire.FILE_END, rid))
    value = ctx.expect_ack("upload odd.bin with chunks 0,1,999,0,rest",
                           a.push_reply(rid), wire.APPLIED, "odd.bin")
    ctx.created("odd.bin", value[1], data)
    # Same content again: Unchanged whatever the base (§5.4).
    upload(ctx, a, "hello.txt", b"hello\n", base=ctx.ver["hello.txt"], status=wire.UNCHANGED)
    upload(ctx, a, "hello.txt", b"hello\n", base=0, status=wire.UNCHANGED)
    upload(ctx, a, "hello.txt", b"hello, world\n", base=ctx.ver["hello.txt"])
    ctx.check_mirror("uploads")


def mismatches(ctx: Ctx, a: Conn) -> None:
    data = b"0123456789"
    rid = a.rid + 1
    ctx.expect_error("upload with a wrong hash", a.upload("bad-hash.txt", data, 0,
                     digest=blake3.blake3(b"other").digest()),
                     wire.CODE["HashMismatch"], rid)
    rid = a.rid + 1
    ctx.expect_error("upload of 10 of 11 announced bytes", a.upload(
        "short.txt", data, 0, size=11), wire.CODE["SizeMismatch"], rid)
    a.ping()  # both errors leave the connection open (§4.5)
    log("ok   HashMismatch and short SizeMismatch: request ID kept, connection open")


def dirs_and_deletes(ctx: Ctx, a: Conn) -> None:
    v = simple(ctx, a, "MakeDir photos", lambda r: wire.make_dir(r, "photos"),
               wire.APPLIED, "photos")[1]
    ctx.created("photos", v, None)
    simple(ctx, a, "MakeDir photos again", lambda r: wire.make_dir(r, "photos"),
           wire.UNCHANGED, "photos", v)
    v = simple(ctx, a, "MakeDir x/y/z", lambda r: wire.make_dir(r, "x/y/z"),
               wire.APPLIED, "x/y/z")[1]
    ctx.created("x/y/z", v, None)
    ev = ctx.ver["empty.txt"]
    # this client made empty.txt's version, so a wrong base is still
    # its own: Applied (another device's wrong base is Stale: scen_own).
    simple(ctx, a, "R-5.4.7: Delete of the client's own file with a wrong base",
           lambda r: wire.delete(r, ev + 1000, "empty.txt"), wire.APPLIED, "empty.txt")
    ctx.removed("empty.txt")
    simple(ctx, a, "Delete of an absent file", lambda r: wire.delete(r, ev, "empty.txt"),
           wire.UNCHANGED, "empty.txt", 0)
    simple(ctx, a, "Delete of a directory", lambda r: wire.delete(r, 0, "photos"),
           wire.STALE, "photos", ctx.ver["photos"])
    simple(ctx, a, "RemoveDir x", lambda r: wire.remove_dir(r, ctx.head, "x"),
           wire.APPLIED, "x")
    ctx.removed("x")
    simple(ctx, a, "RemoveDir of an absent dir", lambda r: wire.remove_dir(r, ctx.head, "x"),
           wire.UNCHANGED, "x", 0)
    simple(ctx, a, "RemoveDir of a file", lambda r: wire.remove_dir(r, ctx.head, "hello.txt"),
           wire.STALE, "hello.txt", ctx.ver["hello.txt"])
    ctx.check_mirror("MakeDir/Delete/RemoveDir")


def renames(ctx: Ctx, a: Conn) -> None:
    def rename(src: str, dst: str, status: int, path: str, version: int | None = None):
        return simple(ctx, a, f"Rename {src!r} → {dst!r}",
                      lambda r: wire.rename(r, ctx.ver.get(src, 0), src, dst),
                      status, path, version)

    v = rename("hello.txt", "docs/greeting.txt", wire.APPLIED, "docs/greeting.txt")[1]
    moved_rename(ctx, "hello.txt", "docs/greeting.txt", v)
    v = rename("docs", "papers/docs", wire.APPLIED, "papers/docs")[1]
    moved_rename(ctx, "docs", "papers/docs", v)
    rename("nothing-here", "x2", wire.STALE, "nothing-here", 0)
    rename("papers", "papers/docs/inner", wire.STALE, "papers", ctx.ver["papers"])
    rename("papers", "papers", wire.STALE, "papers", ctx.ver["papers"])
    # A file "into itself" is both "inside from" and "ancestor is a file":
    # the rows are read in order, so Stale.
    rename("case.txt", "case.txt/x", wire.STALE, "case.txt", ctx.ver["case.txt"])
    v = rename("case.txt", "Case.txt", wire.APPLIED, "Case.txt")[1]
    moved_rename(ctx, "case.txt", "Case.txt", v)
    ctx.check_mirror("Renames")


def moved_rename(ctx: Ctx, src: str, dst: str, version: int) -> None:
    moved = [src] + ctx.model.below(src)
    parts = dst.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if parent not in ctx.model.tree:
            ctx.ver[parent] = version
    ctx.model.rename(src, dst)
    for p in moved:
        ctx.ver.pop(p, None)
        ctx.ver[dst + p[len(src):]] = version


def pipelined(ctx: Ctx, a: Conn) -> None:
    """Five MakeDirs in one write: five PushAcks, in order (§3.4)."""
    rids = [a.next_rid() for _ in range(5)]
    a.send(b"".join(wire.make_dir(r, f"pipe/{i}") for i, r in enumerate(rids)))
    for i, rid in enumerate(rids):
        v = ctx.expect_ack(f"pipelined MakeDir pipe/{i}", a.push_reply(rid),
                           wire.APPLIED, f"pipe/{i}")[1]
        ctx.created(f"pipe/{i}", v, None)
    log("ok   5 pipelined pushes answered in order")


def run(ctx: Ctx, a: Conn, b: Conn) -> None:
    rng = random.Random(10)
    uploads(ctx, a, rng)
    mismatches(ctx, a)
    dirs_and_deletes(ctx, a)
    renames(ctx, a)
    pipelined(ctx, a)
    log(f"ok   every push kind; head {ctx.head}")
    notes = b.drain_notifies(10.0, until=ctx.head)
    expect(bool(notes) and notes[-1] == ctx.head, "§4.4 R-4.4.1",
           f"other connection's Notifies {notes[-5:]}, expected the last to be head {ctx.head}")
    expect(notes == sorted(notes), "§4.4 R-4.4.2", f"Notify heads go backwards: {notes}")
    expect(not a.notifies, "§4.4 R-4.4.1", f"the pushing connection got Notify {a.notifies}")
    b.notifies.clear()
    log(f"ok   Notify: other connection got {len(notes)} (last head {notes[-1]}), pusher none")
