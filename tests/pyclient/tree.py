"""Trees as dicts {path: bytes | DIR}: the model of what the server must hold
(built from what was pushed and the §5.4 rules), a folder read from disk, and
their byte-for-byte comparison.
"""

from __future__ import annotations

import os
import stat

DIR = None  # the value of a directory entry


class Model:
    """What the server's tree must be, per the spec, after our pushes."""

    def __init__(self):
        self.tree: dict[str, bytes | None] = {}

    def is_file(self, path: str) -> bool:
        return isinstance(self.tree.get(path), bytes)

    def is_dir(self, path: str) -> bool:
        return path in self.tree and self.tree[path] is None

    def below(self, path: str) -> list[str]:
        return [p for p in self.tree if p.startswith(path + "/")]

    def _parents(self, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            self.tree["/".join(parts[:i])] = DIR

    def put_file(self, path: str, data: bytes) -> None:
        self._parents(path)
        self.tree[path] = data

    def make_dir(self, path: str) -> None:
        self._parents(path)
        self.tree[path] = DIR

    def remove(self, path: str) -> None:
        for p in self.below(path) + [path]:
            self.tree.pop(p, None)

    def rename(self, src: str, dst: str) -> None:
        moved = {dst + p[len(src):]: self.tree[p] for p in [src] + self.below(src)}
        self.remove(src)
        self._parents(dst)
        self.tree.update(moved)


def read_folder(root: str, skip_top: str | None = None) -> dict[str, bytes | None]:
    """Every file and directory below `root`; symlinks etc. are reported.

    Reads through directory handles (os.fwalk, dir_fd), because a legal
    4,096-byte path below `root` makes the absolute path longer than
    PATH_MAX, where open() by full path fails."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if skip_top and rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != skip_top]
        for name in dirnames + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                out[rel] = b"<symlink>"
            elif stat.S_ISDIR(mode):
                out[rel] = DIR
            elif stat.S_ISREG(mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
                with os.fdopen(fd, "rb") as fh:
                    out[rel] = fh.read()
            else:
                out[rel] = b"<special file>"
    return out


def describe(value: bytes | None) -> str:
    return "dir" if value is None else f"file of {len(value)} bytes"


def diff(want: dict, got: dict, limit: int = 10) -> list[str]:
    """Human-readable differences, at most `limit`."""
    out = []
    for path in sorted(set(want) | set(got)):
        if path not in got:
            out.append(f"missing {path!r} ({describe(want[path])})")
        elif path not in want:
            out.append(f"unexpected {path!r} ({describe(got[path])})")
        elif want[path] != got[path]:
            out.append(f"differs {path!r}: want {describe(want[path])}, "
                       f"have {describe(got[path])}")
        if len(out) >= limit:
            break
    return out
