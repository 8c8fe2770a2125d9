"""The one table of transfer syntaxes: what the package reads, writes, and with which package.

Every other module asks this table (a test scans the package source for
transfer syntax UIDs and names anywhere else): the reader and decoder
(:mod:`~monai_dicomseg.codec.decode`), the writer's checks and codecs
(:mod:`~monai_dicomseg.codec.compression`), the streaming writer
(``Segmentation.save_as``), the CLI ``--compress`` vocabulary, DICOMweb
retrieval and the error messages. Adding a row is all it takes to accept a
new syntax for reading (its pixels decoded by pydicom's decoder for it, when
its storage is encapsulated).

Columns (:class:`TransferSyntax`): the UID (PS3.6 Table A-1), the short name
used by the API (``compression=``) and the CLI (``--compress``), how Pixel
Data is stored (:class:`Storage`: native, encapsulated frames PS3.5 A.4, or the
whole data set after the File Meta Information deflated PS3.5 A.5), the
segmentation types (and so BitsAllocated, PS3.3 C.8.20.2) the syntax is
meant for, whether it is lossy, whether this package writes it, and the PyPI
packages that decode / encode it (:meth:`TransferSyntax.decoder_installed`,
:meth:`TransferSyntax.encoder_installed` say whether they are installed here).

Reading a lossy syntax (JPEG baseline, JPEG-LS near-lossless, JPEG 2000 and
HTJ2K that allow loss) works where pydicom decodes it, with a warning: the
stored values may differ from what the producer segmented.

Why HTJ2K is read but not written: pydicom has no HTJ2K encoder and
pylibjpeg-openjpeg (OpenJPEG 2.5) decodes HTJ2K but encodes only classic
JPEG 2000. The HTJ2K encoders for Python (OpenJPH bindings, e.g. in
imagecodecs) are not pydicom plugins, and whether their codestreams meet
the DICOM rules of the HTJ2K syntaxes (lossless reversible transform; RPCL
progression with TLM markers for 1.2.840.10008.1.2.4.202) is unverified
here; a SEG writer that cannot check what it writes does not write it.
Deflate (or JPEG 2000 for BINARY, RLE / JPEG-LS for 8/16 bit) is the
lossless choice instead.

This module imports only the standard library and the shared errors: every
layer may use it (DICOMweb included); pydicom is imported inside the few
functions that need it.
"""
from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

from monai_dicomseg.errors import InputError, MissingDependencyError, UnsupportedError

__all__ = [
    "Storage",
    "TransferSyntax",
    "TRANSFER_SYNTAXES",
    "IMPLICIT_VR_LITTLE_ENDIAN",
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "EXPLICIT_VR_BIG_ENDIAN",
    "DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN",
    "NATIVE_FRAME_MEDIA_TYPES",
    "lookup",
    "readable_syntax",
    "by_name",
    "compression_names",
    "writable_syntaxes",
    "check_writable",
    "table_rows",
]


class Storage(str, Enum):
    """How a transfer syntax stores Pixel Data (PS3.5 8.1, 8.2, A.4, A.5)."""

    NATIVE = "native"
    """Uncompressed, as one value (PS3.5 8.1.1): frames read by byte range."""
    ENCAPSULATED = "encapsulated"
    """One or more fragments per frame (PS3.5 A.4), decoded frame by frame."""
    DEFLATED = "deflated"
    """The whole data set after the File Meta Information is deflated (PS3.5 A.5); Pixel Data native inside."""


_BITS = {"BINARY": (1,), "FRACTIONAL": (8,), "LABELMAP": (8, 16)}
_ALL_TYPES = ("BINARY", "FRACTIONAL", "LABELMAP")
_BYTE_TYPES = ("FRACTIONAL", "LABELMAP")


@dataclass(frozen=True)
class TransferSyntax:
    """One row of the table.

    Attributes
    ----------
    uid
        Transfer Syntax UID (PS3.6 Table A-1).
    name
        Short name: the ``compression=`` / ``--compress`` value of a written syntax.
    title
        DICOM name of the syntax.
    storage
        How Pixel Data is stored (:class:`Storage`).
    seg_types
        Segmentation types the syntax is meant for (their BitsAllocated:
        :attr:`bits_allocated`); empty for lossy syntaxes.
    writable
        Whether this package writes it (``compression=name``).
    readable
        Whether this package reads it.
    lossy
        Whether the syntax allows loss (a warning when read).
    implicit_vr, little_endian
        The encoding of the data set.
    decoder, encoder
        PyPI packages needed to decode / encode the frames (empty: nothing
        beyond numpy, pydicom and the standard library).
    decoder_modules, encoder_modules
        Their import names (to tell whether they are installed).
    pixel_codec
        Who decodes the frames: ``"native"`` (the byte-range reader),
        ``"fragments"`` (one uncompressed frame per fragment, read here) or
        ``"pydicom"`` (pydicom's decoder for the syntax).
    encoder_plugins
        pydicom encoding plugins in order of preference, each with the
        module it needs (``""``: always there).
    aliases
        Other accepted spellings of ``name``.
    frame_media_type
        Media type of its frames in WADO-RS (PS3.18 8.7.3.5.2), native syntaxes only.
    """

    uid: str
    name: str
    title: str
    storage: Storage
    seg_types: tuple[str, ...] = _ALL_TYPES
    writable: bool = False
    readable: bool = True
    lossy: bool = False
    implicit_vr: bool = False
    little_endian: bool = True
    decoder: tuple[str, ...] = ()
    decoder_modules: tuple[str, ...] = ()
    encoder: tuple[str, ...] = ()
    encoder_modules: tuple[str, ...] = ()
    pixel_codec: str = "pydicom"
    encoder_plugins: tuple[tuple[str, str], ...] = ()
    aliases: tuple[str, ...] = ()
    frame_media_type: str | None = None

    @property
    def bits_allocated(self) -> tuple[int, ...]:
        """BitsAllocated values of :attr:`seg_types` (PS3.3 C.8.20.2: BINARY 1, FRACTIONAL 8, LABELMAP 8/16)."""
        return tuple(sorted({bits for kind in self.seg_types for bits in _BITS[kind]}))

    @property
    def encapsulated(self) -> bool:
        return self.storage is Storage.ENCAPSULATED

    @property
    def deflated(self) -> bool:
        return self.storage is Storage.DEFLATED

    def decoder_installed(self) -> bool:
        """Whether the frames can be decoded here (pydicom's decoder asked for ``pixel_codec="pydicom"``)."""
        if not self.readable:
            return False
        if self.pixel_codec != "pydicom":
            return True
        try:
            from pydicom.pixels import get_decoder

            return bool(get_decoder(self.uid).is_available)
        except (NotImplementedError, ImportError, ValueError):
            return False

    def encoder_installed(self) -> bool:
        """Whether :attr:`encoder_modules` are importable (``False`` for syntaxes not written)."""
        return self.writable and all(_module_available(module) for module in self.encoder_modules)

    def encoding_plugin(self) -> str:
        """The first of :attr:`encoder_plugins` whose module is installed (``""``: none listed)."""
        for plugin, module in self.encoder_plugins:
            if not module or _module_available(module):
                return plugin
        return self.encoder_plugins[-1][0] if self.encoder_plugins else ""

    def as_dict(self) -> dict[str, Any]:
        """The row as plain values, with ``bits_allocated`` and what is installed (for ``check`` / JSON)."""
        row = asdict(self)
        row["storage"] = self.storage.value
        row["bits_allocated"] = self.bits_allocated
        row["decoder_installed"] = self.decoder_installed()
        row["encoder_installed"] = self.encoder_installed()
        return row


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


_J2K_DECODE = ("pylibjpeg", "pylibjpeg-openjpeg")
_J2K_MODULES = ("pylibjpeg", "openjpeg")
_LIBJPEG = ("pylibjpeg", "pylibjpeg-libjpeg")
_LIBJPEG_MODULES = ("pylibjpeg", "libjpeg")
_NATIVE_OCTETS = "application/octet-stream"


def _rows() -> list[TransferSyntax]:
    native, encapsulated = Storage.NATIVE, Storage.ENCAPSULATED
    return [
        TransferSyntax("1.2.840.10008.1.2", "implicit", "Implicit VR Little Endian", native,
                       implicit_vr=True, pixel_codec="native"),
        TransferSyntax("1.2.840.10008.1.2.1", "none", "Explicit VR Little Endian", native, writable=True,
                       pixel_codec="native", aliases=("native", "explicit"), frame_media_type=_NATIVE_OCTETS),
        TransferSyntax("1.2.840.10008.1.2.1.99", "deflate", "Deflated Explicit VR Little Endian",
                       Storage.DEFLATED, writable=True, pixel_codec="native", aliases=("deflated", "zlib")),
        TransferSyntax("1.2.840.10008.1.2.1.98", "encapsulated", "Encapsulated Uncompressed Explicit VR Little Endian",
                       encapsulated, pixel_codec="fragments", aliases=("encapsulated-uncompressed",)),
        TransferSyntax("1.2.840.10008.1.2.2", "bigendian", "Explicit VR Big Endian (retired)", native,
                       readable=False, little_endian=False, pixel_codec="native"),
        TransferSyntax("1.2.840.10008.1.2.5", "rle", "RLE Lossless", encapsulated, _BYTE_TYPES, writable=True,
                       encoder_plugins=(("pylibjpeg", "rle"), ("pydicom", ""))),
        TransferSyntax("1.2.840.10008.1.2.4.80", "jpegls", "JPEG-LS Lossless", encapsulated, _BYTE_TYPES,
                       writable=True, decoder=("pyjpegls",), decoder_modules=("jpeg_ls",), encoder=("pyjpegls",),
                       encoder_modules=("jpeg_ls",), encoder_plugins=(("pyjpegls", "jpeg_ls"),),
                       aliases=("jpeg-ls",)),
        TransferSyntax("1.2.840.10008.1.2.4.81", "jpegls-near-lossless", "JPEG-LS Near-Lossless", encapsulated, (),
                       lossy=True, decoder=("pyjpegls",), decoder_modules=("jpeg_ls",)),
        TransferSyntax("1.2.840.10008.1.2.4.90", "jpeg2000", "JPEG 2000 Lossless", encapsulated, writable=True,
                       decoder=_J2K_DECODE, decoder_modules=_J2K_MODULES, encoder=("pylibjpeg-openjpeg",),
                       encoder_modules=("openjpeg",), encoder_plugins=(("pylibjpeg", "openjpeg"),),
                       aliases=("jpeg2k", "j2k")),
        TransferSyntax("1.2.840.10008.1.2.4.91", "jpeg2000-lossy", "JPEG 2000", encapsulated, (), lossy=True,
                       decoder=_J2K_DECODE, decoder_modules=_J2K_MODULES),
        TransferSyntax("1.2.840.10008.1.2.4.201", "htj2k", "HTJ2K Lossless", encapsulated,
                       decoder=("pylibjpeg", "pylibjpeg-openjpeg>=2"), decoder_modules=_J2K_MODULES),
        TransferSyntax("1.2.840.10008.1.2.4.202", "htj2k-rpcl", "HTJ2K Lossless RPCL", encapsulated,
                       decoder=("pylibjpeg", "pylibjpeg-openjpeg>=2"), decoder_modules=_J2K_MODULES),
        TransferSyntax("1.2.840.10008.1.2.4.203", "htj2k-lossy", "HTJ2K", encapsulated, (), lossy=True,
                       decoder=("pylibjpeg", "pylibjpeg-openjpeg>=2"), decoder_modules=_J2K_MODULES),
        TransferSyntax("1.2.840.10008.1.2.4.57", "jpeg-lossless", "JPEG Lossless (Process 14)", encapsulated,
                       _BYTE_TYPES, decoder=_LIBJPEG, decoder_modules=_LIBJPEG_MODULES),
        TransferSyntax("1.2.840.10008.1.2.4.70", "jpeg-lossless-sv1", "JPEG Lossless SV1", encapsulated,
                       _BYTE_TYPES, decoder=_LIBJPEG, decoder_modules=_LIBJPEG_MODULES),
        TransferSyntax("1.2.840.10008.1.2.4.50", "jpeg-baseline", "JPEG Baseline (Process 1)", encapsulated, (),
                       lossy=True, decoder=_LIBJPEG, decoder_modules=_LIBJPEG_MODULES),
        TransferSyntax("1.2.840.10008.1.2.4.51", "jpeg-extended", "JPEG Extended (Process 2 and 4)", encapsulated,
                       (), lossy=True, decoder=_LIBJPEG, decoder_modules=_LIBJPEG_MODULES),
    ]


TRANSFER_SYNTAXES: dict[str, TransferSyntax] = {row.uid: row for row in _rows()}
"""Transfer Syntax UID -> :class:`TransferSyntax`: the one table (looked up at call time, never copied)."""

IMPLICIT_VR_LITTLE_ENDIAN = TRANSFER_SYNTAXES["1.2.840.10008.1.2"].uid
EXPLICIT_VR_LITTLE_ENDIAN = TRANSFER_SYNTAXES["1.2.840.10008.1.2.1"].uid
EXPLICIT_VR_BIG_ENDIAN = TRANSFER_SYNTAXES["1.2.840.10008.1.2.2"].uid
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = TRANSFER_SYNTAXES["1.2.840.10008.1.2.1.99"].uid

NATIVE_FRAME_MEDIA_TYPES: tuple[tuple[str, str], ...] = tuple(
    (row.frame_media_type, row.uid) for row in TRANSFER_SYNTAXES.values() if row.frame_media_type)
"""``(media type, UID)`` that WADO-RS frames are asked for as: native Explicit VR Little Endian (PS3.18 8.7.3.5.2)."""


def lookup(uid: "str | None") -> "TransferSyntax | None":
    """The row of ``uid`` (``None`` for an unknown or missing UID)."""
    if uid is None:
        return None
    return TRANSFER_SYNTAXES.get(str(uid).strip().rstrip("\x00").strip())


def _title(uid: str) -> str:
    row = lookup(uid)
    return f"{uid} ({row.title})" if row is not None else f"{uid} (unknown)"


def readable_syntax(uid: "str | None") -> TransferSyntax:
    """The row of a syntax this package reads.

    Raises
    ------
    UnsupportedError
        An unknown syntax, or one not read (big endian); the message lists those read.
    """
    row = lookup(uid)
    if row is None or not row.readable:
        known = ", ".join(f"{r.title} ({r.uid})" for r in TRANSFER_SYNTAXES.values() if r.readable)
        what = "is not a transfer syntax this package knows" if row is None else "is not supported for reading"
        if row is not None and not row.little_endian:
            what += " segmentations: expected a little-endian transfer syntax"
        raise UnsupportedError(f"TransferSyntaxUID {_title(str(uid))} {what}; readable: {known}")
    return row


def _normalise_name(name: str) -> str:
    return str(name).strip().lower().replace("_", "-")


def by_name(name: "str | None") -> TransferSyntax:
    """The written syntax of a compression name (``None`` -> ``"none"``; aliases accepted, case-insensitive).

    Raises
    ------
    InputError
        Not the name of a written syntax; the message lists them.
    """
    wanted = "none" if name is None else _normalise_name(getattr(name, "value", name))
    for row in TRANSFER_SYNTAXES.values():
        if row.writable and wanted in {_normalise_name(n) for n in (row.name, *row.aliases)} | {
                _normalise_name(n).replace("-", "") for n in (row.name, *row.aliases)}:
            return row
    raise InputError(f"compression must be one of {[None, *compression_names()]}; got {name!r}")


def compression_names() -> tuple[str, ...]:
    """Names of the written syntaxes, table order (the CLI's ``--compress`` choices)."""
    return tuple(row.name for row in TRANSFER_SYNTAXES.values() if row.writable)


def writable_syntaxes(segmentation_type: str) -> tuple[TransferSyntax, ...]:
    """Rows written for a segmentation type (``"BINARY"``, ``"FRACTIONAL"``, ``"LABELMAP"``)."""
    return tuple(row for row in TRANSFER_SYNTAXES.values()
                 if row.writable and str(segmentation_type) in row.seg_types)


def check_writable(uid: str, segmentation_type: str) -> TransferSyntax:
    """The row of a syntax written for ``segmentation_type``, its encoder installed.

    Raises
    ------
    InputError
        The syntax is not written for the type (e.g. RLE for BINARY, PS3.3 C.8.20.2).
    MissingDependencyError
        Its encoder package is not installed; the message names it.
    """
    row = lookup(uid)
    allowed = writable_syntaxes(segmentation_type)
    if row is None or row not in allowed:
        names = ", ".join(f"{r.title} ({r.uid}, compression={r.name!r})" for r in allowed)
        raise InputError(
            f"transfer_syntax_uid {_title(str(uid))} is not allowed for {segmentation_type} segmentations; "
            f"expected one of: {names}")
    if not row.encoder_installed():
        package = " ".join(row.encoder)
        raise MissingDependencyError(f"transfer_syntax_uid {row.title} needs the package {package!r}: "
                                     f"pip install {package}")
    return row


def table_rows() -> list[dict[str, Any]]:
    """Every row as :meth:`TransferSyntax.as_dict` (what is installed included), table order."""
    return [row.as_dict() for row in TRANSFER_SYNTAXES.values()]
