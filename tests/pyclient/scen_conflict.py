"""Conflicts (§5.4 rows marked Conflict, §7.3, §7.4): two devices editing the
same file, same-second second attempts, names without/with several
extensions and dotfiles, uploads onto a directory and below a file, MakeDir
and Rename onto files; deletions never win over changes. The replica then
pulls both sides and must equal the mirror."""

from __future__ import annotations

import wire
from conn import Conn
from ctx import Ctx
from replica import Replica
from scen_pull import same_as_mirror
from scen_push import moved_rename, simple, upload
from verdict import log


def conflict_upload(ctx: Ctx, conn: Conn, path: str, data: bytes, base: int,
                    target: str | None = None, suffix: str = "") -> str:
    """Upload that must end in Conflict at a §7.4 name of `target` (default
    `path`) + `suffix`; the model gets the pushed content there."""
    got = ctx.expect_conflict(f"conflicting upload {path!r}", conn,
                              lambda: conn.upload(path, data, base),
                              target or path, suffix)
    ctx.created(got, ctx.head, data)
    log(f"ok   conflict: {path!r} → {got!r}")
    return got


def two_devices(ctx: Ctx, a: Conn, rep: Replica) -> None:
    b = rep.conn
    upload(ctx, a, "notes.txt", b"version 1\n")
    long_name = "s" * 240 + "é" * 3 + ".txt"  # step 3 cuts the stem to fit 255 bytes
    for name in (".bashrc", "Makefile", "archive.tar.gz", "photos.2026", "mod.txt", long_name):
        upload(ctx, a, name, b"made by A: " + name.encode())
    rep.sync()
    base = rep.versions["notes.txt"]
    upload(ctx, a, "notes.txt", b"A's edit\n", base=base)
    conflict_upload(ctx, b, "notes.txt", b"B's edit\n", base)
    conflict_upload(ctx, b, "notes.txt", b"B's second edit\n", base)
    conflict_upload(ctx, b, "notes.txt", b"B's third edit\n", base)
    for name in (".bashrc", "Makefile", "archive.tar.gz", "photos.2026", long_name):
        conflict_upload(ctx, b, name, b"B thinks it is new: " + name.encode(), 0)
    # A modified file beats a concurrent delete, both ways round (§7.3).
    v = rep.versions["mod.txt"]
    upload(ctx, a, "mod.txt", b"A modified it\n", base=v)
    simple(ctx, b, "Delete of a file modified meanwhile",
           lambda r: wire.delete(r, v, "mod.txt"), wire.STALE, "mod.txt", ctx.ver["mod.txt"])
    simple(ctx, a, "Delete mod.txt", lambda r: wire.delete(r, ctx.ver["mod.txt"], "mod.txt"),
           wire.APPLIED, "mod.txt")
    ctx.removed("mod.txt")
    upload(ctx, b, "mod.txt", b"B modified the deleted file\n", base=v)
    ctx.check_mirror("two-device edits")


def structural(ctx: Ctx, a: Conn, b: Conn) -> None:
    conflict_upload(ctx, b, "photos", b"a file where a directory is\n", ctx.ver["photos"])
    got = ctx.expect_conflict("MakeDir where a file is", b, lambda: push(
        b, lambda r: wire.make_dir(r, "notes.txt")), "notes.txt")
    ctx.created(got, ctx.head, None)
    # R-7.4.1.2: a later push below notes.txt goes below that same directory.
    v = ctx.expect_ack("upload below the file after a MakeDir of it", b.upload(
        "notes.txt/sub.txt", b"below a file\n", 0), wire.CONFLICT, got + "/sub.txt")[1]
    ctx.created(got + "/sub.txt", v, b"below a file\n")
    upload(ctx, a, "r-src.txt", b"to be renamed onto notes.txt\n")
    got = ctx.expect_conflict("Rename of a file onto an existing file", b, lambda: push(
        b, lambda r: wire.rename(r, 0, "r-src.txt", "notes.txt")), "notes.txt")
    moved_rename(ctx, "r-src.txt", got, ctx.head)
    ctx.check_mirror("structural conflicts")


def push(conn: Conn, make):
    rid = conn.next_rid()
    return conn.push(make(rid), rid)


def run(ctx: Ctx, a: Conn, rep: Replica) -> None:
    two_devices(ctx, a, rep)
    structural(ctx, a, rep.conn)
    rep.sync()
    same_as_mirror(ctx, rep, "conflicts")
    a.notifies.clear()
    rep.conn.notifies.clear()
