"""Handshakes (§4.1, §4.2, §2.2): New User, New Client joining with the ID,
Resume, and every refusal (UnknownUser, UnknownClient) with its close."""

from __future__ import annotations

import os
import time

import wire
from conn import Conn
from ctx import Ctx
from verdict import expect, log


def new_user(ctx: Ctx) -> Conn:
    a = ctx.connect("A")
    frm, value = a.hello(wire.NEW_USER, bytes(16), 0)
    expect(frm.kind == wire.WELCOME, "§4.1 R-4.1.3", f"NewUser answered by {frm.name()} {value!r}")
    uid, cid, head = value
    expect(uid != bytes(16), "§2.2 R-2.2.1", "NewUser got the all-zero user ID")
    expect(cid == 1, "§4.1 R-4.1.3", f"NewUser got client ID {cid}, spec says 1")
    expect(head == 0, "§4.1 R-4.1.3", f"NewUser Welcome head {head}, spec says 0")
    ctx.user_id, ctx.user_hex = uid, uid.hex()
    deadline = time.monotonic() + 5
    while ctx.user_hex not in ctx.server.new_user_ids() and time.monotonic() < deadline:
        time.sleep(0.02)
    expect(ctx.user_hex in ctx.server.new_user_ids(), "README",
           f"server printed no `new user {ctx.user_hex}` line on stdout")
    log(f"ok   NewUser: user {ctx.user_hex[:6]}…, client 1, head 0")
    return a


def new_client(ctx: Ctx, label: str, want_id: int, sent_client_id: int = 0) -> Conn:
    """NewClient with the user ID; the server must ignore `sent_client_id`."""
    conn = ctx.connect(label)
    frm, value = conn.hello(wire.NEW_CLIENT, ctx.user_id, sent_client_id)
    expect(frm.kind == wire.WELCOME, "§4.1 R-4.1.3", f"NewClient answered by {frm.name()} {value!r}")
    uid, cid, head = value
    expect(uid == ctx.user_id, "§4.2 R-4.2.1", "NewClient Welcome names another user")
    expect(cid == want_id, "§4.1 R-4.1.3", f"NewClient got client ID {cid}, spec says {want_id}")
    expect(head == ctx.head, "§4.2 R-4.2.2", f"NewClient Welcome head {head}, expected {ctx.head}")
    log(f"ok   NewClient (sent client_id {sent_client_id}): client {cid}, head {head}")
    return conn


def refused(ctx: Ctx, mode: int, user_id: bytes, client_id: int, code: int,
            what: str) -> str:
    """A Hello that must get a closing Error `code` with the Hello's ID; a
    MakeDir sent right behind it must never be processed (§4.1)."""
    conn = ctx.connect("refused", user=user_id)  # SNI of the ID sent
    rid = 41
    conn.send(wire.hello(rid, mode, user_id, client_id)
              + wire.make_dir(42, "never-after-refused-hello"))
    frm, value = conn.reply()
    expect(frm.kind == wire.ERROR and value[0] == code, "§4.1 R-4.1.3",
           f"{what}: expected Error {wire.error_name(code)}, got {frm.name()} {value!r}")
    expect(frm.rid == rid, "§4.5 R-4.5.2", f"{what}: Error with request ID {frm.rid}, spec: {rid}")
    conn.expect_closed("§4.5 R-4.5.4")
    conn.close()
    log(f"ok   {what}: Error {wire.error_name(code)} rid {rid}, closed")
    return value[1]


def new_user_ignores_ids(ctx: Ctx) -> None:
    """NewUser ignores user_id and client_id (§4.1): a new user, client 1."""
    conn = ctx.connect("junk-new-user", user=b"")  # NewUser: new.cloudservice
    frm, value = conn.hello(wire.NEW_USER, os.urandom(16), 5)
    expect(frm.kind == wire.WELCOME and value[0] not in (ctx.user_id, bytes(16))
           and value[1:] == (1, 0), "§4.1 R-4.1.4", f"NewUser with junk IDs: {frm.name()} {value!r}")
    conn.close()
    log("ok   NewUser with a junk user ID and client ID 5: a fresh user, client 1")


def refusals(ctx: Ctx) -> None:
    m1 = refused(ctx, wire.NEW_CLIENT, os.urandom(16), 0, wire.CODE["UnknownUser"],
                 "NewClient of an unknown user")
    m2 = refused(ctx, wire.RESUME, os.urandom(16), 1, wire.CODE["UnknownUser"],
                 "Resume of an unknown user")
    expect(m1 == m2, "§2.2 R-2.2.2", f"UnknownUser text depends on the ID: {m1!r} vs {m2!r}")
    refused(ctx, wire.NEW_CLIENT, bytes(16), 0, wire.CODE["UnknownUser"],
            "NewClient with the all-zero user ID")
    refused(ctx, wire.RESUME, ctx.user_id, 0, wire.CODE["UnknownClient"],
            "Resume with client ID 0")
    refused(ctx, wire.RESUME, ctx.user_id, 1 << 40, wire.CODE["UnknownClient"],
            "Resume with an unregistered client ID")


def pipelined_hello(ctx: Ctx) -> None:
    """Hello and Pull in one write: Welcome, then the pull reply (§4.1)."""
    conn = ctx.connect("pipelined-hello")
    # Client 3 (joined, then closed): client 1's live connection is held
    # open by the scenario, and a second Resume of it would probe it.
    conn.send(wire.hello(1, wire.RESUME, ctx.user_id, 3) + wire.pull(2, ctx.head))
    frm, _ = conn.reply()
    expect(frm.kind == wire.WELCOME and frm.rid == 1, "§4.1 R-4.1.5", f"got {frm.name()} first")
    head, full, entries = conn.read_pull_reply(2)
    expect(head == ctx.head and not full and not entries, "§5.1 R-5.1.1",
           f"Pull(head) behind a Hello: head {head} full {full} {len(entries)} entries")
    conn.close()
    log("ok   Hello + Pull in one write: Welcome, then the pull reply")
