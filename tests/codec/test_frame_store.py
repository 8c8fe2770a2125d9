"""``FrameStore`` (issue 25): encoded frames in memory up to a budget, then in an anonymous temporary file."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_dicomseg.codec import frame_store as frame_store_module
from monai_dicomseg.codec import pixel_data
from monai_dicomseg.codec.frame_store import FrameStore
from monai_dicomseg.errors import EncodeError


def test_frames_stay_in_memory_up_to_the_budget_then_go_to_the_file(tmp_path):
    store = FrameStore(memory_bytes=10, directory=str(tmp_path))
    store.put("a", b"0123456789")  # exactly the budget: memory
    assert not store.spilled
    store.put("b", b"x")  # one byte past it: the file
    assert store.spilled and store.get("a") == b"0123456789" and store.get("b") == b"x"
    assert os.listdir(tmp_path) == []  # anonymous: no name in the folder
    assert len(store) == 2 and store.nbytes == 11 and "b" in store and "c" not in store


def test_the_default_budget_is_the_streaming_threshold(monkeypatch):
    monkeypatch.setattr(pixel_data, "STREAM_PIXEL_DATA_BYTES", 3)
    store = FrameStore()
    store.put(1, b"abc")
    store.put(2, b"d")
    assert store.memory_bytes == 3 and store.spilled


@pytest.mark.parametrize("data", [b"\x01\x02\x03\x04", bytearray(b"\x01\x02\x03\x04"),
                                  memoryview(b"\x01\x02\x03\x04"), np.array([1, 2, 3, 4], np.uint8),
                                  np.array([[1, 3], [2, 4]], np.uint8).T,  # not C-contiguous: stored in C order
                                  np.array([1, 2, 3, 4], np.uint8)[::1]],
                         ids=["bytes", "bytearray", "memoryview", "array", "transposed", "view"])
@pytest.mark.parametrize("budget", [0, 1 << 20], ids=["file", "memory"])
def test_bytes_like_inputs_are_copied_in_c_order(data, budget):
    if isinstance(data, np.ndarray):
        data = np.array(data, order="K")  # this case's own array, in the parameter's memory layout
    store = FrameStore(memory_bytes=budget)
    store.put(0, data)
    if isinstance(data, np.ndarray):
        data[...] = 0  # the store holds a copy
    assert store.get(0) == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("budget", [0, 1 << 20], ids=["file", "memory"])
def test_bool_frames_keep_their_bytes(budget):
    store = FrameStore(memory_bytes=budget)
    store.put(0, np.array([[True, False], [False, True]]))
    assert store.get(0) == b"\x01\x00\x00\x01"


@pytest.mark.parametrize("budget", [0, 4, 1 << 20], ids=["file", "both", "memory"])
def test_overwrite_discard_and_pop(budget):
    store = FrameStore(memory_bytes=budget)
    store.put("k", b"1234")
    store.put("k", b"56")  # the last value wins, and the bytes are counted once
    assert store.get("k") == b"56" and store.nbytes == 2 and store.length("k") == 2
    assert store.pop("k") == b"56"
    assert store.get("k") is None and store.pop("k") is None and store.length("k") is None
    assert store.nbytes == 0 and len(store) == 0
    store.put("j", b"7")
    store.discard("j")
    store.discard("never stored")
    assert "j" not in store


def test_overwrite_moves_a_key_between_file_and_memory():
    store = FrameStore(memory_bytes=3)
    store.put("k", b"1234")  # past the budget: the file
    store.put("k", b"56")  # fits once the old value is forgotten: memory
    assert store.get("k") == b"56" and store.nbytes == 2 and len(store) == 1
    store.put("k", b"abcd")  # the file again; the memory value is released
    assert store.get("k") == b"abcd" and store.nbytes == 4 and len(store) == 1 and store.length("k") == 4


def test_memory_freed_by_discard_and_pop_is_used_again(monkeypatch):
    store = FrameStore(memory_bytes=4)
    store.put("a", b"1234")
    store.put("b", b"5")  # file
    store.discard("a")
    store.put("c", b"67")
    assert store.pop("b") == b"5"
    store.put("d", b"89")
    monkeypatch.setattr(frame_store_module.os, "pwrite", lambda *args: pytest.fail("wrote to the file"))
    store.put("e", b"")  # nothing written for an empty frame either
    assert store.get("c") == b"67" and store.get("d") == b"89" and store.get("e") == b"" and store.nbytes == 4


@pytest.mark.parametrize("budget", [0, 1 << 20], ids=["file", "memory"])
def test_put_copies_every_kind_of_buffer(budget):
    store = FrameStore(memory_bytes=budget)
    base = np.array([1, 9, 2, 9, 3, 9, 4, 9], np.uint8)
    store.put("strided", base[::2])  # not contiguous: its elements in order
    buffer = bytearray(b"\x05\x06")
    store.put("bytearray", buffer)
    store.put("memoryview", memoryview(buffer))
    store.put("uint16", np.array([[1, 2]], np.uint16))  # the array's bytes (native order: little endian here)
    base[...] = 0
    buffer[:] = b"\x00\x00"
    assert store.get("strided") == b"\x01\x02\x03\x04"
    assert store.get("bytearray") == store.get("memoryview") == b"\x05\x06"
    assert store.get("uint16") == np.array([1, 2], np.uint16).tobytes()


def test_length_does_not_read_the_file(monkeypatch):
    store = FrameStore(memory_bytes=0)
    store.put(3, b"abcdef")
    monkeypatch.setattr(frame_store_module.os, "pread", lambda *args: pytest.fail("length read the file"))
    assert store.length(3) == 6


def test_reading_after_close_is_an_encode_error():
    store = FrameStore(memory_bytes=0)
    store.put(1, b"abc")
    store.close()
    with pytest.raises(EncodeError, match="the frame store was closed"):
        store.get(1)


def test_a_closed_store_never_reads_a_memory_frame_as_absent():
    """After close, a frame kept in memory must not read as "no frame" (None): the encoder serves None as an
    all-zero frame, so a closed store would write zeros silently. Fails today: close() forgets the memory
    frames and get() returns None for them (file frames raise)."""
    store = FrameStore(memory_bytes=3)
    store.put("memory", b"abc")
    store.put("file", b"defg")
    store.close()
    with pytest.raises(EncodeError, match="the frame store was closed"):
        store.get("file")
    with pytest.raises(EncodeError, match="the frame store was closed"):
        store.get("memory")


def test_a_closed_store_is_not_reopened_by_put():
    """A put after close must fail, not open a new temporary file: the offsets of the frames written before
    close would then point into the new file and read back as zeros. Fails today: put() opens a new file and
    get() of an earlier frame returns its length in zero bytes."""
    store = FrameStore(memory_bytes=0)
    store.put("before", b"defg")
    store.close()
    with pytest.raises(EncodeError, match="the frame store was closed"):
        store.put("after", b"hijk")
    with pytest.raises(EncodeError, match="the frame store was closed"):
        store.get("before")


def test_a_truncated_temporary_file_is_an_encode_error(tmp_path):
    store = FrameStore(memory_bytes=0, directory=str(tmp_path))
    store.put(1, b"abc")
    store.put(2, b"defg")
    os.ftruncate(store._file.fileno(), 5)  # someone else cut the file
    assert store.get(1) == b"abc"
    with pytest.raises(EncodeError, match=r"returned 2 of 4 bytes at offset 3: it was truncated"):
        store.get(2)


def test_a_folder_that_cannot_take_the_frames_is_an_encode_error_naming_it(tmp_path):
    missing = tmp_path / "missing"
    store = FrameStore(memory_bytes=2, directory=str(missing))
    store.put(1, b"ab")
    with pytest.raises(EncodeError, match=r"cannot keep encoded frames in a temporary file in .*missing.*TMPDIR"):
        store.put(2, b"cd")


@settings(max_examples=60, deadline=None)
@given(budget=st.integers(0, 64),
       steps=st.lists(st.tuples(st.sampled_from(["put", "discard", "pop"]), st.integers(0, 5),
                                st.binary(max_size=20)), max_size=40))
def test_property_behaves_like_a_dict(budget, steps):
    store, model = FrameStore(memory_bytes=budget), {}
    for action, key, data in steps:
        if action == "put":
            store.put(key, data)
            model[key] = data
        elif action == "discard":
            store.discard(key)
            model.pop(key, None)
        else:
            assert store.pop(key) == model.pop(key, None)
        assert store.nbytes == sum(len(value) for value in model.values())
    assert len(store) == len(model)
    for key in range(6):
        assert store.get(key) == model.get(key)
        assert store.length(key) == (None if key not in model else len(model[key]))


# --------------------------------------------------------------------------- release_when_read


@pytest.mark.parametrize("budget", [0, 5, 1 << 20], ids=["file", "both", "memory"])
def test_released_frames_are_handed_out_once_then_refused(budget):
    store = FrameStore(memory_bytes=budget)
    store.put("a", b"0123")
    store.put("b", b"4567")
    assert store.get("a") == b"0123"  # before the switch: read as often as asked
    store.release_when_read()
    assert store.get("a") == b"0123" and store.get("b") == b"4567"
    for key in ("a", "b"):
        with pytest.raises(EncodeError, match=rf"frame '{key}' was released.*release_frames=True.*build the SEG"):
            store.get(key)
        assert key in store and store.length(key) == 4  # sizes still known (the offset tables need them)
    assert store.get("never stored") is None  # absent stays absent, not "released"
    assert store.nbytes == 0 and len(store) == 2
    store.put("a", b"new")  # stored again: readable once more
    assert store.get("a") == b"new"
    store.close()
    with pytest.raises(EncodeError, match=r"closed.*release_frames=True"):
        store.get("b")


def test_a_store_not_releasing_says_only_that_it_was_closed():
    store = FrameStore()
    store.close()
    with pytest.raises(EncodeError, match=r"closed: its frames can no longer be read or added$"):
        store.get(1)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 3 * 4096 + 17), min_size=1, max_size=12), order=st.randoms(use_true_random=False))
def test_property_released_frames_keep_their_neighbours_bytes(tmp_path_factory, sizes, order):
    """Frames of any size (not block multiples), read in any order with their blocks released: every frame
    still reads its own bytes (a partial block shared with a neighbour is never punched)."""
    store = FrameStore(memory_bytes=0, directory=str(tmp_path_factory.mktemp("store")))
    frames = {index: bytes([index + 1]) * size for index, size in enumerate(sizes)}
    for index, data in frames.items():
        store.put(index, data)
    store.release_when_read()
    keys = list(frames)
    order.shuffle(keys)
    for key in keys:
        assert store.get(key) == frames[key]
    store.close()


def _allocated(path_or_fd) -> int:
    return os.fstat(path_or_fd).st_blocks * 512


@pytest.mark.skipif(not os.uname().sysname == "Linux", reason="fallocate(FALLOC_FL_PUNCH_HOLE) is Linux's")
def test_punch_hole_releases_only_whole_blocks_inside_the_range(tmp_path):
    block = 4096
    path = tmp_path / "f"
    path.write_bytes(b"\x07" * (8 * block))
    with open(path, "r+b") as file:
        fd = file.fileno()
        before = _allocated(fd)
        assert frame_store_module.punch_hole(fd, block + 100, 10, block) is False  # no whole block inside
        assert frame_store_module.punch_hole(fd, block + 100, 3 * block, block) is True  # blocks 2 and 3 only
        assert _allocated(fd) <= before - 2 * block
        data = os.pread(fd, 8 * block, 0)
    assert data[:2 * block] == b"\x07" * (2 * block)  # the partial block before the range is untouched
    assert data[2 * block:4 * block] == bytes(2 * block)  # the released blocks read as zeros
    assert data[4 * block:] == b"\x07" * (4 * block)  # so is the partial block after it


def test_without_hole_punching_released_frames_still_read_once(monkeypatch):
    """A platform without fallocate: the bytes stay in the file until close, the reads behave the same."""
    monkeypatch.setattr(frame_store_module, "_FALLOCATE", [None])
    store = FrameStore(memory_bytes=0)
    store.put(1, b"x" * 10000)
    store.release_when_read()
    assert store.get(1) == b"x" * 10000
    with pytest.raises(EncodeError, match="released"):
        store.get(1)


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(0, 40), max_size=30), limit=st.integers(1, 50))
def test_property_batched_joins_pieces_in_order_into_writes_of_about_the_limit(sizes, limit):
    """``pixel_source.batched`` (the streamed values' write batching): the same bytes in order; every write but
    the last reaches the limit; a large piece with nothing pending passes through as the same object."""
    from monai_dicomseg.codec.pixel_source import batched

    pieces = [bytes([index % 256]) * size for index, size in enumerate(sizes)]
    writes = list(batched(iter(pieces), limit))
    assert b"".join(writes) == b"".join(pieces)
    assert all(len(write) >= limit for write in writes[:-1])
    if all(len(piece) >= limit for piece in pieces):  # nothing ever pending: every piece passes through uncopied
        assert [id(write) for write in writes] == [id(piece) for piece in pieces]
