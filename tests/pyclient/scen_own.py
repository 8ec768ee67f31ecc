"""A device's own earlier pushes are never "someone else's change" (§7.2,
R-7.2.2; rows of R-5.4.5, R-5.4.7, R-5.4.8), and the Notify rules of a push
that changed nothing or only part (R-4.4.1, R-5.4.2).

Client 1 (`a`) pushes with bases and cursors that predate its own later
pushes: Applied. Client 2 (`b`) pushes the same way over client 1's
changes: Conflict or Stale. `a` never pulled, so its honest cursor is 0.
"""

from __future__ import annotations

import blake3

import wire
from conn import Conn
from ctx import Ctx
from scen_conflict import conflict_upload
from scen_push import simple, upload
from verdict import expect, log


def uploads(ctx: Ctx, a: Conn, b: Conn) -> None:
    v1 = upload(ctx, a, "own/u.txt", b"own v1\n")
    upload(ctx, a, "own/u.txt", b"own v2\n", base=v1)
    upload(ctx, a, "own/u.txt", b"own v3 from the old base\n", base=v1)
    upload(ctx, a, "own/u.txt", b"own v4 from base 0\n", base=0)
    # Two uploads of one file pipelined from the same base (R-7.2.2's example).
    base = ctx.ver["own/u.txt"]
    rids = [a.next_rid(), a.next_rid()]
    frames = b""
    datas = [b"pipelined first\n", b"pipelined second\n"]
    for rid, data in zip(rids, datas):
        frames += (wire.file_begin(rid, base, len(data), blake3.blake3(data).digest(),
                                   "own/u.txt") + wire.frame(wire.FILE_CHUNK, rid, data)
                   + wire.frame(wire.FILE_END, rid))
    a.send(frames)
    for rid, data in zip(rids, datas):
        v = ctx.expect_ack(f"R-7.2.2: pipelined upload rid {rid} of own/u.txt from "
                           f"base {base}", a.push_reply(rid), wire.APPLIED, "own/u.txt")[1]
        ctx.created("own/u.txt", v, data)
    # Another device with an old base: Conflict (R-5.4.5 "another client").
    conflict_upload(ctx, b, "own/u.txt", b"B's edit from v1\n", v1)
    log("ok   R-7.2.2 uploads: own older bases Applied (also pipelined), "
        "another device's Conflict")


def deletes(ctx: Ctx, a: Conn, b: Conn) -> None:
    v1 = upload(ctx, a, "own/d.txt", b"d v1\n")
    upload(ctx, a, "own/d.txt", b"d v2\n", base=v1)
    simple(ctx, a, "R-5.4.7: Delete by the client whose own later upload moved the "
           "version past the base", lambda r: wire.delete(r, v1, "own/d.txt"),
           wire.APPLIED, "own/d.txt")
    ctx.removed("own/d.txt")
    # Only the last change counts: b made it, a changed it after.
    vb = upload(ctx, b, "own/e.txt", b"made by B\n")
    upload(ctx, a, "own/e.txt", b"A's edit\n", base=vb)
    simple(ctx, b, "R-5.4.7: Delete by B of a file A changed after B's upload",
           lambda r: wire.delete(r, vb, "own/e.txt"), wire.STALE, "own/e.txt",
           ctx.ver["own/e.txt"])
    vg = upload(ctx, b, "own/g.txt", b"made by B\n")
    simple(ctx, a, "R-5.4.7: Delete with a wrong base of another device's file",
           lambda r: wire.delete(r, vg + 1000, "own/g.txt"), wire.STALE, "own/g.txt", vg)
    log("ok   R-7.2.2 deletes: own old base Applied; another device's last change Stale")


def remove_dirs(ctx: Ctx, a: Conn, b: Conn) -> None:
    # The case: create d/f, remove d before any pull: Applied, all gone.
    upload(ctx, a, "own/rd/f.txt", b"made then removed\n")
    v = simple(ctx, a, "MakeDir own/rd/sub", lambda r: wire.make_dir(r, "own/rd/sub"),
               wire.APPLIED, "own/rd/sub")[1]
    ctx.created("own/rd/sub", v, None)
    simple(ctx, a, "R-5.4.8: RemoveDir (cursor 0) of a directory only this client filled",
           lambda r: wire.remove_dir(r, 0, "own/rd"), wire.APPLIED, "own/rd")
    ctx.removed("own/rd")
    # Another device's newer file is kept; the client's own is removed: Stale,
    # one change, Notify to the other connection.
    upload(ctx, b, "own/rd2/theirs.txt", b"B's file\n")
    upload(ctx, a, "own/rd2/mine.txt", b"A's file\n")
    b.drain_notifies(10.0, until=ctx.head)
    b.notifies.clear()
    rid = a.next_rid()
    ctx.expect_ack("R-5.4.8: RemoveDir keeping another device's newer file",
                   a.push(wire.remove_dir(rid, 0, "own/rd2"), rid), wire.STALE,
                   "own/rd2", ctx.head + 1)
    ctx.head += 1
    ctx.removed("own/rd2/mine.txt")
    notes = b.drain_notifies(10.0, until=ctx.head)
    expect(ctx.head in notes, "R-4.4.1", f"no Notify (head {ctx.head}) to the other "
           f"connection after a Stale RemoveDir that removed something: {notes}")
    b.notifies.clear()
    # Nothing removable: Stale with the directory's version, no change, no Notify.
    upload(ctx, b, "own/rd3/theirs.txt", b"B's only file\n")  # no Notify to b
    rid = a.next_rid()
    ctx.expect_ack("R-5.4.8: RemoveDir that can remove nothing", a.push(
        wire.remove_dir(rid, 0, "own/rd3"), rid), wire.STALE, "own/rd3",
        ctx.ver["own/rd3"])
    upload(ctx, a, "own/u.txt", ctx.model.tree["own/u.txt"], base=0,
           status=wire.UNCHANGED)
    a.ping()  # both pushes were applied before this Pong
    notes = b.drain_notifies(1.0)
    expect(not notes, "R-4.4.1", f"Notify {notes} after pushes that changed nothing "
           f"(head still {ctx.head})")
    log("ok   R-7.2.2 RemoveDir: own subtree Applied; another device's file kept "
        "(Stale, one change, Notify); nothing removable: Stale, no change, no Notify")


def second_connection(ctx: Ctx, a: Conn) -> None:
    """R-3.5.4: one client ID on two connections is one device: each gets
    the other's Notify, and its pushes on either count as its own (R-7.2.2)."""
    a2 = ctx.resume("A-second-connection", 1, visit=True)
    v1 = upload(ctx, a, "own/x.txt", b"x1\n")
    upload(ctx, a, "own/x.txt", b"x2\n", base=v1)
    notes = a2.drain_notifies(10.0, until=ctx.head)
    expect(ctx.head in notes, "§3.5 R-3.5.4", f"client 1's second connection got "
           f"Notifies {notes}, expected head {ctx.head}")
    simple(ctx, a2, "R-7.2.2: Delete on client 1's second connection with the base "
           "its first connection overtook", lambda r: wire.delete(r, v1, "own/x.txt"),
           wire.APPLIED, "own/x.txt")
    ctx.removed("own/x.txt")
    notes = a.drain_notifies(10.0, until=ctx.head)
    expect(ctx.head in notes, "§3.5 R-3.5.4", f"client 1's first connection got "
           f"Notifies {notes} after its second one pushed, expected head {ctx.head}")
    a.notifies.clear()
    a2.close()
    log("ok   R-3.5.4: two connections of one client: Notify each way, pushes on "
        "either are the device's own")


def run(ctx: Ctx, a: Conn, b: Conn) -> None:
    uploads(ctx, a, b)
    second_connection(ctx, a)
    deletes(ctx, a, b)
    remove_dirs(ctx, a, b)
    ctx.check_mirror("own-change pushes")
    a.notifies.clear()
    b.notifies.clear()
