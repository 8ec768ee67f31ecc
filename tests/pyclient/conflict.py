"""Conflict-copy names of §7.4, and the check of a name the server chose.

The server's applying time is unknown to the client, so a reported name is
accepted when it equals `conflict_name(path, client, t, n)` for a second `t`
between just before the push and just after its PushAck, and every earlier
attempt 1..n-1 of that second was already taken (§7.4 step 4).
"""

from __future__ import annotations

import datetime as dt

MAX_COMPONENT = 255


def split_ext(component: str) -> tuple[str, str]:
    """§7.4 step 1: split at the last `.`, unless it is the first byte."""
    dot = component.rfind(".")
    if dot <= 0:
        return component, ""
    return component[:dot], component[dot:]


def conflict_name(path: str, client_id: int, when: dt.datetime, attempt: int) -> str:
    parent, _, last = path.rpartition("/")
    stem, ext = split_ext(last)
    stamp = when.strftime("%Y-%m-%d %H%M%S")
    tag = f" (conflict {client_id} {stamp})" if attempt == 1 else \
        f" (conflict {client_id} {stamp} {attempt})"
    while len((stem + tag + ext).encode("utf-8")) > MAX_COMPONENT and stem:
        stem = stem[:-1]  # str slicing never splits a UTF-8 character
    name = stem + tag + ext
    return f"{parent}/{name}" if parent else name


def seconds_between(t0: float, t1: float) -> list[dt.datetime]:
    start = int(t0) - 1
    return [dt.datetime.fromtimestamp(s, dt.timezone.utc)
            for s in range(start, int(t1) + 2)]


def match(got: str, path: str, client_id: int, t0: float, t1: float,
          taken, max_attempt: int = 20, suffix: str = "") -> str | None:
    """None if `got` is the right conflict name of `path` (followed by
    `suffix`, for an entry stored below a conflicting ancestor); else why not.

    `taken(p)` tells whether p existed on the server before the push.
    """
    for when in seconds_between(t0, t1):
        for attempt in range(1, max_attempt + 1):
            name = conflict_name(path, client_id, when, attempt)
            if name + suffix == got:
                if taken(name):
                    return f"{name!r} already existed"
                earlier = [conflict_name(path, client_id, when, n)
                           for n in range(1, attempt)]
                free = [n for n in earlier if not taken(n)]
                if free:
                    return f"attempt {attempt} used while {free[0]!r} was free"
                return None
    return (f"{got!r} is not a §7.4 conflict name of {path!r} for client "
            f"{client_id} at a time of the push (e.g. "
            f"{conflict_name(path, client_id, seconds_between(t0, t1)[1], 1)!r})")
