"""Pull replies bigger than one batch (§5.2): 70 MakeDirs of 64 components
(4,480 directories, past the 4,096-entry limit of a ChangeBatch) and 40 of
~3,900 bytes (17 long directories each, ~1.3 MB of entries, past the 1 MiB
payload limit); then the lot is renamed so an incremental reply is as big.
The pushes are pipelined in windows while reading the PushAcks (§3.4: a
client keeps reading while it writes)."""

from __future__ import annotations

import wire
from conn import Conn
from ctx import Ctx
from replica import Replica
from scen_pull import listing_matches_model, same_as_mirror
from scen_errors import long_path
from scen_push import moved_rename
from verdict import expect, log

DEEP, LONG = 70, 40
WINDOW = 32


def many_dirs(ctx: Ctx, a: Conn) -> None:
    paths = ["many/" + "/".join([f"deep{i:02d}"] + ["d"] * 62) for i in range(DEEP)]
    paths += ["many/" + f"long{i:02d}" + long_path(3880)[6:] for i in range(LONG)]
    pending: list[tuple[int, str]] = []
    for i, path in enumerate(paths):
        rid = a.next_rid()
        a.send(wire.make_dir(rid, path))
        pending.append((rid, path))
        if len(pending) == WINDOW or i == len(paths) - 1:
            for rid, p in pending:
                v = ctx.expect_ack(f"pipelined MakeDir {p[:12]}…", a.push_reply(rid),
                                   wire.APPLIED, p)[1]
                ctx.created(p, v, None)
            pending.clear()


def batches(conn: Conn, cursor: int) -> list[wire.Batch]:
    """A Pull's reply as its batches (the checks of Conn.read_pull_reply,
    plus the per-batch limits)."""
    rid = conn.next_rid()
    conn.send(wire.pull(rid, cursor))
    out = []
    while True:
        frm, batch = conn.reply()
        expect(frm.kind == wire.CHANGE_BATCH and frm.rid == rid, "§5.2 R-5.2.2",
               f"Pull rid {rid} answered by {frm.name()} rid {frm.rid}")
        expect(len(frm.payload) <= wire.MAX_PAYLOAD, "§5.2 R-5.2.3", "batch over 1 MiB")
        out.append(batch)
        if batch.flags & wire.FLAG_LAST:
            return out


def run(ctx: Ctx, a: Conn, rep: Replica) -> None:
    many_dirs(ctx, a)
    got = batches(rep.conn, 0)
    sizes = [len(b.entries) for b in got]
    expect(len(got) >= 2, "§5.2 R-5.2.3", f"{sum(sizes)} entries of ~257 bytes in one batch")
    expect(all(b.head == ctx.head and b.flags & wire.FLAG_FULL for b in got), "§5.2 R-5.2.2",
           "batches of one full reply differ in head or full flag")
    listing_matches_model(ctx, [e for b in got for e in b.entries])
    log(f"ok   full listing of {sum(sizes)} entries in {len(got)} batches {sizes}")
    rep.sync()
    log("     (replica synced)")
    v = ctx.expect_ack("Rename many → many2", rep.conn.push(
        wire.rename(rep.conn.next_rid(), 0, "many", "many2"), rep.conn.rid),
        wire.APPLIED, "many2")[1]
    moved_rename(ctx, "many", "many2", v)
    log("     (renamed)")
    start = rep.cursor
    head, full, entries = rep.sync()
    log("     (incremental synced)")
    expect(not full and head == ctx.head, "§5.1 R-5.1.1", "incremental pull after the rename "
           f"is full={full} head={head}")
    moved = [e for e in entries if e.path.startswith("many2/")]
    below = len(ctx.model.below("many2"))
    expect(len(moved) == below and all(e.version == v for e in moved), "§5.2 R-5.2.5",
           f"a Rename lists everything now below `to` at the rename's version: "
           f"{len(moved)} of {below}")
    same_as_mirror(ctx, rep, f"an incremental pull of {len(entries)} entries from {start}")
    a.drain_notifies(0.3)
    a.notifies.clear()
    rep.conn.notifies.clear()
