"""One conflict directory per pushed subtree (§7.4.1, R-7.4.1.1..5; rows of
R-5.4.5, R-5.4.6, R-5.4.9): every push of client 2 (`b`) below the file
`sub-f.txt` lands in ONE conflict directory D, reported path by path; client
1 (`a`) gets its own; a place in D that is taken is decided there; once D is
gone the next push gets a fresh name.
"""

from __future__ import annotations

import time

import conflict
import wire
from conn import Conn
from ctx import Ctx
from replica import Replica
from scen_conflict import push
from scen_errors import long_path
from scen_pull import same_as_mirror
from scen_push import moved_rename, simple, upload
from verdict import expect, log

F = "sub-f.txt"


def into(ctx: Ctx, what: str, reply, want: str, data: bytes | None) -> int:
    """A push that must be Conflict at exactly `want` (a place in a
    remembered conflict directory, R-7.4.1.2/R-7.4.1.4); models it."""
    version = ctx.expect_ack(what, reply, wire.CONFLICT, want)[1]
    ctx.created(want, version, data)
    return version


def first_and_later(ctx: Ctx, a: Conn, b: Conn) -> str:
    upload(ctx, a, F, b"a file where B will push a folder\n")
    upload(ctx, a, "sub-r/inner.txt", b"a directory B renames below the file\n")
    # R-7.4.1.1: the first push below F gets a fresh §7.4 name of F.
    got = ctx.expect_conflict("R-7.4.1.1: upload below a file", b, lambda: b.upload(
        f"{F}/a.txt", b"B's a\n", 0), F, "/a.txt")
    d = got[:-len("/a.txt")]
    ctx.created(got, ctx.head, b"B's a\n")
    # R-7.4.1.2: every later push of b below F goes below the same D.
    into(ctx, "R-7.4.1.2: second upload below the file", b.upload(
        f"{F}/sub/b.txt", b"B's b\n", 0), f"{d}/sub/b.txt", b"B's b\n")
    into(ctx, "R-7.4.1.2: MakeDir below the file", push(b, lambda r: wire.make_dir(
        r, f"{F}/deeper/dir")), f"{d}/deeper/dir", None)
    # The base is the version of the directory moved (§5.4 Rename): with 0,
    # a directory client 1 made that client 2 has not pulled is Stale
    # not moved.
    v = ctx.expect_ack("R-7.4.1.2: Rename of a directory below the file", push(
        b, lambda r: wire.rename(r, ctx.ver["sub-r"], "sub-r", f"{F}/sub-r")), wire.CONFLICT,
        f"{d}/sub-r")[1]
    moved_rename(ctx, "sub-r", f"{d}/sub-r", v)
    # R-7.4.1.5: MakeDir of F itself lands on D, a directory: Unchanged.
    simple(ctx, b, "R-7.4.1.5: MakeDir of the file's path (lands on D)",
           lambda r: wire.make_dir(r, F), wire.UNCHANGED, d, ctx.ver[d])
    ctx.check_mirror("pushes below a file")
    log(f"ok   R-7.4.1: 4 pushes below {F!r} in one conflict directory {d!r}")
    return d


def taken_places(ctx: Ctx, a: Conn, b: Conn, d: str) -> None:
    # R-7.4.1.5: b's own earlier file there is replaced; same content Unchanged.
    into(ctx, "R-7.4.1.5: upload onto b's own earlier file in D", b.upload(
        f"{F}/a.txt", b"B's a, edited\n", 0), f"{d}/a.txt", b"B's a, edited\n")
    ctx.expect_ack("R-7.4.1.5: same content again below the file", b.upload(
        f"{F}/a.txt", b"B's a, edited\n", 0), wire.UNCHANGED, f"{d}/a.txt",
        ctx.ver[f"{d}/a.txt"])
    # ... but another client's change there is never replaced.
    upload(ctx, a, f"{d}/sub/b.txt", b"A edits B's copy\n", base=ctx.ver[f"{d}/sub/b.txt"])
    got = ctx.expect_conflict("R-7.4.1.5: upload onto a place in D another client "
                              "changed", b, lambda: b.upload(f"{F}/sub/b.txt", b"B again\n",
                                                             0), f"{d}/sub/b.txt")
    ctx.created(got, ctx.head, b"B again\n")
    # Client 1 gets a conflict directory of its own (the mapping is per client).
    got = ctx.expect_conflict("R-7.4.1.1: another client's push below the file", a,
                              lambda: a.upload(f"{F}/from-a.txt", b"A's\n", 0),
                              F, "/from-a.txt")
    ctx.created(got, ctx.head, b"A's\n")
    expect(not got.startswith(d + "/"), "R-7.4.1.1", f"client 1's push went into "
           f"client 2's conflict directory: {got!r}")


def more_places(ctx: Ctx, b: Conn, d: str) -> None:
    """The rest of the family: a file onto F itself is an ordinary conflict
    of F (D's name is taken); in D, a file where a directory is, a directory
    where b's own file is, and a directory renamed onto a non-empty
    directory each go to a §7.4 name of that place (R-7.4.1.5)."""
    def conflict(what: str, send, place: str, data: bytes | None, src: str = "") -> None:
        got = ctx.expect_conflict(what, b, send, place)
        if src:
            moved_rename(ctx, src, got, ctx.head)
        else:
            ctx.created(got, ctx.head, data)

    conflict("R-5.4.5: a file onto F while D exists", lambda: b.upload(
        F, b"B's own F\n", 0), F, b"B's own F\n")
    conflict("R-7.4.1.5: a file where D holds a directory", lambda: b.upload(
        f"{F}/sub", b"file onto D/sub\n", 0), f"{d}/sub", b"file onto D/sub\n")
    conflict("R-7.4.1.5: MakeDir where D holds b's own file", lambda: push(
        b, lambda r: wire.make_dir(r, f"{F}/a.txt")), f"{d}/a.txt", None)
    upload(ctx, b, "sub-mvd/y.txt", b"y\n")
    conflict("R-7.4.1.5: a directory renamed onto a non-empty directory in D",
             lambda: push(b, lambda r: wire.rename(r, 0, "sub-mvd", f"{F}/sub")),
             f"{d}/sub", None, src="sub-mvd")
    ctx.check_mirror("pushes onto taken places in a conflict directory")


def rename_dir_onto_file(ctx: Ctx, b: Conn, d: str) -> None:
    """R-5.4.9 + R-7.4.1.5: a directory renamed onto F, whose conflict
    directory D of this client exists and is not empty, is decided in D:
    read as a Rename onto the existing D (Conflict at a §7.4 name of D), or
    as "a directory onto a directory" (Unchanged, path D). Never Storage,
    which promises that a retry may succeed (§4.5)."""
    upload(ctx, b, "sub-mv/inner.txt", b"a directory renamed onto the file\n")
    rid = b.next_rid()
    frame = wire.rename(rid, 0, "sub-mv", F)
    t0 = time.time()
    frm, value = b.push(frame, rid)
    t1 = time.time()
    if frm.kind == wire.ERROR:
        expect(False, "§7.4.1 R-7.4.1.5", f"Rename of directory 'sub-mv' onto {F!r} "
               f"(conflict directory {d!r} exists, not empty): sent {frame.hex(' ')}, "
               f"got Error {wire.error_name(value[0])} rid {frm.rid} {value[1]!r} "
               f"({wire.frame(frm.kind, frm.rid, frm.payload)[:16].hex(' ')} …)",
               known="rename-dir-onto-conflict-dir-storage")
        return  # an Error: nothing changed (§4.5)
    status, version, path = value
    if status == wire.UNCHANGED:
        expect(path == d, "R-7.4.1.5", f"Unchanged Rename onto D reports {path!r}")
        return
    why = conflict.match(path, d, b.client_id, t0, t1, lambda p: p in ctx.model.tree)
    expect(status == wire.CONFLICT and why is None, "R-7.4.1.5",
           f"Rename of a directory onto {F!r}: {wire.STATUS_NAMES[status]} {path!r} ({why})")
    ctx.head += 1
    expect(version == ctx.head, "R-5.4.3", f"Conflict version {version}, head {ctx.head}")
    moved_rename(ctx, "sub-mv", path, version)


def gone(ctx: Ctx, rep: Replica, d: str) -> None:
    """R-7.4.1.2: once D is gone, the next push starts a fresh directory."""
    b = rep.conn
    rep.sync()
    simple(ctx, b, "RemoveDir of the conflict directory", lambda r: wire.remove_dir(
        r, rep.cursor, d), wire.APPLIED, d)
    ctx.removed(d)
    got = ctx.expect_conflict("R-7.4.1.2: push below the file after D is gone", b,
                              lambda: b.upload(f"{F}/after.txt", b"after\n", 0),
                              F, "/after.txt")
    ctx.created(got, ctx.head, b"after\n")
    ctx.check_mirror("conflict directories")
    log(f"ok   R-7.4.1.5: taken places in D decided there; client 1 has its own "
        f"directory; after D is gone: {got!r}")


def unstorable(ctx: Ctx, a: Conn, b: Conn) -> None:
    """§4.5 code 13 (R-4.5.4, R-4.5.7): a legal 4,096-byte path below a file
    whose conflict directory name is longer than the file's would break §6.1
    once moved there: Error Unstorable with the push's ID, connection open,
    nothing changed (no new head, no Notify), and the same again on a retry."""
    upload(ctx, a, "uz.txt", b"a file with a short name\n")
    path = "uz.txt/" + long_path(4096 - len("uz.txt/"))
    expect(len(path.encode()) == 4096 and wire.path_error(path.encode()) is None,
           "R-6.1.2", "test set-up: the path must be legal")
    a.ping()  # reads any Notify still queued for earlier pushes
    a.notifies.clear()
    for attempt in (1, 2):
        rid = b.rid + 1
        ctx.expect_error(f"upload of a 4,096-byte path below a file (attempt {attempt})",
                         b.upload(path, b"x\n", 0), wire.CODE["Unstorable"], rid)
        rid = b.next_rid()
        ctx.expect_error(f"MakeDir of a 4,096-byte path below a file (attempt {attempt})",
                         b.push(wire.make_dir(rid, path), rid), wire.CODE["Unstorable"], rid)
    b.ping()  # the connection stays open (§4.5)
    notes = a.drain_notifies(1.0)
    expect(not notes, "§4.4 R-4.4.1", f"Notify {notes} after pushes answered Unstorable")
    ctx.check_mirror("pushes answered Unstorable")
    log("ok   Unstorable (code 13): a 4,096-byte path below a file, twice, upload and "
        "MakeDir: the push's ID, connection open, nothing changed, no Notify")


def run(ctx: Ctx, a: Conn, rep: Replica) -> None:
    unstorable(ctx, a, rep.conn)
    d = first_and_later(ctx, a, rep.conn)
    taken_places(ctx, a, rep.conn, d)
    more_places(ctx, rep.conn, d)
    rename_dir_onto_file(ctx, rep.conn, d)
    gone(ctx, rep, d)
    rep.sync()
    same_as_mirror(ctx, rep, "conflict directories")
    a.notifies.clear()
    rep.conn.notifies.clear()
