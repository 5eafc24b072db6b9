"""Random bytes from the operating system's CSPRNG (``os.urandom``), drawn 4 KiB at a time and handed out in
slices: every byte is handed out once, so each caller gets bytes as unpredictable as its own ``os.urandom`` call
would give, at one system call per ~60 filings instead of three per filing (a submission id, a complainant ref, a
data key and its nonces). A forked child starts with an empty buffer: it never hands out its parent's bytes."""

from __future__ import annotations

import os
import threading

BLOCK = 4096
_lock = threading.Lock()
_buffer = b""
_used = 0


def random_bytes(n: int) -> bytes:
    """``n`` bytes from ``os.urandom``, never handed out before."""
    global _buffer, _used
    with _lock:
        if _used + n > len(_buffer):
            _buffer, _used = os.urandom(max(BLOCK, n)), 0
        start = _used
        _used += n
        return _buffer[start:_used]


def _forget() -> None:
    global _buffer, _used
    _buffer, _used = b"", 0


os.register_at_fork(after_in_child=_forget)
