"""The decoded-size budget is context-local (``contextvars``): threads hold their own budgets at once.

``max_decoded_bytes(n)`` used to rebind the module global ``MAX_DECODED_BYTES``
(``global``): a block in one thread changed the budget of every other thread,
and two overlapping blocks could restore each other's value.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from monai_dicomseg.codec import decode as decode_module
from monai_dicomseg.codec.decode import check_decoded_size, decoded_size_budget, max_decoded_bytes
from monai_dicomseg.errors import DecodeError

SHAPE = (50, 50)  # 2500 bytes as uint8


def _fits(shape: tuple[int, ...] = SHAPE) -> bool:
    try:
        check_decoded_size(shape, np.uint8, "probe")
    except DecodeError:
        return False
    return True


def test_two_threads_hold_different_budgets_at_the_same_time():
    """Both threads are inside their blocks together (barrier); each sees its own budget only."""
    barrier = threading.Barrier(2, timeout=30)
    seen: dict[str, tuple[int, bool, int]] = {}

    def worker(name: str, limit: int) -> None:
        with max_decoded_bytes(limit):
            barrier.wait()  # the other thread has entered its block too
            seen[name] = (decoded_size_budget(), _fits(), 0)
            barrier.wait()  # neither leaves before both have checked
        seen[name] = seen[name][:2] + (decoded_size_budget(),)

    threads = [threading.Thread(target=worker, args=("small", 2499)),
               threading.Thread(target=worker, args=("large", 2500))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert seen["small"] == (2499, False, decode_module.MAX_DECODED_BYTES)
    assert seen["large"] == (2500, True, decode_module.MAX_DECODED_BYTES)
    assert decode_module.MAX_DECODED_BYTES == 16 << 30 and decoded_size_budget() == 16 << 30


def test_a_block_in_one_thread_does_not_reach_another():
    """A thread started inside a block (a fresh context) keeps the module default."""
    result = []
    with max_decoded_bytes(10):
        assert not _fits()
        thread = threading.Thread(target=lambda: result.append((decoded_size_budget(), _fits())))
        thread.start()
        thread.join(timeout=60)
    assert result == [(16 << 30, True)]


def test_blocks_nest_and_restore():
    block = max_decoded_bytes(2500)
    with block:
        assert _fits()
        with max_decoded_bytes(2499):
            assert not _fits()
            with block:  # the same object entered again
                assert _fits()
            assert not _fits()
        assert decoded_size_budget() == 2500
    assert decoded_size_budget() == decode_module.MAX_DECODED_BYTES


def test_the_module_constant_is_still_the_default(monkeypatch: pytest.MonkeyPatch):
    """Setting ``MAX_DECODED_BYTES`` for the whole process keeps working; a block overrides it."""
    monkeypatch.setattr(decode_module, "MAX_DECODED_BYTES", 2499)
    assert decoded_size_budget() == 2499
    with pytest.raises(DecodeError, match=r"decoded-size budget of 2499 bytes"):
        check_decoded_size(SHAPE, np.uint8, "probe")
    with max_decoded_bytes(2500):
        assert _fits()
    assert not _fits()
    monkeypatch.setattr(decode_module, "MAX_DECODED_BYTES", 2500)
    assert _fits()  # read at call time, not captured at import
