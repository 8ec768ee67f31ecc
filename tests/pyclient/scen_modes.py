"""Protocol version 3, the executable bit (§15), from the spec alone.

Client 1 (`a`) and client 2 (`b`): the kinds refused under the other header
version (R-15.1.1); every row of SetMode's table (R-15.3.1), the server's
copy getting `x` wherever it has `r` and losing every `x` (§15, R-15.3.2);
PullModes answered exactly as Pull, batch by batch, plus the mode byte
(R-15.2.1), incrementally too; the bit kept by an upload over the file and
by a Rename, absent on a new file (R-15.3.2)."""

from __future__ import annotations

import os
import stat

import wire
from conn import Conn
from ctx import Ctx
from scen_errors import Closer
from scen_push import simple, upload
from verdict import expect, log

DIR = "modes"


def mirror_mode(ctx: Ctx, path: str) -> int:
    return stat.S_IMODE(os.stat(os.path.join(ctx.server.mirror(ctx.user_hex), path)).st_mode)


def expect_bit(ctx: Ctx, path: str, executable: bool, when: str) -> None:
    """§15: set means `x` wherever `r` (0644 → 0755); clear means no `x`."""
    mode = mirror_mode(ctx, path)
    if executable:
        want = mode | ((mode & 0o444) >> 2)
        ok = mode == want and mode & 0o100
    else:
        ok = mode & 0o111 == 0
    expect(bool(ok), "§15 R-15.3.2", f"{when}: the server's copy of {path!r} has mode "
           f"{mode:o}, the bit should be {'set' if executable else 'clear'}")


def set_mode(ctx: Ctx, conn: Conn, path: str, mode: int, status: int,
             base: int | None = None, version: int | None = None):
    base = ctx.ver.get(path, 0) if base is None else base
    what = f"SetMode {path!r} mode {mode} base {base}"
    value = simple(ctx, conn, what, lambda r: wire.set_mode(r, base, mode, path),
                   status, path, version)
    if status == wire.APPLIED and value is not None:
        ctx.ver[path] = value[1]
    return value


def same_as_pull(ctx: Ctx, a: Conn, cursor: int, modes: dict[str, int]) -> list[wire.Entry]:
    """R-15.2.1: PullModes(cursor) = Pull(cursor), batch by batch, with the
    mode byte; `modes` gives the bit each listed file must carry (others 0)."""
    head, full, plain = a.pull(cursor)
    sizes = list(a.batch_sizes)
    head_m, full_m, moded = a.pull_modes(cursor)
    expect((head_m, full_m, a.batch_sizes) == (head, full, sizes), "§15.2 R-15.2.1",
           f"PullModes({cursor}): head {head_m} full {full_m} batches {a.batch_sizes}, "
           f"Pull: {head} {full} {sizes}")
    strip = [wire.Entry(e.state, e.version, e.size, e.hash, e.path) for e in moded]
    expect(strip == plain, "§15.2 R-15.2.1", f"PullModes({cursor}) lists other entries "
           "than Pull")
    for e in moded:
        want = modes.get(e.path, 0) if e.state == wire.ST_FILE else 0
        expect(e.mode == want, "§15.2 R-15.2.1", f"PullModes({cursor}): {e.path!r} mode "
               f"{e.mode}, expected {want}")
    return moded


def refusals(ctx: Ctx) -> None:
    """R-15.1.1: a version 3 kind under 01 is UnknownKind, a version 1 kind
    under 03 UnsupportedVersion: both BadFrame, request ID 0, close."""
    closer = Closer(ctx)
    bad = wire.CODE["BadFrame"]
    body = bytes(8)
    closer.case("PullModes under version 1", wire.header(wire.PULL_MODES, 5, 8) + body,
                bad, 0, section="§15.1 R-15.1.1")
    closer.case("Pull under version 3", wire.header(wire.PULL, 5, 8, version=3) + body,
                bad, 0, section="§15.1 R-15.1.1")


def run(ctx: Ctx) -> None:
    a = ctx.resume("modes-a", 1)
    b = ctx.resume("modes-b", 2)
    refusals(ctx)
    script = f"{DIR}/run.sh"
    v1 = upload(ctx, a, script, b"#!/bin/sh\necho run\n")
    expect_bit(ctx, script, False, "a new file")
    # row by row.
    set_mode(ctx, a, f"{DIR}/absent.sh", wire.MODE_EXEC, wire.STALE, 0, 0)
    set_mode(ctx, a, DIR, wire.MODE_EXEC, wire.STALE, 0)
    set_mode(ctx, a, script, 0, wire.UNCHANGED, v1, v1)
    before = ctx.head
    set_mode(ctx, a, script, wire.MODE_EXEC, wire.APPLIED, v1)
    expect(ctx.head == before + 1, "§15.3 R-15.3.1", "an Applied SetMode is not one change")
    expect_bit(ctx, script, True, "SetMode 1 Applied")
    set_mode(ctx, a, script, wire.MODE_EXEC, wire.UNCHANGED, version=ctx.ver[script])
    set_mode(ctx, b, script, 0, wire.STALE, v1, ctx.ver[script])  # another's change
    set_mode(ctx, a, script, wire.MODE_EXEC, wire.UNCHANGED, v1, ctx.ver[script])
    log("ok   SetMode table (R-15.3.1): absent and directory Stale, same bit Unchanged, "
        "Applied as one change (server copy +x), another device's old base Stale")
    cursor = ctx.head
    same_as_pull(ctx, a, 0, {script: 1})
    # The bit stays with the file: an upload over it, a Rename.
    upload(ctx, a, script, b"#!/bin/sh\necho run v2\n", base=ctx.ver[script])
    expect_bit(ctx, script, True, "an upload over the executable file")
    moved = f"{DIR}/moved.sh"
    value = simple(ctx, a, f"Rename {script} -> {moved}",
                   lambda r: wire.rename(r, ctx.ver[script], script, moved),
                   wire.APPLIED, moved)
    ctx.model.rename(script, moved)
    ctx.ver.pop(script, None)
    ctx.ver[moved] = value[1]
    expect_bit(ctx, moved, True, "a Rename")
    fresh = f"{DIR}/fresh.sh"
    upload(ctx, a, fresh, b"new file\n")
    entries = same_as_pull(ctx, a, cursor, {moved: 1})
    expect(any(e.path == moved and e.mode == 1 for e in entries), "§15.2 R-15.2.1",
           f"incremental PullModes from {cursor} does not list {moved!r} with its bit")
    # Clearing drops every x; the mirror still equals the model's contents.
    set_mode(ctx, b, moved, 0, wire.APPLIED, ctx.ver[moved])
    expect_bit(ctx, moved, False, "SetMode 0 Applied")
    same_as_pull(ctx, b, cursor, {})
    a.close()
    b.close()
    ctx.check_mirror("the executable-bit changes")
    log("ok   R-15.2.1/R-15.3.2: PullModes = Pull + mode byte (full and incremental, "
        "batch by batch); bit kept by an upload and a Rename, none on a new file, cleared")
