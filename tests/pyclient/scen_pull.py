"""Pull (§5.1–§5.3): full listing, incremental cursors, the up-to-date empty
batch, a cursor above head, Ack, Notify-driven pulls; the replica's folder
must equal the server's mirror byte for byte. Also RemoveDir Stale (§5.4,
issue 10 item 2), which needs a second device's cursor."""

from __future__ import annotations

import os

import blake3

import tree
import wire
from conn import Conn
from ctx import Ctx
from replica import Replica
from scen_push import moved_rename, simple, upload
from verdict import expect, log


def same_as_mirror(ctx: Ctx, rep: Replica, when: str) -> None:
    mine = tree.read_folder(rep.folder, skip_top=".cloudservice")
    theirs = tree.read_folder(ctx.server.mirror(ctx.user_hex))
    problems = tree.diff(theirs, mine)
    expect(not problems, "§5.2 R-5.2.10", f"replica after {when} differs from the server: "
           + "; ".join(problems))
    log(f"ok   replica folder equals the server mirror after {when} ({len(mine)} entries)")


def listing_matches_model(ctx: Ctx, entries: list[wire.Entry]) -> None:
    listed = {e.path: e for e in entries}
    expect(set(listed) == set(ctx.model.tree), "§5.1 R-5.1.1", "full listing paths differ "
           f"from the tree: {sorted(set(listed) ^ set(ctx.model.tree))[:6]}")
    for path, e in listed.items():
        data = ctx.model.tree[path]
        if data is None:
            expect(e.state == wire.ST_DIR, "§5.2 R-5.2.2", f"{path!r} listed as "
                   f"{wire.STATE_NAMES[e.state]}, it is a directory")
        else:
            expect(e.state == wire.ST_FILE and e.size == len(data)
                   and e.hash == blake3.blake3(data).digest(), "§5.2 R-5.2.9",
                   f"{path!r} listed with a wrong state, size or hash")
        if path in ctx.ver:
            expect(e.version == ctx.ver[path], "§7.1 R-7.1.3", f"{path!r} listed at version "
                   f"{e.version}, its last change was {ctx.ver[path]}")


def pull_then_ping(ctx: Ctx, b: Conn) -> None:
    """Pull and Ping in one write: the Pong after the whole pull reply (§3.4)."""
    pull_rid, ping_rid = b.next_rid(), b.next_rid()
    b.send(wire.pull(pull_rid, 0) + wire.frame(wire.PING, ping_rid))
    order = []
    while "last" not in order or "pong" not in order:
        frm, value = b.reply()
        if frm.kind == wire.PONG:
            expect(frm.rid == ping_rid, "§4.3 R-4.3.1", f"Pong rid {frm.rid}, Ping's {ping_rid}")
            order.append("pong")
        else:
            expect(frm.kind == wire.CHANGE_BATCH and frm.rid == pull_rid, "§3.4 R-3.4.5",
                   f"unexpected {frm.name()} rid {frm.rid}")
            order.append("last" if value.flags & wire.FLAG_LAST else "batch")
    expect(order[-1] == "pong", "§3.4 R-3.4.8", f"pipelined Pull then Ping: reply order "
           f"{order} (the Pong overtook the pull reply)")
    log(f"ok   pipelined Pull + Ping: {order}")


def first_pulls(ctx: Ctx, rep: Replica) -> None:
    head, full, entries = rep.sync()
    expect(full and head == ctx.head, "§5.1 R-5.1.1", f"Pull(0): full={full} head={head}, "
           f"expected a full listing at head {ctx.head}")
    listing_matches_model(ctx, entries)
    same_as_mirror(ctx, rep, "a full pull")
    b = rep.conn
    head, full, entries = b.pull(ctx.head)
    expect(head == ctx.head and not full and not entries, "§5.1 R-5.1.1",
           f"Pull(head) answered head={head} full={full} {len(entries)} entries")
    head, full, entries = b.pull(ctx.head + 1000)
    expect(full and head == ctx.head, "§5.1 R-5.1.1", "Pull(cursor > head) is not a full listing")
    listing_matches_model(ctx, entries)
    b.send(wire.ack(b.next_rid(), ctx.head + 1000))  # above head: taken as head
    b.ping()  # an Ack has no reply: the Pong is the next frame
    got = b.fetch("big/mib.bin", 1)
    expect(got[0] == "file" and got[1] == ctx.ver["big/mib.bin"]
           and got[2] == ctx.model.tree["big/mib.bin"], "§5.5 R-5.5.8",
           "Fetch (informative version 1) must send the current version and content")
    log("ok   Pull(head) = one empty batch; Pull(cursor > head) = full; Ack has no reply")


def incremental(ctx: Ctx, a: Conn, rep: Replica) -> None:
    start = rep.cursor
    deleted_at: dict[str, int] = {}
    v = ctx.ver["odd.bin"]
    deleted_at["odd.bin"] = simple(ctx, a, "Delete odd.bin", lambda r: wire.delete(
        r, v, "odd.bin"), wire.APPLIED, "odd.bin")[1]
    ctx.removed("odd.bin")
    upload(ctx, a, "inc/new.txt", b"incremental\n")
    v = simple(ctx, a, "Rename papers → papers2", lambda r: wire.rename(
        r, 0, "papers", "papers2"), wire.APPLIED, "papers2")[1]
    deleted_at["papers"] = v
    below_papers = {p: v for p in ctx.model.below("papers")}
    moved_rename(ctx, "papers", "papers2", v)
    v = simple(ctx, a, "Rename inc → inc-moved", lambda r: wire.rename(
        r, 0, "inc", "inc-moved"), wire.APPLIED, "inc-moved")[1]
    moved_rename(ctx, "inc", "inc-moved", v)
    upload(ctx, a, "inc/again.txt", b"a path that came back\n")
    notes = rep.conn.drain_notifies(10.0, until=ctx.head)
    expect(bool(notes) and notes[-1] == ctx.head, "§4.4 R-4.4.1",
           f"Notifies {notes[-5:]} to the other device, expected head {ctx.head}")
    rep.conn.notifies.clear()
    head, full, entries = rep.sync()
    expect(not full and head == ctx.head, "§5.1 R-5.1.1", f"Pull({start}): full={full} "
           f"head={head}, expected incremental at {ctx.head}")
    listed = [(e.path, e.state) for e in entries]
    for path, seq in deleted_at.items():
        mine = [e for e in entries if e.path == path and e.state == wire.ST_DELETED]
        expect(bool(mine), "§5.2 R-5.2.5", f"incremental reply lacks Deleted {path!r}: {listed}")
        expect(mine[0].version == seq, "§7.1 R-7.1.3", f"Deleted {path!r} has version "
               f"{mine[0].version}, removed by change {seq}")
    for e in entries:  # entries below a Deleted dir are optional (a spec gap)
        if e.path in below_papers:
            expect(e.state == wire.ST_DELETED, "§5.2 R-5.2.14", f"{e.path!r} listed as "
                   f"{wire.STATE_NAMES[e.state]}, it was moved away")
            expect(e.version == v, "§7.1 R-7.1.3", f"Deleted {e.path!r} has version "
                   f"{e.version}, removed by change {v}")
    listed_below = sum(1 for e in entries if e.path in below_papers)
    log(f"     R-5.2.14: {listed_below} of {len(below_papers)} entries below the "
        "moved-away 'papers' listed (as Deleted)")
    inc = [e.state for e in entries if e.path == "inc"]
    expect(inc == [wire.ST_DELETED, wire.ST_DIR], "§5.2 R-5.2.4", f"'inc' moved away and "
           f"back must be listed Deleted then Dir, got {inc}")
    for e in entries:
        if e.state != wire.ST_DELETED:
            expect(e.version == ctx.ver.get(e.path), "§5.2 R-5.2.4", f"{e.path!r} at version "
                   f"{e.version}, current is {ctx.ver.get(e.path)}")
    same_as_mirror(ctx, rep, f"an incremental pull from {start}")


def run(ctx: Ctx, a: Conn, b: Conn) -> Replica:
    pull_then_ping(ctx, b)
    rep = Replica(b, os.path.join(ctx.workdir, "device-b"))
    first_pulls(ctx, rep)
    incremental(ctx, a, rep)
    return rep


def removedir_stale(ctx: Ctx, a: Conn, rep: Replica) -> None:
    """Head H, RemoveDir rm (cursor H) after another device added rm/new.txt:
    Stale, one change, rm/a.txt and rm/b.txt gone, rm/new.txt kept, Notify."""
    for name in ("a.txt", "b.txt"):
        upload(ctx, a, f"rm/{name}", name.encode())
    rep.sync()
    cursor = rep.cursor
    upload(ctx, a, "rm/new.txt", b"newer than the remover's cursor\n")
    a.drain_notifies(0.2)
    a.notifies.clear()
    b = rep.conn
    rid = b.next_rid()
    reply = b.push(wire.remove_dir(rid, cursor, "rm"), rid)
    ctx.expect_ack("R-5.4.8: RemoveDir rm keeping another device's newer file",
                   reply, wire.STALE, "rm", ctx.head + 1)
    ctx.head += 1  # one change, however many paths it removed
    for name in ("a.txt", "b.txt"):
        ctx.removed(f"rm/{name}")
    ctx.check_mirror("a Stale RemoveDir")
    notes = a.drain_notifies(10.0, until=ctx.head)
    expect(ctx.head in notes, "R-4.4.1", f"no Notify (head {ctx.head}) after a "
           f"RemoveDir that removed something; got {notes}")
    a.notifies.clear()
    head, _, entries = rep.sync()
    expect(head == ctx.head, "R-5.4.2", f"head {head} after the Stale RemoveDir, "
           f"expected {ctx.head}")
    gone = sorted((e.path, e.state, e.version) for e in entries
                  if e.path.startswith("rm/") and e.state == wire.ST_DELETED)
    expect(gone == [("rm/a.txt", wire.ST_DELETED, head), ("rm/b.txt", wire.ST_DELETED, head)],
           "R-7.1.3", f"the Stale RemoveDir's removals listed as {gone}, expected "
           f"both Deleted at version {head}")
    same_as_mirror(ctx, rep, "a Stale RemoveDir")
