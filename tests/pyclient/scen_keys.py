"""Device credentials (§4.6): a device joins with KeyHello and is given its
own key; it resumes with that key; a wrong key, or the user ID alone (a
plain Hello) for a device that has a key, is refused with BadCredential and
the connection closed; a device that joined with a plain Hello is given a
key by its first zero-secret KeyHello, and from then on only that key
opens it. Runs last: it turns devices into keyed ones."""

from __future__ import annotations

import os

import wire
from ctx import Ctx
from verdict import expect, log


def refused(ctx: Ctx, data: bytes, code: int, what: str) -> None:
    """`data` (a handshake with request ID 41) must get Error `code` rid 41,
    then a close."""
    conn = ctx.connect("keys-refused")
    conn.send(data)
    ctx.expect_error(what, conn.reply(), code, 41)
    conn.expect_closed("§4.5 R-4.5.4")
    conn.close()
    log(f"ok   {what}: Error {wire.error_name(code)} rid 41, closed")


def join(ctx: Ctx, want_id: int) -> bytes:
    """KeyHello NewClient with a zero secret (no join code made): the
    KeyWelcome must give device `want_id` a non-zero key."""
    conn = ctx.connect("keys-join")
    frm, value = conn.key_hello(wire.NEW_CLIENT, ctx.user_id, 0, bytes(32), b"python")
    expect(frm.kind == wire.KEY_WELCOME, "§4.6 R-4.6.1",
           f"KeyHello NewClient answered by {frm.name()} {value!r}")
    uid, cid, head, key = value
    expect(uid == ctx.user_id and cid == want_id, "§4.6 R-4.6.1",
           f"KeyWelcome names user {uid.hex()} device {cid}, expected device {want_id}")
    expect(head == ctx.head, "§4.2 R-4.2.2", f"KeyWelcome head {head}, expected {ctx.head}")
    expect(key != bytes(32), "§4.6 R-4.6.1", "a joining device was given the all-zero key")
    conn.close()
    ctx.keys[cid] = key
    log(f"ok   KeyHello NewClient: device {cid} with its own 32-byte key")
    return key


def run(ctx: Ctx, next_id: int) -> None:
    key = join(ctx, next_id)
    other = join(ctx, next_id + 1)
    expect(key != other, "§4.6 R-4.6.1", "two devices were given the same key")
    ctx.resume("keys-resume", next_id).close()
    log(f"ok   Resume of device {next_id} with its key: KeyWelcome, no new key")
    flipped = bytearray(key)
    flipped[os.urandom(1)[0] % 32] ^= 1 << (os.urandom(1)[0] % 8)
    refused(ctx, wire.key_hello(41, wire.RESUME, ctx.user_id, next_id, bytes(flipped)),
            wire.CODE["BadCredential"], "Resume with one bit of the key flipped")
    refused(ctx, wire.key_hello(41, wire.RESUME, ctx.user_id, next_id, other),
            wire.CODE["BadCredential"], "Resume with another device's key")
    refused(ctx, wire.hello(41, wire.RESUME, ctx.user_id, next_id),
            wire.CODE["BadCredential"], "plain Hello Resume of a device that has a key")
    # Device 2 joined with a plain Hello: its first zero-secret KeyHello
    # gives it a key, which then opens it.
    conn = ctx.connect("keys-upgrade")
    frm, value = conn.key_hello(wire.RESUME, ctx.user_id, 2, bytes(32))
    expect(frm.kind == wire.KEY_WELCOME and value[3] != bytes(32), "§4.6 R-4.6.2",
           f"a keyless device's first KeyHello got {frm.name()} {value!r}, not a key")
    conn.close()
    ctx.keys[2] = value[3]
    ctx.resume("keys-upgraded", 2).close()
    log("ok   a keyless device was given a key by its first KeyHello, which then opens it")
