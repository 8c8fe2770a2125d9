"""Consumer profiles: what each SEG consumer reads, and the writer arguments that display in it.

A *profile* names a consumer (a viewer, a converter, an archive) and holds
what that consumer is known to read: segmentation types, transfer syntaxes
per type, and frame constraints. :func:`resolve_profile` turns a profile
(plus any explicit writer arguments) into concrete writer arguments;
:func:`consumer_problems` says why a given SEG would not display in a
consumer (used by the writer's warnings and by ``monai-dicomseg check``).

Every fact carries where it comes from (:class:`Fact`): *measured* facts were
observed by running the consumer's own reader on this package's output
(one file per type x syntax, frames of 32 x 40 and 33 x 35 pixels);
*documented* facts come from the consumer's source code, named by file and
function. What was measured, with which version:

* **Slicer** (column ``slicer``): dcmqi 1.5.7 ``segimage2itkimage`` (the
  converter Slicer's QuantitativeReporting extension runs to import SEG),
  installed as the ``dcmqi`` wheel. Reads BINARY, FRACTIONAL and LABELMAP
  stored native, Deflate and RLE; refuses JPEG 2000 and JPEG-LS ("uses lossy
  compression, not supported for Segmentation objects", DCMTK's dcmseg).
  ``tests/seg/test_profiles.py`` re-measures this whenever dcmqi is installed.
* **OHIF** (column ``ohif``): ``@cornerstonejs/adapters`` 5.14.0 (dcmjs
  0.52.0) under node, the buffer path OHIF uses for a SEG file
  (``adaptersSEG.Cornerstone3D.Segmentation.createFromDICOMSegBuffer``:
  dcmjs parses the file, ``decodeSegFramesFromMultiframe`` decodes it, each
  frame is painted into the labelmap of its source image), measured in
  ``tests/seg/test_ohif_consumer.py`` through the harness in
  ``tests/consumers/ohif`` (versions pinned in its ``package-lock.json``;
  ``.ci/install-services`` installs node and runs ``npm ci``). Every type x
  written syntax, frames of 32 x 40, 33 x 35, 31 x 8 and 7 x 9 pixels and
  several frame counts, compared voxel for voxel. Measured: BINARY native
  and Deflate decode equal when the 1-bit Pixel Data's layout can be told
  from its padded length (the adapter guesses it from that length: an odd
  number of packed bytes is refused, "Unexpected 1-bit SEG PixelData
  length", and a length that equals ``frames * ceil(Rows * Columns / 8)``
  with ``Rows * Columns`` not a multiple of 8 is unpacked frame by frame,
  silently wrong); LABELMAP native/Deflate/RLE decode equal up to segment
  number 255 (the labelmap is 8-bit: larger numbers are shown modulo 256);
  FRACTIONAL with graded values refused ("Fractional segmentations are not
  yet supported"), with only 0 and MaximumFractionalValue shown as BINARY;
  JPEG 2000 / JPEG-LS refused ("Multiframe encapsulated PixelData fragments
  cannot be converted"; a single frame's compressed bytes are taken for
  pixels: "Offset and length out of bounds").
  Documented, not measured: the other path, per-frame image IDs decoded by
  ``@cornerstonejs/dicom-image-loader`` (DICOMweb frames):
  ``imageLoader/wadouri/getUncompressedImageFrame`` puts 1-bit frame ``i``
  at byte ``i * Rows * Columns / 8``, which is wrong when ``Rows * Columns``
  is not a multiple of 8 (frames after the first are misread), while it
  decodes JPEG 2000 frames with its codecs.
* **highdicom** (column ``highdicom``): highdicom reads every type and every
  lossless syntax pydicom decodes (documented: ``highdicom.seg.Segmentation.from_dataset``;
  measured by this package's test suite, which uses highdicom as an oracle).
* **archive**: a PACS or long-term store. Documented: PS3.5 A.5 (Deflate
  needs only zlib, every toolkit reads it), PS3.4 Annex B (a Storage SCP may
  refuse a transfer syntax it was not offered).

This module imports only the standard library, the shared errors and the
transfer-syntax table: the CLI's light install uses it.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from monai_dicomseg.codec.transfer_syntax import EXPLICIT_VR_LITTLE_ENDIAN, TRANSFER_SYNTAXES, by_name, lookup
from monai_dicomseg.enums import SegmentationTypeValues
from monai_dicomseg.errors import InputError

__all__ = [
    "Fact",
    "Profile",
    "PROFILES",
    "ResolvedProfile",
    "ConsumerWarning",
    "profile_names",
    "get_profile",
    "resolve_profile",
    "apply_profile",
    "consumer_problems",
    "binary_length_misread",
    "warn_consumer_problems",
    "dataset_problems",
    "warn_problems",
    "profile_table",
]

_TYPES = tuple(kind.value for kind in SegmentationTypeValues)


class ConsumerWarning(UserWarning):
    """A SEG was written that the consumer named by ``profile=`` may not display (the reason is the message)."""


@dataclass(frozen=True)
class Fact:
    """One thing known about a consumer, and where it comes from.

    Attributes
    ----------
    what
        What it is about: ``"BINARY/deflate"``, ``"FRACTIONAL"``, ``"frame size"``...
    reads
        Whether the consumer reads it.
    detail
        The observed behaviour (an error message, a limitation).
    source
        The consumer, its version and the file/function or tool run.
    measured
        ``True``: observed by running the consumer on this package's output;
        ``False``: read in the consumer's source or documentation.
    """

    what: str
    reads: bool
    detail: str
    source: str
    measured: bool


@dataclass(frozen=True)
class Profile:
    """What one consumer reads.

    Attributes
    ----------
    name
        The ``profile=`` / ``--profile`` value.
    consumer
        Who reads the files.
    types
        Segmentation types it displays; the first is the profile's default.
    syntaxes
        Per type, compression names (:mod:`~monai_dicomseg.codec.transfer_syntax`)
        it reads; the first is the profile's default.
    binary_frame_bits_multiple_of_8
        BINARY frames must hold a multiple of 8 pixels (``Rows * Columns``).
    binary_layout_from_length
        The consumer tells the layout of 1-bit Pixel Data from its (even,
        padded) length: see :func:`binary_length_misread`.
    labelmap_max_segment_number
        LABELMAP segment numbers above this are not shown as themselves
        (``None``: no limit).
    graded_fractional
        FRACTIONAL values other than 0 and MaximumFractionalValue are shown.
    reads_all_readable
        Reads every lossless syntax this package reads (pydicom's decoders).
    facts
        Where the knowledge comes from.
    """

    name: str
    consumer: str
    types: tuple[str, ...]
    syntaxes: Mapping[str, tuple[str, ...]]
    binary_frame_bits_multiple_of_8: bool = False
    binary_layout_from_length: bool = False
    labelmap_max_segment_number: "int | None" = None
    graded_fractional: bool = True
    reads_all_readable: bool = False
    facts: tuple[Fact, ...] = field(default=())

    def __post_init__(self) -> None:
        # consumer capabilities name the table's syntaxes; a name the table does not know, or a syntax that
        # cannot store this type, fails at import instead of becoming a silent "not read"
        for kind, names in self.syntaxes.items():
            for name in names:
                row = by_name(name)
                if row.name != name or kind not in row.seg_types:
                    raise ValueError(f"profile {self.name!r}: {kind}/{name} is not a {kind} syntax of the table "
                                     f"(codec/transfer_syntax.py: {row.name}, {row.seg_types})")

    def allowed_syntaxes(self, segmentation_type: str) -> tuple[str, ...]:
        """Compression names read for ``segmentation_type`` (empty: the type is not read)."""
        return tuple(self.syntaxes.get(segmentation_type, ()))

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for JSON and the README table)."""
        return {
            "name": self.name, "consumer": self.consumer, "types": list(self.types),
            "syntaxes": {kind: list(names) for kind, names in self.syntaxes.items()},
            "binary_frame_bits_multiple_of_8": self.binary_frame_bits_multiple_of_8,
            "binary_layout_from_length": self.binary_layout_from_length,
            "labelmap_max_segment_number": self.labelmap_max_segment_number,
            "graded_fractional": self.graded_fractional,
            "facts": [asdict(fact) for fact in self.facts],
        }


_DCMQI = "dcmqi 1.5.7 segimage2itkimage (Slicer QuantitativeReporting's importer)"
_OHIF_MEASURED = "measured in tests/seg/test_ohif_consumer.py (harness tests/consumers/ohif)"
_CS_BUFFER = ("@cornerstonejs/adapters 5.14.0 createFromDICOMSegBuffer -> decodeSegFramesFromMultiframe "
              "(adapters/Cornerstone3D/Segmentation/labelmapImagesFromBuffer.js, encodePixelData.js), dcmjs 0.52.0, "
              f"node; {_OHIF_MEASURED}")
_CS_IMAGE_LOADER = ("@cornerstonejs/dicom-image-loader imageLoader/wadouri/getUncompressedImageFrame "
                    "(1-bit frame offset frameIndex * pixelsPerFrame * 0.125); documented from source, not measured")
_OHIF_LABELMAP = "OHIF 3.11 release notes / @cornerstonejs/adapters labelmapImagesFromBuffer.js (Label Map SEG SOP class)"


def _slicer_facts() -> tuple[Fact, ...]:
    facts = [Fact(f"{kind}/{name}", True, "converted to NRRD, segments equal", _DCMQI, True)
             for kind in _TYPES for name in ("none", "deflate", *(("rle",) if kind != "BINARY" else ()))]
    facts += [Fact(f"{kind}/{name}", False, "'uses lossy compression, not supported for Segmentation objects'",
                   _DCMQI, True) for kind in _TYPES for name in ("jpeg2000", "jpegls") if kind != "BINARY"
              or name == "jpeg2000"]
    facts.append(Fact("LABELMAP", False, "Slicer's core DICOM import has no LABELMAP reader; it displays only "
                      "through the QuantitativeReporting extension (dcmqi converts it)",
                      "Slicer 5 DICOMSegmentationPlugin (QuantitativeReporting)", False))
    return tuple(facts)


def _ohif_facts() -> tuple[Fact, ...]:
    encapsulated = ("multi-frame: 'Multiframe encapsulated PixelData fragments cannot be converted'; single-frame: "
                    "the compressed bytes are taken for pixels ('Offset and length out of bounds')")
    return (
        Fact("BINARY/none", True, "decoded equal when the 1-bit layout can be told from the Pixel Data length "
             "(see 'BINARY Pixel Data length')", _CS_BUFFER, True),
        Fact("BINARY/deflate", True, "as BINARY/none (dcmjs inflates the data set)", _CS_BUFFER, True),
        Fact("*/jpeg2000", False, encapsulated, _CS_BUFFER, True),
        Fact("BINARY/jpeg2000 (DICOMweb image IDs)", True, "decoded frame by frame on the image-ID path (its codecs)",
             "@cornerstonejs/dicom-image-loader; documented from source, not measured", False),
        Fact("*/jpegls", False, encapsulated, _CS_BUFFER, True),
        Fact("LABELMAP/none", True, "decoded equal (segment numbers up to 255)", _CS_BUFFER, True),
        Fact("LABELMAP/deflate", True, "decoded equal (segment numbers up to 255)", _CS_BUFFER, True),
        Fact("LABELMAP/rle", True, "decoded equal (segment numbers up to 255); OHIF >= 3.11 stores LABELMAP this way",
             _CS_BUFFER, True),
        Fact("LABELMAP", True, "needs OHIF >= 3.11 (earlier versions read BINARY only)", _OHIF_LABELMAP, False),
        Fact("LABELMAP segment numbers", False, "painted into an 8-bit labelmap: segment numbers above 255 (16-bit "
             "LABELMAP) are shown as the number modulo 256", _CS_BUFFER, True),
        Fact("FRACTIONAL", False, "'Fractional segmentations are not yet supported' unless every value is 0 or "
             "MaximumFractionalValue (then shown as BINARY; native/Deflate/RLE decoded equal)", _CS_BUFFER, True),
        Fact("BINARY Pixel Data length", False, "the 1-bit layout is guessed from the padded Pixel Data length: an "
             "odd packed byte count is refused ('Unexpected 1-bit SEG PixelData length'); a length equal to "
             "frames * ceil(Rows*Columns/8) with Rows*Columns not a multiple of 8 is unpacked frame by frame "
             "(silently misread)", _CS_BUFFER, True),
        Fact("BINARY frame size", False, "Rows*Columns not a multiple of 8: frames after the first misread on the "
             "image-ID (DICOMweb frames) path", _CS_IMAGE_LOADER, False),
    )


_PROFILES_LIST = (
    Profile("ohif", "OHIF Viewer 3 (Cornerstone3D, dcmjs)", ("BINARY", "LABELMAP"),
            {"BINARY": ("none", "deflate"), "LABELMAP": ("rle", "none", "deflate")},
            binary_frame_bits_multiple_of_8=True, binary_layout_from_length=True, labelmap_max_segment_number=255,
            graded_fractional=False, facts=_ohif_facts()),
    Profile("slicer", "3D Slicer (QuantitativeReporting / dcmqi)", ("BINARY", "FRACTIONAL"),
            {"BINARY": ("deflate", "none"), "FRACTIONAL": ("deflate", "none", "rle")}, facts=_slicer_facts()),
    Profile("highdicom", "highdicom / pydicom (Python)", _TYPES,
            {"BINARY": ("none", "deflate", "jpeg2000"), "FRACTIONAL": ("none", "deflate", "rle", "jpegls", "jpeg2000"),
             "LABELMAP": ("none", "deflate", "rle", "jpegls", "jpeg2000")}, reads_all_readable=True,
            facts=(Fact("*", True, "every type, every lossless syntax pydicom decodes",
                        "highdicom.seg.Segmentation.from_dataset; this package's tests (highdicom as oracle)", True),)),
    Profile("archive", "PACS / long-term archive", _TYPES,
            {"BINARY": ("deflate", "none", "jpeg2000"), "FRACTIONAL": ("deflate", "none", "rle", "jpegls", "jpeg2000"),
             "LABELMAP": ("deflate", "none", "rle", "jpegls", "jpeg2000")},
            facts=(Fact("*/deflate", True, "lossless, needs only zlib; every DICOM toolkit reads it", "PS3.5 A.5",
                        False),
                   Fact("*/jpeg2000, jpegls, rle", True, "stored, but a Storage SCP may refuse a syntax it was not "
                        "offered, or transcode it; deflate is the default", "PS3.4 Annex B", False))),
)

PROFILES: dict[str, Profile] = {profile.name: profile for profile in _PROFILES_LIST}
"""Profile name -> :class:`Profile` (the one table of consumer knowledge)."""


def profile_names() -> tuple[str, ...]:
    """The ``profile=`` / ``--profile`` values, table order."""
    return tuple(PROFILES)


def get_profile(name: "str | Profile") -> Profile:
    """The profile called ``name`` (case-insensitive).

    Raises
    ------
    InputError
        Not a profile name; the message lists them.
    """
    if isinstance(name, Profile):
        return name
    profile = PROFILES.get(str(name).strip().lower())
    if profile is None:
        raise InputError(f"profile must be one of {list(PROFILES)}; got {name!r}")
    return profile


@dataclass(frozen=True)
class ResolvedProfile:
    """Concrete writer arguments chosen by a profile."""

    segmentation_type: str
    compression: str
    transfer_syntax_uid: str


def _syntax_name(compression: "str | None", transfer_syntax_uid: "str | None") -> "str | None":
    """The compression name given by either argument (``None``: neither given)."""
    if compression is not None:
        return by_name(compression).name
    if transfer_syntax_uid is not None:
        row = lookup(transfer_syntax_uid)
        return row.name if row is not None else str(transfer_syntax_uid)
    return None


def resolve_profile(profile: "str | Profile", segmentation_type: "str | None" = None,
                    compression: "str | None" = None,
                    transfer_syntax_uid: "str | None" = None) -> ResolvedProfile:
    """The writer arguments of ``profile``, keeping explicit ones that the consumer reads.

    Parameters
    ----------
    profile
        A name of :data:`PROFILES`.
    segmentation_type, compression, transfer_syntax_uid
        Arguments given explicitly (``None``: not given; the profile chooses).

    Raises
    ------
    InputError
        An explicit argument the profile's consumer does not read (the
        message names both), or an unknown profile.
    """
    chosen = get_profile(profile)
    kind = None if segmentation_type is None else str(getattr(segmentation_type, "value", segmentation_type)).upper()
    if kind is None:
        kind = chosen.types[0]
    elif kind not in chosen.types:
        raise InputError(f"profile={chosen.name!r} ({chosen.consumer}) does not display segmentation_type={kind!r}: "
                         f"it reads {list(chosen.types)}; drop one of the two arguments")
    allowed = chosen.allowed_syntaxes(kind)
    name = _syntax_name(compression, transfer_syntax_uid)
    if name is None:
        name = allowed[0]
    elif name not in allowed:
        given = f"compression={compression!r}" if compression is not None else \
            f"transfer_syntax_uid={str(transfer_syntax_uid)!r}"
        raise InputError(f"profile={chosen.name!r} ({chosen.consumer}) does not read {kind} SEGs with {given}: it reads "
                         f"compression {list(allowed)}; drop one of the two arguments")
    return ResolvedProfile(kind, name, by_name(name).uid)


def apply_profile(profile: "str | Profile | None", segmentation_type: "str | None", compression: "str | None",
                  transfer_syntax_uid: "str | None") -> tuple[str, str]:
    """``(segmentation_type, transfer_syntax_uid)`` for a writer given ``profile`` and its explicit arguments.

    Without a profile: ``segmentation_type`` (default ``"BINARY"``) and
    ``transfer_syntax_uid`` (default Explicit VR Little Endian) unchanged; the
    caller applies ``compression``. With one: :func:`resolve_profile`.
    """
    if profile is None:
        return ("BINARY" if segmentation_type is None else segmentation_type,
                EXPLICIT_VR_LITTLE_ENDIAN if transfer_syntax_uid is None else transfer_syntax_uid)
    explicit_uid = None if transfer_syntax_uid is None or (
        str(transfer_syntax_uid) == EXPLICIT_VR_LITTLE_ENDIAN and compression is not None) else transfer_syntax_uid
    resolved = resolve_profile(profile, segmentation_type, compression, explicit_uid)
    return resolved.segmentation_type, resolved.transfer_syntax_uid


def consumer_problems(profile: "str | Profile", segmentation_type: str, transfer_syntax_uid: str,
                      rows: int, columns: int, graded_fractional: "bool | None" = None, *,
                      frames: "int | None" = None, max_segment_number: "int | None" = None) -> list[str]:
    """Why ``profile``'s consumer would not display a SEG with these attributes (empty: it would).

    Parameters
    ----------
    segmentation_type, transfer_syntax_uid, rows, columns
        SegmentationType, TransferSyntaxUID, Rows and Columns of the SEG.
    graded_fractional
        Whether a FRACTIONAL SEG holds values other than 0 and
        MaximumFractionalValue (``None``: unknown, assumed yes).
    frames
        NumberOfFrames (``None``: unknown; the rules that depend on it,
        :func:`binary_length_misread`, are not applied).
    max_segment_number
        The largest Segment Number (``None``: unknown; not checked).
    """
    chosen = get_profile(profile)
    kind = str(segmentation_type).upper()
    syntax = _consumer_syntax(chosen, transfer_syntax_uid)
    problems = []
    if kind not in chosen.types and not (kind == "FRACTIONAL" and graded_fractional is False):
        problems.append(f"{kind} is not displayed (reads {'/'.join(chosen.types)})")
    readable = chosen.allowed_syntaxes(kind) or tuple(
        sorted({name for names in chosen.syntaxes.values() for name in names}))
    if syntax is not None and syntax not in readable:
        problems.append(f"{kind} stored as {syntax} is not read (reads {'/'.join(readable)})")
    if kind == "BINARY" and chosen.binary_frame_bits_multiple_of_8 and (int(rows) * int(columns)) % 8:
        problems.append(f"BINARY frames of {rows}x{columns} pixels ({int(rows) * int(columns)}, not a multiple of 8) "
                        f"are misread when loaded frame by frame ({IMAGE_ID_PATH})")
    return problems + _layout_problems(chosen, kind, int(rows), int(columns), frames, max_segment_number)


IMAGE_ID_PATH = "DICOMweb image IDs"
"""Names, in :func:`consumer_problems` messages, the problems of OHIF's per-frame (image-ID) path only."""


def binary_length_misread(rows: int, columns: int, frames: int) -> "str | None":
    """How a reader that guesses the 1-bit layout from the Pixel Data length fails (``None``: it does not).

    dcmjs / Cornerstone (``getBitmapFramesFromDataset``) compare the length of
    Pixel Data, padded to even length (PS3.5 7.1.1), with one byte per pixel,
    whole bytes per frame and bits packed across frames (PS3.5 8.1.1), in
    that order; only the last is what a BINARY SEG stores.

    Returns
    -------
    ``"refused"`` (no layout matches), ``"misread"`` (another layout matches)
    or ``None``.
    """
    pixels = int(rows) * int(columns)
    packed = -(-int(frames) * pixels // 8)
    padded = packed + packed % 2
    if padded == int(frames) * pixels:
        return "misread"
    if padded == int(frames) * -(-pixels // 8):
        return None if pixels % 8 == 0 or int(frames) == 1 else "misread"
    return None if padded == packed else "refused"


def _layout_problems(profile: Profile, kind: str, rows: int, columns: int, frames: "int | None",
                     max_segment_number: "int | None") -> list[str]:
    """The problems that depend on NumberOfFrames or the segment numbers (unknown: none)."""
    problems = []
    if kind == "BINARY" and profile.binary_layout_from_length and frames is not None:
        failure = binary_length_misread(rows, columns, frames)
        if failure is not None:
            packed = -(-int(frames) * rows * columns // 8)
            problems.append(f"BINARY Pixel Data of {frames} frame(s) of {rows}x{columns} pixels packs into {packed} "
                            f"bytes (padded to {packed + packed % 2}): {failure} when loaded from the file (the 1-bit "
                            "layout is guessed from that length)")
    limit = profile.labelmap_max_segment_number
    if kind == "LABELMAP" and limit is not None and max_segment_number is not None and max_segment_number > limit:
        problems.append(f"LABELMAP segment number {max_segment_number} is above {limit}: shown as "
                        f"{max_segment_number % (limit + 1)} (the labelmap holds 8 bits)")
    return problems


def _consumer_syntax(profile: Profile, transfer_syntax_uid: str) -> "str | None":
    """The compression name the profile's syntax lists are in terms of (``None``: read whatever it is).

    A native little-endian syntax not written here (Implicit VR Little
    Endian, the DICOM default every reader supports, PS3.5 10.1) counts as
    ``"none"``; for ``reads_all_readable`` profiles any syntax the table reads
    with its decoder installed is read.
    """
    row = lookup(transfer_syntax_uid)
    if row is None:
        return str(transfer_syntax_uid)
    if profile.reads_all_readable and row.readable and not row.lossy and row.decoder_installed():
        return None
    if row.storage.value == "native" and row.little_endian and row.readable:
        return "none"
    return row.name


def dataset_problems(profile: "str | Profile", dataset: Any, graded_fractional: "bool | None" = None) -> list[str]:
    """:func:`consumer_problems` of a SEG data set (a ``Segmentation`` just built, or a file read).

    Reads SegmentationType, the transfer syntax (file meta), Rows, Columns,
    NumberOfFrames and the largest SegmentNumber of ``dataset`` so that every
    rule applies, the frame-layout and segment-number rules included.
    """
    meta = getattr(dataset, "file_meta", None)
    numbers = [int(item.SegmentNumber) for item in dataset.get("SegmentSequence", []) if "SegmentNumber" in item]
    return consumer_problems(
        profile, str(dataset.get("SegmentationType", "")),
        str(getattr(meta, "TransferSyntaxUID", "") if meta is not None else ""),
        int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0),
        graded_fractional=graded_fractional, frames=int(dataset.get("NumberOfFrames", 1) or 1),
        max_segment_number=max(numbers, default=None))


def warn_consumer_problems(profile: "str | Profile | None", segmentation_type: str, transfer_syntax_uid: str,
                           rows: int, columns: int, *, frames: "int | None" = None,
                           max_segment_number: "int | None" = None) -> None:
    """Warn (:class:`ConsumerWarning`) for each of :func:`consumer_problems` (nothing when ``profile`` is None)."""
    if profile is None:
        return
    warn_problems(profile, consumer_problems(profile, segmentation_type, transfer_syntax_uid, rows, columns,
                                             frames=frames, max_segment_number=max_segment_number))


def warn_problems(profile: "str | Profile | None", problems: "list[str]") -> None:
    """One :class:`ConsumerWarning` per problem, naming the profile and its consumer (nothing without a profile)."""
    if profile is None:
        return
    chosen = get_profile(profile)
    for problem in problems:
        warnings.warn(f"profile={chosen.name!r} ({chosen.consumer}): {problem}", ConsumerWarning, stacklevel=4)


def profile_table() -> list[dict[str, Any]]:
    """Every profile as :meth:`Profile.as_dict`, table order (for ``check --json`` and the README)."""
    return [profile.as_dict() for profile in PROFILES.values()]


def _check_table() -> None:
    """Every syntax a profile names is a written row of the transfer-syntax table (import-time guard)."""
    written = {row.name for row in TRANSFER_SYNTAXES.values() if row.writable}
    for profile in PROFILES.values():
        for kind, names in profile.syntaxes.items():
            unknown = set(names) - written
            if unknown or kind not in _TYPES:
                raise RuntimeError(f"profile {profile.name!r}: unknown {kind} syntax {sorted(unknown)}")


_check_table()
