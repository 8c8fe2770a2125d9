"""Deflated Explicit VR Little Endian (PS3.5 A.5): inflate on read, deflate while streaming on write.

In a deflated Part 10 file the preamble and File Meta Information (group
0002) are plain; everything after them, the data set in Explicit VR Little
Endian, is one raw deflate bitstream (RFC 1951: no zlib header, no
checksum), followed by one zero byte when the bitstream has an odd length.

Reading (:func:`inflate_part10`): a deflated file cannot be read by byte
range, so it is inflated once, chunk by chunk, into an equivalent Explicit
VR Little Endian Part 10 image (the same File Meta Information, its Transfer
Syntax UID replaced): in memory up to ``spill_bytes``, beyond that in an
anonymous temporary file (deleted on close; the reader keeps a descriptor
to it for the Pixel Data, exactly as for a large native file). The inflated
size is checked against the decoded-size budget
(:data:`~monai_dicomseg.codec.decode.MAX_DECODED_BYTES`) while inflating, so
a deflate bomb is refused after at most that many bytes, never unbounded;
trailing padding after the end of the bitstream is ignored, a bitstream
that ends early is a :class:`~monai_dicomseg.errors.DecodeError`.

Writing (:func:`write_deflated`): the File Meta Information is written
plain, then the encoded data set and the Pixel Data chunks the caller
yields go through one ``zlib.compressobj``, so memory stays at the header
plus one chunk whatever the Pixel Data size.
"""
from __future__ import annotations

import io
import struct
import tempfile
import zlib
from collections.abc import Iterable
from typing import IO, Any, BinaryIO

from monai_dicomseg.codec.transfer_syntax import EXPLICIT_VR_LITTLE_ENDIAN
from monai_dicomseg.errors import DecodeError

__all__ = ["inflate_part10", "write_deflated", "DeflateWriter", "CHUNK_BYTES"]

CHUNK_BYTES = 4 << 20
"""Bytes inflated or deflated per ``zlib`` call."""

_TRANSFER_SYNTAX_TAG = (0x0002, 0x0010)
_GROUP_LENGTH_TAG = (0x0002, 0x0000)


def _meta_elements(meta: "bytes | memoryview") -> list[tuple[int, int, bytes, bytes]]:
    """``(group, element, header, value)`` of each File Meta Information element (explicit VR LE)."""
    out, pos = [], 0
    while pos + 8 <= len(meta):
        group, element = struct.unpack_from("<HH", meta, pos)
        vr = bytes(meta[pos + 4:pos + 6])
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV"):
            length = struct.unpack_from("<I", meta, pos + 8)[0]
            header_length = 12
        else:
            length = struct.unpack_from("<H", meta, pos + 6)[0]
            header_length = 8
        end = pos + header_length + length
        if length == 0xFFFFFFFF or end > len(meta):
            raise DecodeError("the File Meta Information of the deflated file is malformed (PS3.10 7.1)")
        out.append((group, element, bytes(meta[pos:pos + header_length]), bytes(meta[pos + header_length:end])))
        pos = end
    return out


def _explicit_meta(meta: "bytes | memoryview") -> bytes:
    """The File Meta Information with Transfer Syntax UID Explicit VR Little Endian and the group length redone."""
    elements = []
    for group, element, header, value in _meta_elements(meta):
        if (group, element) == _GROUP_LENGTH_TAG:
            continue
        if (group, element) == _TRANSFER_SYNTAX_TAG:
            value = EXPLICIT_VR_LITTLE_ENDIAN.encode("ascii")
            value += b"\x00" * (len(value) % 2)
            header = header[:6] + struct.pack("<H", len(value))
        elements.append(header + value)
    body = b"".join(elements)
    return struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body)) + body


class _Sink:
    """Inflated bytes: in memory up to ``spill_bytes``, then in an anonymous temporary file."""

    def __init__(self, head: bytes, spill_bytes: int) -> None:
        self.spill_bytes = spill_bytes
        self.memory: "io.BytesIO | None" = io.BytesIO()
        self.memory.write(head)
        self.file: "IO[bytes] | None" = None
        self.size = 0  # inflated bytes, the head not counted

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.memory is not None and self.size > self.spill_bytes:
            self.file = tempfile.TemporaryFile()
            self.file.write(self.memory.getbuffer())
            self.memory = None
        (self.memory if self.memory is not None else self.file).write(data)  # type: ignore[union-attr]  # exactly one of memory / file is set (the spill above replaces memory by file)


def _inflate_into(sink: _Sink, chunks: Iterable["bytes | memoryview"], budget: int, what: str) -> None:
    """Inflate raw-deflate ``chunks`` into ``sink``, at most ``budget`` bytes; ignore bytes after the end."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        for chunk in chunks:
            data = bytes(chunk)
            while data and not inflater.eof:
                room = budget - sink.size
                out = inflater.decompress(data, min(CHUNK_BYTES, room + 1))
                if sink.size + len(out) > budget:
                    raise DecodeError(
                        f"{what}: the deflated data set inflates to more than the decoded-size budget of {budget} "
                        "bytes (monai_dicomseg.codec.decode.MAX_DECODED_BYTES; raise it with max_decoded_bytes(...) "
                        "if the file is genuine)")
                sink.write(out)
                data = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error as exc:
        raise DecodeError(f"{what}: the deflated data set cannot be inflated (PS3.5 A.5): {exc}") from None
    if not inflater.eof:
        raise DecodeError(f"{what}: the deflated data set is truncated (the deflate bitstream does not end)")


def inflate_part10(buf: "bytes | memoryview | Any", data_start: int, budget: int, what: str = "file",
                   spill_bytes: int = 64 << 20) -> "bytes | BinaryIO":
    """The Explicit VR Little Endian Part 10 image of a deflated Part 10 file.

    Parameters
    ----------
    buf
        The whole file (bytes, memoryview or mmap).
    data_start
        Offset of the data set, just after the File Meta Information
        (:func:`~monai_dicomseg.codec.element_scan.read_file_meta`).
    budget
        Most bytes the data set may inflate to (the decoded-size budget).
    what
        Name of the file in messages.
    spill_bytes
        Beyond this many inflated bytes, write to an anonymous temporary file.

    Returns
    -------
    bytes | BinaryIO
        The preamble, ``DICM``, the File Meta Information (Transfer Syntax
        UID Explicit VR Little Endian) and the inflated data set: as bytes,
        or as an open temporary file positioned at 0 (the caller closes it).

    Raises
    ------
    DecodeError
        Malformed meta, a corrupt or truncated bitstream, or more than ``budget`` bytes.
    """
    head = bytes(buf[:128]) + b"DICM" + _explicit_meta(bytes(buf[132:data_start]))
    sink = _Sink(head, int(spill_bytes))
    # copies, never views: a view left in a traceback would keep an mmap from closing
    chunks = (bytes(buf[pos:pos + CHUNK_BYTES]) for pos in range(data_start, len(buf), CHUNK_BYTES))
    try:
        _inflate_into(sink, chunks, int(budget), what)
    except BaseException:
        if sink.file is not None:
            sink.file.close()
        raise
    if sink.memory is not None:
        return sink.memory.getvalue()
    sink.file.seek(0)  # type: ignore[union-attr]  # memory is None here, so the sink spilled to file
    return sink.file  # type: ignore[return-value]  # memory is None here, so the sink spilled to file (a binary temporary file)


class DeflateWriter:
    """A write-only file object that deflates what is written to ``stream`` (raw deflate, PS3.5 A.5).

    :meth:`close` ends the bitstream and pads it to an even length; it does
    not close ``stream``.
    """

    def __init__(self, stream: BinaryIO, level: int = 6) -> None:
        self._stream = stream
        self._deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.written = 0
        self.closed = False

    def write(self, data: "bytes | bytearray | memoryview") -> int:
        view = memoryview(data).cast("B")
        for pos in range(0, len(view), CHUNK_BYTES):
            self._emit(self._deflater.compress(view[pos:pos + CHUNK_BYTES]))
        return len(view)

    def _emit(self, data: bytes) -> None:
        if data:
            self._stream.write(data)
            self.written += len(data)

    def close(self) -> None:
        if self.closed:
            return
        self._emit(self._deflater.flush(zlib.Z_FINISH))
        if self.written % 2:
            self._emit(b"\x00")
        self.closed = True


def write_deflated(stream: BinaryIO, dataset: Any, tail: Iterable["bytes | memoryview"] = (),
                   level: int = 6) -> None:
    """Write ``dataset`` as a Deflated Explicit VR Little Endian Part 10 file, ``tail`` appended inside the bitstream.

    Parameters
    ----------
    stream
        Binary output.
    dataset
        A ``pydicom.Dataset`` with ``file_meta`` (its Transfer Syntax UID is
        written as it is) and ``preamble``; its elements are encoded in
        Explicit VR Little Endian.
    tail
        Encoded bytes that follow the data set's elements in the bitstream
        (the Pixel Data element, header and value, chunk by chunk).
    level
        zlib compression level.
    """
    from pydicom.filebase import DicomBytesIO, DicomFileLike
    from pydicom.filewriter import write_dataset, write_file_meta_info

    head = DicomFileLike(stream)
    head.is_implicit_VR, head.is_little_endian = False, True
    head.write((getattr(dataset, "preamble", None) or b"\x00" * 128) + b"DICM")
    write_file_meta_info(head, dataset.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_implicit_VR, body.is_little_endian = False, True
    write_dataset(body, dataset)
    deflater = DeflateWriter(stream, level)
    deflater.write(body.getvalue())
    del body
    for chunk in tail:
        deflater.write(chunk)
    deflater.close()


def inflate_if_deflated(buf: "bytes | memoryview | Any", what: str = "file",
                        spill_bytes: int = 64 << 20) -> "tuple[bytes | BinaryIO, str] | None":
    """``(explicit VR Part 10 image, original Transfer Syntax UID)`` of a deflated Part 10 file, else ``None``.

    ``None`` for anything that is not a Part 10 file whose Transfer Syntax UID
    is a deflated row of the table. The budget is the decoded-size budget
    in force (:data:`~monai_dicomseg.codec.decode.MAX_DECODED_BYTES`).
    See :func:`inflate_part10`.
    """
    from monai_dicomseg.codec import decode
    from monai_dicomseg.codec.element_scan import read_file_meta
    from monai_dicomseg.codec.transfer_syntax import lookup

    meta = read_file_meta(buf)
    if meta is None:
        return None
    row = lookup(meta[1])
    if row is None or not row.deflated:
        return None
    return inflate_part10(buf, meta[0], decode.decoded_size_budget(), what, spill_bytes), row.uid
