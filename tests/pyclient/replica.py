"""A pulling device (§5.2 client rules): applies pull replies to a real local
folder, fetching files into `.cloudservice/tmp` and renaming them into place
only after the size and hash check, then Acks.
"""

from __future__ import annotations

import os
import shutil

import blake3

import wire
from conn import Conn
from verdict import expect

STATE = ".cloudservice"


class Replica:
    def __init__(self, conn: Conn, folder: str):
        self.conn = conn
        self.folder = folder
        self.cursor = 0
        self.versions: dict[str, int] = {}
        self.tmp = os.path.join(folder, STATE, "tmp")
        os.makedirs(self.tmp, exist_ok=True)

    def local(self, path: str) -> str:
        return os.path.join(self.folder, *path.split("/"))

    def sync(self) -> tuple[int, bool, list[wire.Entry]]:
        """One pull cycle: Pull → batches → Fetches → Ack (§5.2, §5.3)."""
        head, full, entries = self.conn.pull(self.cursor)
        check_order(entries, full)
        for entry in entries:
            self.apply(entry)
        if full:
            listed = {e.path for e in entries}
            for path in sorted(self.on_disk(), key=len, reverse=True):
                if path not in listed:
                    self.remove(path)
        self.conn.send(wire.ack(self.conn.next_rid(), head))
        self.cursor = head
        return head, full, entries

    def on_disk(self) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.folder):
            rel = os.path.relpath(dirpath, self.folder)
            if rel == ".":
                dirnames[:] = [d for d in dirnames if d != STATE]
            for name in dirnames + filenames:
                out.append(name if rel == "." else f"{rel}/{name}")
        return out

    def remove(self, path: str) -> None:
        full = self.local(path)
        if not os.path.lexists(full):
            self.versions.pop(path, None)  # its subtree went with an ancestor
            return
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        elif os.path.lexists(full):
            os.unlink(full)
        for p in list(self.versions):
            if p == path or p.startswith(path + "/"):
                del self.versions[p]

    def apply(self, entry: wire.Entry) -> None:
        full = self.local(entry.path)
        if entry.state == wire.ST_DELETED:
            self.remove(entry.path)
        elif entry.state == wire.ST_DIR:
            if os.path.lexists(full) and not os.path.isdir(full):
                os.unlink(full)
            os.makedirs(full, exist_ok=True)
            self.versions[entry.path] = entry.version
        else:
            self.apply_file(entry, full)

    def apply_file(self, entry: wire.Entry, full: str) -> None:
        if os.path.isfile(full):
            with open(full, "rb") as fh:
                if blake3.blake3(fh.read()).digest() == entry.hash:
                    self.versions[entry.path] = entry.version
                    return
        got = self.conn.fetch(entry.path, entry.version)
        if got[0] == "error":
            expect(got[1] == wire.CODE["NotFound"], "§5.5 R-5.5.8",
                   f"Fetch {entry.path!r} failed with {wire.error_name(got[1])}")
            return  # counts as applied (§5.2)
        _, version, data = got
        expect(version >= entry.version, "§5.5 R-5.5.8", f"fetched {entry.path!r} at "
               f"version {version}, older than the listed {entry.version}")
        tmp = os.path.join(self.tmp, "fetch")
        with open(tmp, "wb") as fh:
            fh.write(data)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.replace(tmp, full)
        self.versions[entry.path] = version


def check_order(entries: list[wire.Entry], full: bool) -> None:
    """§5.2 order: Deleted first, then Dirs after their ancestors, then Files;
    each path once (except Deleted then current state); no Deleted in full."""
    rank = {wire.ST_DELETED: 0, wire.ST_DIR: 1, wire.ST_FILE: 2}
    last = 0
    seen: dict[str, int] = {}
    for e in entries:
        expect(rank[e.state] >= last, "§5.2 R-5.2.7", f"entry order: {e.path!r} "
               f"({wire.STATE_NAMES[e.state]}) after a later-ranked state")
        last = rank[e.state]
        if full:
            expect(e.state != wire.ST_DELETED, "§5.2 R-5.2.6",
                   f"full listing holds Deleted {e.path!r}")
        if e.path in seen:
            expect(seen[e.path] == wire.ST_DELETED and e.state != wire.ST_DELETED,
                   "§5.2 R-5.2.4", f"path {e.path!r} listed twice")
        seen[e.path] = e.state
    first_dir = {}
    for i, e in enumerate(entries):
        if e.state == wire.ST_DIR:
            first_dir.setdefault(e.path, i)
    for i, e in enumerate(entries):
        if e.state != wire.ST_DIR:
            continue
        parts = e.path.split("/")
        for k in range(1, len(parts)):
            anc = "/".join(parts[:k])
            expect(first_dir.get(anc, -1) < i, "§5.2 R-5.2.7",
                   f"Dir {e.path!r} listed before its ancestor {anc!r}")
    if full:
        # Every listed path's ancestors are listed as Dir (a full listing is
        # every directory and every file of the tree).
        for path in seen:
            parts = path.split("/")
            for i in range(1, len(parts)):
                anc = "/".join(parts[:i])
                expect(seen.get(anc) == wire.ST_DIR, "§5.1 R-5.2.5", f"full listing names {path!r} "
                       f"but not its directory {anc!r}")
