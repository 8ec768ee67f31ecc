"""Ping during a long download (§4.3, §3.4): a slow reader fetches a 6 MiB
file and sends Ping after the FileBegin; the Pong must come after FileEnd
(fetch replies never interleave; only request-ID-0 frames may)."""

from __future__ import annotations

import random

import blake3

import wire
from ctx import Ctx
from scen_push import upload
from verdict import expect, log

SIZE = 6 * 1024 * 1024


def pipelined_order(ctx: Ctx) -> None:
    """R-3.4.5, R-3.4.8: Fetch + MakeDir + Ping + Pull in one write: the
    fetch reply whole, then the PushAck, then the Pong, then the batches."""
    # Client 3 (joined, then closed): a Pull needs a live Resume, and
    # client 1's is held open by the scenario (R-4.6.13).
    conn = ctx.resume("pipelined-order", 3)
    rids = [conn.next_rid() for _ in range(4)]
    conn.send(wire.fetch(rids[0], 0, "large/six.bin") + wire.make_dir(rids[1], "pong-order")
              + wire.frame(wire.PING, rids[2]) + wire.pull(rids[3], ctx.head))
    got = conn.read_fetch_reply(rids[0], "large/six.bin")
    expect(got[0] == "file" and len(got[2]) == SIZE, "§5.5 R-5.5.8",
           f"pipelined Fetch: {got[0]}")
    v = ctx.expect_ack("MakeDir behind a Fetch", conn.push_reply(rids[1]), wire.APPLIED,
                       "pong-order")[1]
    ctx.created("pong-order", v, None)
    frm, _ = conn.reply()
    expect(frm.kind == wire.PONG and frm.rid == rids[2], "§3.4 R-3.4.8",
           f"after the PushAck: {frm.name()} rid {frm.rid}, expected the Pong")
    head, _, entries = conn.read_pull_reply(rids[3])
    listed = [(e.path, e.state, e.version) for e in entries]
    expect(head == ctx.head and listed == [("pong-order", wire.ST_DIR, v)], "§3.4 R-3.4.5",
           f"Pull({ctx.head - 1}) behind the MakeDir: head {head}, {listed} (it must "
           "see the MakeDir sent before it)")
    conn.close()
    log("ok   Fetch + MakeDir + Ping + Pull in one write: replies in request order")


def run(ctx: Ctx) -> None:
    up = ctx.resume("uploader", 1, visit=True)
    data = random.Random(6).randbytes(SIZE)
    upload(ctx, up, "large/six.bin", data, chunk=wire.CHUNK_SIZE)
    up.close()
    slow = ctx.resume("slow-reader", 2, rcvbuf=32768, visit=True)
    fetch_rid, ping_rid = slow.next_rid(), slow.next_rid()
    slow.send(wire.fetch(fetch_rid, 0, "large/six.bin"))
    frm, value = slow.reply()
    expect(frm.kind == wire.FILE_BEGIN and frm.rid == fetch_rid, "§5.5 R-5.5.8",
           f"Fetch answered by {frm.name()} rid {frm.rid}")
    expect(value[1] == SIZE and value[2] == blake3.blake3(data).digest(), "§5.5 R-5.5.8",
           "FileBegin of the 6 MiB file has a wrong size or hash")
    slow.send(wire.frame(wire.PING, ping_rid))
    slow.pace = 0.002
    got, order = bytearray(), []
    while "end" not in order or "pong" not in order:
        frm, value = slow.read_frame(max_read=16384)
        if frm.kind == wire.NOTIFY:
            continue
        if frm.kind == wire.PONG:
            expect(frm.rid == ping_rid, "§4.3 R-4.3.1", f"Pong rid {frm.rid}, Ping's {ping_rid}")
            order.append("pong")
            continue
        expect(frm.rid == fetch_rid and frm.kind in (wire.FILE_CHUNK, wire.FILE_END),
               "§3.4 R-3.4.5", f"{frm.name()} rid {frm.rid} inside the fetch reply")
        if frm.kind == wire.FILE_END:
            order.append("end")
        else:
            got += value
            order.append("chunk")
    slow.pace = 0.0
    expect(bytes(got) == data, "§5.5 R-5.5.1", "the slowly fetched 6 MiB differ from the upload")
    where = order.index("pong")
    expect(order[-1] == "pong", "§3.4 R-3.4.8", f"Ping during a 6 MiB fetch: Pong after "
           f"{order[:where].count('chunk')} of {order.count('chunk')} chunks, "
           "inside the fetch reply")
    log(f"ok   6 MiB fetched by a slow reader; Pong after chunk "
        f"{order[:where].count('chunk')} of {order.count('chunk')}")
    slow.close()
    pipelined_order(ctx)
