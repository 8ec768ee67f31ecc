"""Starts the real cloud-server (README "Running a server") and stops it by PID.

The server runs on 127.0.0.1, port 0, in a fresh data dir, with TLS (the
default, §12) unless `plaintext` (`--insecure-plaintext`). Its listening line
`cloud-server listening on ADDR:PORT` is looked for on stdout and stderr
(README does not say which stream carries it), and with TLS the line
`certificate fingerprint (SHA-256): HEX` (R-12.2.1); `new user <ID>` lines on
stdout are collected.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

LISTEN_RE = re.compile(r"cloud-server listening on (\S+):(\d+)")
NEW_USER_RE = re.compile(r"^new user ([0-9a-f]{32})$")
FINGERPRINT_RE = re.compile(r"^certificate fingerprint \(SHA-256\): ([0-9a-f]{64})$")


class ServerError(Exception):
    pass


class Server:
    def __init__(self, binary: str, data_dir: str, extra: list[str] | None = None,
                 plaintext: bool = False):
        self.data_dir = data_dir
        self.plaintext = plaintext
        self.lines: list[tuple[str, str]] = []  # (stream, line)
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [binary, "0", "--data-dir", data_dir, "--bind", "127.0.0.1"]
            + (["--insecure-plaintext"] if plaintext else []) + (extra or []),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace")
        for name, stream in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()
        self.port = self._wait_listening(10.0)
        self.fingerprint = None if plaintext else self._wait_fingerprint(5.0)

    def _pump(self, name: str, stream) -> None:
        for line in stream:
            with self.lock:
                self.lines.append((name, line.rstrip("\n")))

    def _wait_listening(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for stream, line in self.lines:
                    match = LISTEN_RE.search(line)
                    if match:
                        self.listen_stream = stream
                        return int(match.group(2))
            if self.proc.poll() is not None:
                raise ServerError(f"server exited with {self.proc.returncode} "
                                  f"before listening: {self.output()}")
            time.sleep(0.02)
        raise ServerError(f"no listening line within {timeout} s: {self.output()}")

    def _wait_fingerprint(self, timeout: float) -> str:
        """The fingerprint printed at start (R-12.2.1), on either stream."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for _, line in self.lines:
                    match = FINGERPRINT_RE.match(line)
                    if match:
                        return match.group(1)
            time.sleep(0.02)
        raise ServerError(f"no `certificate fingerprint (SHA-256): HEX` line "
                          f"(R-12.2.1) within {timeout} s: {self.output()}")

    def new_user_ids(self) -> list[str]:
        with self.lock:
            return [m.group(1) for s, line in self.lines if s == "stdout"
                    for m in [NEW_USER_RE.match(line)] if m]

    def output(self, last: int = 40) -> str:
        with self.lock:
            return "\n".join(f"  [{s}] {line}" for s, line in self.lines[-last:])

    def mirror(self, user_hex: str) -> str:
        return os.path.join(self.data_dir, "AllClients", user_hex)

    def stop(self) -> int:
        """SIGTERM by PID, then SIGKILL after 10 s; returns the exit status."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode
