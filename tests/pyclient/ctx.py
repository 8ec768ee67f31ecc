"""State shared by the scenarios: the server, the user, the spec model of the
server's tree, the expected journal head, and checks of PushAcks and of the
server's mirror `AllClients/<ID>/` against the model, byte for byte.
"""

from __future__ import annotations

import time

import os

import conflict
import tlslayer
import tree
import wire
from conn import Conn
from server import Server
from verdict import SpecViolation, expect, log


class Ctx:
    def __init__(self, server: Server, workdir: str):
        self.server = server
        self.workdir = workdir
        self.model = tree.Model()
        self.head = 0
        self.user_id = b""
        self.user_hex = ""
        self.ver: dict[str, int] = {}  # server version of each path (§7.1)
        self.keys: dict[int, bytes] = {}  # device keys given by KeyWelcome (§4.6)
        # Trust on first use (R-12.2.3 1.): the first handshake records the
        # fingerprint here, every later one must present the same.
        self.trust = None if server.plaintext else tlslayer.Trust(
            os.path.join(workdir, "known_server"))

    def connect(self, label: str, rcvbuf: int | None = None,
                user: bytes | None = None) -> Conn:
        """A connection whose SNI names `user` (default: this context's
        user, none before NewUser; R-12.3.1)."""
        return Conn(self.server.port, label, rcvbuf, self.trust,
                    self.user_id if user is None else user)

    def resume(self, label: str, client_id: int, rcvbuf: int | None = None,
               visit: bool = False) -> Conn:
        """Resume as `client_id`: with its device key (KeyHello, §4.6) once
        it has one, else with a plain Hello (§4.1). With `visit`, as a
        Visit (R-4.6.15): beside the device's live connection, which a
        second Resume would probe (R-4.6.13, R-4.6.14); no Pull or Ack."""
        conn = self.connect(label, rcvbuf)
        key = self.keys.get(client_id)
        mode = wire.VISIT if visit else wire.RESUME
        if key is None:
            frm, value = conn.hello(mode, self.user_id, client_id)
            want = wire.WELCOME
        else:
            frm, value = conn.key_hello(mode, self.user_id, client_id, key)
            want = wire.KEY_WELCOME
        expect(frm.kind == want, "§4.6 R-4.6.2", f"Resume of client {client_id} "
               f"answered by {frm.name()} {value!r}")
        uid, cid, head = value[:3]
        if key is not None:
            expect(value[3] == bytes(32), "§4.6 R-4.6.2",
                   "a Resume with the right key was given a new key")
        expect(uid == self.user_id and cid == client_id, "§4.2 R-4.2.1",
               f"Resume Welcome names user {uid.hex()} client {cid}")
        expect(head == self.head, "§4.2 R-4.2.2", f"Welcome head {head}, expected {self.head}")
        return conn

    # ------------------------------------------------------------ pushes

    def expect_ack(self, what: str, reply, status: int, path: str | None,
                   version: int | None = None, known: str | None = None):
        """Checks a push's reply is PushAck(status, version, path).

        For Applied/Conflict the version must be the next sequence number
        (the head moves by one, §5.4); `version` overrides for the others.
        Returns (status, version, path) as received.
        """
        frm, value = reply
        expect(frm.kind == wire.PUSH_ACK, "§5.4 R-5.4.1", f"{what}: expected PushAck "
               f"{wire.STATUS_NAMES[status]}, got {frm.name()} {describe(frm, value)}",
               known)
        if frm.kind != wire.PUSH_ACK:
            return None
        got_status, got_version, got_path = value
        expect(got_status == status, "§5.4 R-5.4.3", f"{what}: status "
               f"{wire.STATUS_NAMES[got_status]}, spec says {wire.STATUS_NAMES[status]}",
               known)
        if status in (wire.APPLIED, wire.CONFLICT) and got_status == status:
            self.head += 1
            version = self.head if version is None else version
        if version is not None and got_status == status:
            expect(got_version == version, "§5.4 R-5.4.3", f"{what}: version {got_version}, "
                   f"spec says {version}", known)
        if path is not None and got_status == status:
            expect(got_path == path, "§5.4 R-5.4.3", f"{what}: path {got_path!r}, spec "
                   f"says {path!r}", known)
        return value

    def expect_conflict(self, what: str, conn: Conn, send, path: str,
                        suffix: str = "") -> str:
        """Sends a push (send() returns its reply) that must end in Conflict
        at a §7.4 name of `path` (+ `suffix` below it); returns that path."""
        t0 = time.time()
        reply = send()
        t1 = time.time()
        value = self.expect_ack(what, reply, wire.CONFLICT, None)
        got = value[2]
        why = conflict.match(got, path, conn.client_id, t0, t1,
                             lambda p: p in self.model.tree, suffix=suffix)
        expect(why is None, "§7.4 R-7.4.1", f"{what}: {why}")
        return got

    def expect_error(self, what: str, reply, code: int, rid: int,
                     known: str | None = None) -> None:
        frm, value = reply
        expect(frm.kind == wire.ERROR, "§4.5 R-4.5.4", f"{what}: expected Error "
               f"{wire.error_name(code)}, got {frm.name()} {describe(frm, value)}")
        expect(value[0] == code, "§4.5 R-4.5.4", f"{what}: Error {wire.error_name(value[0])}, "
               f"spec says {wire.error_name(code)}")
        expect(frm.rid == rid, "§4.5 R-4.5.2", f"{what}: Error {wire.error_name(code)} "
               f"with request ID {frm.rid}, spec says {rid}", known)

    def created(self, path: str, version: int, data: bytes | None) -> None:
        """Model + versions after an applied push that made `path` (a file
        when `data` is bytes) and its missing parents, as change `version`."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in self.model.tree:
                self.ver[parent] = version
        if data is None:
            self.model.make_dir(path)
        else:
            self.model.put_file(path, data)
        self.ver[path] = version

    def removed(self, path: str) -> None:
        for p in [path] + self.model.below(path):
            self.ver.pop(p, None)
        self.model.remove(path)

    # ------------------------------------------------------------ mirror

    def check_mirror(self, when: str) -> None:
        """AllClients/<ID>/ must equal the model, byte for byte."""
        got = tree.read_folder(self.server.mirror(self.user_hex))
        problems = tree.diff(self.model.tree, got)
        if problems:
            raise SpecViolation("§5.4 R-5.4.4", f"server mirror after {when}: "
                                + "; ".join(problems))
        log(f"ok   mirror matches the model after {when} "
            f"({len(got)} entries)")


def describe(frm: wire.Frame, value) -> str:
    if frm.kind == wire.ERROR:
        return f"{wire.error_name(value[0])} {value[1]!r} rid {frm.rid}"
    if frm.kind == wire.PUSH_ACK:
        return f"{wire.STATUS_NAMES[value[0]]} v{value[1]} {value[2]!r}"
    return repr(value)[:120]
