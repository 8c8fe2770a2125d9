"""The :class:`Segmentation` SOP instance: writer constructor + reader methods."""
from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from monai_dicomseg.atomic import atomic_write
from monai_dicomseg.codec.decode import deferred_pixel_source
from monai_dicomseg.codec.deflate import write_deflated
from monai_dicomseg.codec.raw import SEQUENCE_DELIMITER, pixel_data_header
from monai_dicomseg.codec.transfer_syntax import EXPLICIT_VR_LITTLE_ENDIAN, lookup
from monai_dicomseg.enums import (
    DimensionOrganizationTypeValues,
    SegmentationFractionalTypeValues,
    SegmentationTypeValues,
)
from monai_dicomseg.errors import InputTypeError, UnsupportedError
from monai_dicomseg.seg.accessors import SegmentAccessorsMixin
from monai_dicomseg.seg.content import SegmentDescription
from monai_dicomseg.seg.encode import EncodeOptions, encode_segmentation

from monai_dicomseg.seg.reader import SegmentationReaderMixin, read_segmentation_dataset

__all__ = ["Segmentation", "segread"]

_COPY_CHUNK = 16 << 20  # bytes of file-backed Pixel Data copied per write by save_as


# highdicom constructor arguments accepted for compatibility: harmless when left
# at their "off" value, refused clearly otherwise.
_UNSUPPORTED_ARGUMENTS = {
    "content_creator_identification": None,
    "palette_color_lut_transformation": None,
    "icc_profile": None,
    "further_source_images": None,
    "series_description": None,
    "series_date": None,
    "series_time": None,
    "content_date": None,
    "content_time": None,
    "transfer_syntax_uid_options": None,
}


def _check_extra_arguments(arguments: dict[str, Any]) -> None:
    """Refuse unknown keyword arguments, and highdicom options this writer does not implement."""
    for name, value in arguments.items():
        if name not in _UNSUPPORTED_ARGUMENTS:
            raise InputTypeError(f"Segmentation() got an unexpected keyword argument {name!r}")
        if value is not None and not (isinstance(value, (list, tuple)) and len(value) == 0):
            raise UnsupportedError(f"Segmentation argument {name!r} is not supported yet; got {value!r}")


class Segmentation(SegmentationReaderMixin, SegmentAccessorsMixin, Dataset):
    """A DICOM Segmentation (BINARY, FRACTIONAL or LABELMAP), PS3.3 A.51.

    Constructing one encodes ``pixel_array`` against ``source_images``; the
    result is a :class:`pydicom.dataset.Dataset` ready for ``save_as``. Use
    :func:`segread` or :meth:`from_dataset` to read an existing one.

    Parameters
    ----------
    source_images
        Single-frame source images in the order of ``pixel_array`` axis 0
        (no sorting is done), or a list with one multi-frame image whose
        frame ``i + 1`` corresponds to ``pixel_array[i]``.
    pixel_array
        ``(R, C)`` or ``(F, R, C)`` label map (integers = segment numbers,
        0 = background; a float array is one fractional segment), or
        ``(F, R, C, S)`` stacked segments (binary, or floats in [0, 1]).
        Besides a numpy array: a numpy memmap or any array-like with
        ``shape``, ``dtype`` and slicing (zarr, dask, h5py), read slab by
        slab (tile by tile with ``tile_pixel_array``) and checked slab-wise,
        never loaded whole; or a
        :class:`~monai_dicomseg.seg.inputs.StackedSegmentSource` serving
        ``(F, R, C, S)`` in blocks (what ``SaveDicomSeg`` streams). The bytes
        written do not depend on the form.
    segmentation_type
        ``"BINARY"``, ``"FRACTIONAL"`` or ``"LABELMAP"``.
    segment_descriptions
        One :class:`SegmentDescription` per segment, numbered 1, 2, 3, …
    series_instance_uid, series_number, sop_instance_uid, instance_number
        Identity of the new instance.
    manufacturer, manufacturer_model_name, software_versions, device_serial_number
        Enhanced General Equipment Module (PS3.3 C.7.5.2).
    fractional_type
        ``"PROBABILITY"`` or ``"OCCUPANCY"`` (FRACTIONAL only).
    max_fractional_value
        Stored value meaning 1.0 (FRACTIONAL only, 1…255).
    content_description, content_creator_name, content_label
        Content Identification Macro (PS3.3 C.10.9).
    transfer_syntax_uid
        Explicit VR Little Endian (default); LABELMAP and FRACTIONAL also
        RLE Lossless, JPEG 2000 Lossless, JPEG-LS Lossless; BINARY also JPEG
        2000 Lossless.
    workers
        Processes compressing frames: 0 in process (default), N > 0, or
        negative for all cores. The bytes do not depend on it.
    use_extended_offset_table
        Encapsulate with an Extended Offset Table (automatic past 4 GiB).
    omit_empty_frames
        Leave out frames with no non-zero pixel (default True).
    dimension_organization_type
        ``"3D"``, ``"TILED_SPARSE"`` or ``"TILED_FULL"`` (default: inferred;
        tiled segmentations default to TILED_SPARSE).
    tile_pixel_array, tile_size
        Treat ``pixel_array`` as a total pixel matrix of a slide microscopy
        source and cut it into tiles of ``tile_size`` (default: the source's).
    pyramid_uid, pyramid_label
        Identify the multi-resolution pyramid this instance belongs to.
    plane_positions, plane_orientation, pixel_measures
        Explicit geometry of the planes of ``pixel_array`` (one
        PlanePositionSequence per plane) when it is not aligned with the
        sources; frames are matched to source frames to fill the
        DerivationImageSequence (Spatial Locations Preserved YES/NO).
    """

    def __init__(
        self,
        source_images: Sequence[Dataset],
        pixel_array: "np.ndarray | Any",
        segmentation_type: SegmentationTypeValues | str,
        segment_descriptions: Sequence[SegmentDescription],
        series_instance_uid: str,
        series_number: int,
        sop_instance_uid: str,
        instance_number: int,
        manufacturer: str,
        manufacturer_model_name: str,
        software_versions: str | tuple[str, ...],
        device_serial_number: str,
        fractional_type: SegmentationFractionalTypeValues | str | None = (
            SegmentationFractionalTypeValues.PROBABILITY),
        max_fractional_value: int = 255,
        content_description: str | None = None,
        content_creator_name: str | None = None,
        transfer_syntax_uid: str = EXPLICIT_VR_LITTLE_ENDIAN,
        omit_empty_frames: bool = True,
        content_label: str | None = None,
        workers: int = 0,
        use_extended_offset_table: bool = False,
        dimension_organization_type: "DimensionOrganizationTypeValues | str | None" = None,
        tile_pixel_array: bool = False,
        tile_size: Sequence[int] | None = None,
        pyramid_uid: str | None = None,
        pyramid_label: str | None = None,
        plane_positions: Sequence[Any] | None = None,
        plane_orientation: Any | None = None,
        pixel_measures: Any | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        _check_extra_arguments(kwargs)
        options = EncodeOptions(
            segmentation_type=segmentation_type, series_instance_uid=series_instance_uid,
            series_number=series_number, sop_instance_uid=sop_instance_uid, instance_number=instance_number,
            manufacturer=manufacturer, manufacturer_model_name=manufacturer_model_name,
            software_versions=software_versions, device_serial_number=device_serial_number,
            fractional_type=fractional_type, max_fractional_value=max_fractional_value,
            content_description=content_description, content_creator_name=content_creator_name,
            transfer_syntax_uid=transfer_syntax_uid, omit_empty_frames=omit_empty_frames,
            content_label=content_label, workers=workers, use_extended_offset_table=use_extended_offset_table,
            dimension_organization_type=dimension_organization_type, tile_pixel_array=tile_pixel_array,
            tile_size=tile_size, pyramid_uid=pyramid_uid, pyramid_label=pyramid_label,
            plane_positions=plane_positions, plane_orientation=plane_orientation, pixel_measures=pixel_measures,
        )  # every option by name (tests/seg/test_encode_options.py: this signature == EncodeOptions)
        encode_segmentation(self, source_images=source_images, pixel_array=pixel_array,
                            segment_descriptions=segment_descriptions, options=options)

    def close(self) -> None:
        """Release the open file a large native SEG read by path keeps its Pixel Data in.

        Such a SEG (``segread`` of a file of at least
        :data:`~monai_dicomseg.seg.reader.DEFER_PIXEL_DATA_BYTES`) reads frames
        from its file on demand and holds one file descriptor until it is
        garbage-collected. After ``close()`` its pixels can no longer be read
        (:class:`~monai_dicomseg.errors.DecodeError`); the header stays usable.
        No-op for a SEG held in memory. ``with segread(path) as seg:`` closes
        on exit.
        """
        from monai_dicomseg.codec.pixel_source import PixelSource

        source = getattr(self, "buffer", None)  # also after the Pixel Data was loaded: the fd is still open
        if isinstance(source, PixelSource):
            source.close()

    def __exit__(self, *exc_info: Any) -> None:
        """Leaving ``with segread(path) as seg:`` releases the file (see :meth:`close`)."""
        self.close()

    def save_as(self, filename: Any, /, *args: Any, overwrite: bool = True, release_frames: bool = False,
                **kwargs: Any) -> None:
        """Save like :meth:`pydicom.dataset.Dataset.save_as`, atomically for paths.

        A path target is written to a temporary file in the same folder and
        renamed, so an error never leaves a half-written file behind. With
        the default encoding, Pixel Data is streamed to the file directly
        instead of through pydicom's per-element buffer (two fewer copies of
        what is often hundreds of MB). Native Pixel Data of a SEG constructed
        at or past :data:`~monai_dicomseg.codec.pixel_data.STREAM_PIXEL_DATA_BYTES`
        is encoded here, frame by frame, from ``pixel_array``, which must not
        have changed since construction (else
        :class:`~monai_dicomseg.errors.EncodeError`, and no file).

        ``release_frames=True`` is for a SEG written once and then dropped
        (what :meth:`DicomSegWriter.write <monai_dicomseg.io.writer.DicomSegWriter.write>`
        and the CLI do): frames the encoder kept in its
        :class:`~monai_dicomseg.codec.frame_store.FrameStore` (a model output
        past the threshold) are let go as they are written, so a multi-GB
        output is not held twice in the page cache, where the kernel would
        throttle the write to the disk's speed. This object's Pixel Data can
        then no longer be read (:class:`~monai_dicomseg.errors.EncodeError`).
        Without a frame store (a SEG read from a file, one built from a
        caller's array, anything below the threshold) it changes nothing.
        """
        if args or kwargs:
            write = lambda stream: Dataset.save_as(self, stream, *args, **kwargs)  # noqa: E731
        else:
            write = self._write_streaming_pixel_data
            store = getattr(deferred_pixel_source(self), "frame_store", None)
            if release_frames and store is not None:
                store.release_when_read()
                write = self._releasing(write, store)
        if isinstance(filename, (str, os.PathLike)):
            atomic_write(filename, write, overwrite=overwrite)
        else:
            write(filename)

    @staticmethod
    def _releasing(write: Any, store: Any) -> Any:
        """``write``, then the frame store's temporary file closed (its frames were all let go), even on error."""
        def write_and_close(stream: BinaryIO) -> None:
            try:
                write(stream)
            finally:
                store.close()
        return write_and_close

    def _write_streaming_pixel_data(self, stream: BinaryIO) -> None:
        """Write the dataset, appending Pixel Data (the last element) ourselves.

        Pixel Data left in its file (a large native SEG read by path, see
        :mod:`monai_dicomseg.codec.pixel_source`) is copied from the file in
        chunks of :data:`_COPY_CHUNK` bytes, never loaded whole.
        """
        pixel_tag = Tag("PixelData")
        element = self.get_item(pixel_tag, keep_deferred=True)  # as stored: a deferred value is not read here
        if element is None or any(tag > pixel_tag for tag in self.keys()):
            Dataset.save_as(self, stream)
            return
        source = deferred_pixel_source(self)
        if source is None:
            element = self[pixel_tag]  # converted (VR resolved), as pydicom would write it
        meta = getattr(self, "file_meta", None)
        row = lookup(meta.get("TransferSyntaxUID") if meta is not None else None)
        tail = self._pixel_data_chunks(element, source, row)
        del self[pixel_tag]
        try:
            if row is not None and row.deflated:  # PS3.5 A.5: Pixel Data goes through the one deflate bitstream
                write_deflated(stream, self, tail)
                return
            Dataset.save_as(self, stream)
        finally:
            self[pixel_tag] = element
        for chunk in tail:
            stream.write(chunk)

    def _pixel_data_chunks(self, element: Any, source: Any, row: Any) -> Iterator[Any]:
        """The encoded Pixel Data element: header, then its value in chunks of at most :data:`_COPY_CHUNK` bytes."""
        encapsulated = row is not None and row.encapsulated
        implicit = row is not None and row.implicit_vr
        length = source.length if source is not None else len(element.value)
        if implicit:
            yield struct.pack("<HHI", 0x7FE0, 0x0010, length)
        else:
            vr = element.VR or ("OW" if self.get("BitsAllocated", 8) > 8 else "OB")
            yield pixel_data_header(vr, None if encapsulated else length)
        if source is None:
            value = memoryview(element.value)
            for start in range(0, length, _COPY_CHUNK):
                yield value[start:start + _COPY_CHUNK]
        else:  # a file-backed value read by range, or frames encoded now (codec.pixel_data.StreamedPixelData)
            yield from source.chunks(_COPY_CHUNK)
        if encapsulated:
            yield SEQUENCE_DELIMITER


def segread(fp: "str | os.PathLike[str] | BinaryIO") -> Segmentation:
    """Read a Segmentation image from a file.

    Parameters
    ----------
    fp
        Path or readable binary file object of a DICOM Part 10 file.

    Returns
    -------
    monai_dicomseg.seg.Segmentation
        The segmentation; PerFrameFunctionalGroupsSequence stays undecoded
        until accessed.

    Raises
    ------
    DecodeError
        If the file is not a readable DICOM Segmentation.
    UnsupportedError
        For transfer syntaxes that cannot be read.
    """
    return Segmentation.from_dataset(read_segmentation_dataset(fp), copy=False)
