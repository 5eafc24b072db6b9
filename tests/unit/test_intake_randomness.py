"""Buffered CSPRNG bytes: each handed out once, fresh after a fork."""

import os

from services.intake.randomness import BLOCK, random_bytes


def test_bytes_are_handed_out_once_across_refills() -> None:
    draws = [random_bytes(16) for _ in range(3 * BLOCK // 16 + 7)]  # several refills of the buffer
    assert all(len(d) == 16 for d in draws)
    assert len(set(draws)) == len(draws)
    assert len(random_bytes(BLOCK + 5)) == BLOCK + 5  # more than a block at once


def test_a_forked_child_never_hands_out_its_parents_bytes() -> None:
    random_bytes(1)  # the parent's buffer holds unused bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next bytes, to the parent
        os.write(write, random_bytes(32))
        os._exit(0)
    os.close(write)
    child = os.read(read, 32)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != random_bytes(32)
