"""Batch inputs that are not a folder of files: datalists, SEG URI lists and DICOMweb servers (issue 27).

Each input becomes one :class:`BatchItem` whose ``key`` is its stable name:
the shard it belongs to (:mod:`monai_dicomseg.cli.jobs` hashes the key), its
manifest ``input`` and where its outputs go (``OUTPUT_DIR/<key without
suffix>.nii.gz``).

Datalist (``DATALIST.json``)
    A JSON list of dicts as :func:`~monai_dicomseg.data.datalist.create_datalist`
    or :func:`~monai_dicomseg.dicomweb.create_datalist_from_server` return it
    (``json.dump(datalist, file)``), or an object whose list values are such
    lists (MONAI's ``{"training": [...], "validation": [...]}``: every list is
    taken). Each item needs ``--label-key`` (default ``label``); its
    ``--image-key`` (default ``image``) entry is the series whose grid the
    output is written on, as ``LoadDicomSegd(ref_key=...)`` places it. Local
    paths are resolved against the JSON file's folder (MONAI's ``base_dir``
    rule); such an item's key is the label's path relative to that folder
    (or, outside it, its absolute path without the leading ``/``).
SEG URI list (``URIS.txt``)
    One ``dicomweb+http(s)://.../studies/<uid>/series/<uid>[/instances/<uid>]``
    per line; blank lines and lines starting with ``#`` are ignored.
DICOMweb server (``http(s)://host/dicom-web``)
    Expanded with :func:`~monai_dicomseg.dicomweb.create_datalist_from_server`
    (``--study``, ``--patient-id`` filters; ``--max-workers`` requests at once).
URIs
    The key of ``.../studies/S/series/R`` is ``S/R`` and of
    ``.../instances/I`` is ``S/R/I``: the NIfTI of a SEG instance is
    ``OUTPUT_DIR/S/R/I.nii.gz``. UIDs name DICOM objects uniquely, so the key
    does not depend on the server's address.

The same item listed twice is taken once; two different items with one key
(e.g. the same UIDs on two servers with different image series) are refused.
"""
from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai_dicomseg.errors import InputError

__all__ = ["BatchItem", "is_datalist", "is_server_url", "read_datalist", "read_uri_list", "uri_key",
           "add_datalist_options", "datalist_to_nifti", "output_path"]


@dataclass(frozen=True)
class BatchItem:
    """One batch input that is not a file of INPUT_DIR.

    Attributes
    ----------
    key
        Stable relative name (POSIX separators): shard, manifest ``input``, output path.
    label
        The SEG: a local path or a ``dicomweb+`` URI.
    image
        Its source series (a folder, a list of files or a ``dicomweb+`` URI), or None.
    volume
        The datalist's volume selector (JSON text; '' when the series holds one volume).
    problem
        Why the item cannot be converted (e.g. no image series paired with it); it then fails with this reason.
    """

    key: str
    label: str
    image: "str | tuple[str, ...] | None" = None
    volume: str = ""
    problem: str = ""


def is_server_url(text: str) -> bool:
    """``http://`` or ``https://``: a DICOMweb service root to expand with ``create_datalist_from_server``."""
    return str(text).lower().startswith(("http://", "https://"))


def is_datalist(text: "str | os.PathLike[str]") -> bool:
    """An existing file named ``*.json``."""
    return str(text).lower().endswith(".json") and Path(text).is_file()


def add_datalist_options(parser: argparse.ArgumentParser) -> None:
    """``--image-key`` / ``--label-key`` of a ``DATALIST.json`` input."""
    group = parser.add_argument_group("datalist input", "the input may be a DATALIST.json (create_datalist's list, "
                                      "json.dump-ed): each SEG is written on its paired image's grid")
    group.add_argument("--image-key", default="image", metavar="KEY",
                       help="datalist key of the source series (default: %(default)s)")
    group.add_argument("--label-key", default="label", metavar="KEY",
                       help="datalist key of the SEG (default: %(default)s)")


def uri_key(uri: str) -> str:
    """``S/R`` or ``S/R/I`` (Study, Series, SOP Instance UIDs) of a ``dicomweb+`` SEG URI.

    Raises
    ------
    InputError
        Not a ``dicomweb+`` URI naming a study and a series.
    """
    from monai_dicomseg.dicomweb import DicomWebSeries

    ref = DicomWebSeries.from_uri(uri)
    return "/".join([ref.study_uid, ref.series_uid] + ([ref.instance_uid] if ref.instance_uid else []))


def _local_key(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix().lstrip("/")


def _unique(items: list[BatchItem], where: str) -> list[BatchItem]:
    """Items sorted by key; exact repeats dropped; two different items with one key refused."""
    found: dict[str, BatchItem] = {}
    for item in items:
        other = found.setdefault(item.key, item)
        if other != item:
            raise InputError(f"{where}: two inputs have the same key {item.key!r} ({other.label!r} with image "
                             f"{other.image!r} and {item.label!r} with image {item.image!r}); their outputs "
                             "would collide")
    return [found[key] for key in sorted(found)]


def read_uri_list(path: "str | os.PathLike[str]") -> list[BatchItem]:
    """The SEG URIs of a text file (one per line; blanks and ``#`` comments ignored).

    Raises
    ------
    InputError
        Missing file, a line that is not a ``dicomweb+`` URI (line number given), no URI at all.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"input list {str(path)!r} does not exist (expected a file of SEG URIs, a DATALIST.json "
                         "or a DICOMweb service root http(s)://...)")
    items = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            items.append(BatchItem(uri_key(text), text))
        except InputError as error:
            raise InputError(f"{file}, line {number}: {error}") from None
    if not items:
        raise InputError(f"input list {str(path)!r} names no SEG URI")
    return _unique(items, str(file))


def _entries(data: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """``(position, item)`` of a datalist: a list, or every list of an object (MONAI's sections)."""
    if isinstance(data, list):
        sections = [("", data)]
    elif isinstance(data, dict):
        sections = [(f"{name}", value) for name, value in data.items() if isinstance(value, list)]
    else:
        raise InputError(f"datalist {where} must hold a JSON list of items or an object of lists; got "
                         f"{type(data).__name__}")
    found = []
    for name, values in sections:
        for index, value in enumerate(values):
            position = f"{name}[{index}]" if name else f"[{index}]"
            if not isinstance(value, dict):
                raise InputError(f"datalist {where} item {position} must be an object; got {type(value).__name__}")
            found.append((position, value))
    if not found:
        raise InputError(f"datalist {where} holds no item")
    return found


def _image(value: Any, base: Path) -> "str | tuple[str, ...] | None":
    from monai_dicomseg.dicomweb import is_dicomweb_uri

    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)):
        return tuple(str(base / str(v)) for v in value)
    return str(value) if is_dicomweb_uri(value) else str(base / str(value))


def read_datalist(path: "str | os.PathLike[str]", image_key: str = "image", label_key: str = "label",
                  remote: "bool | None" = None) -> list[BatchItem]:
    """The items of a datalist JSON file (see the module docstring), sorted by key.

    Parameters
    ----------
    path
        The JSON file.
    image_key, label_key
        Keys of the source series and of the SEG.
    remote
        True: every label must be a ``dicomweb+`` URI (``batch pull``); False: a local path
        (``batch to-nifti``); None: either.

    Raises
    ------
    InputError
        Unreadable JSON, an item without ``label_key`` or with a list of labels, a label of the wrong
        kind for ``remote`` (naming the command to use), two items with one key.
    """
    from monai_dicomseg.dicomweb import is_dicomweb_uri

    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"datalist {str(path)!r} is not readable JSON: {error}") from None
    base = file.resolve().parent
    items = []
    for position, entry in _entries(data, str(file)):
        label = entry.get(label_key)
        if not isinstance(label, str) or not label:
            raise InputError(f"datalist {file} item {position} has no {label_key!r} string (the SEG); got "
                             f"{label!r} (--label-key names another key)")
        uri = is_dicomweb_uri(label)
        if remote is not None and uri != remote:
            raise InputError(f"datalist {file} item {position}: {label_key!r} is "
                             f"{'a DICOMweb URI: use batch pull' if uri else 'a local path: use batch to-nifti'}")
        image = _image(entry.get(image_key), base)
        key = uri_key(label) if uri else _local_key(base / label, base)
        items.append(BatchItem(key, label if uri else str(base / label), image, str(entry.get("volume") or "")))
    return _unique(items, str(file))


# --------------------------------------------------------------------------- batch to-nifti DATALIST.json


def output_path(output_dir: "str | os.PathLike[str]", key: str, suffix: str) -> Path:
    """``OUTPUT_DIR/<key's folder>/<key's stem><suffix>`` (the stem :mod:`~monai_dicomseg.cli.jobs` uses for
    temporaries); its folder is created."""
    from monai_dicomseg.cli.batch import _stem

    relative = Path(key)
    output = Path(output_dir) / relative.parent / f"{_stem(relative)}{suffix}"
    output.parent.mkdir(parents=True, exist_ok=True)
    return output


def _to_nifti_jobs(args: argparse.Namespace, items: Sequence[BatchItem]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """``batch to-nifti`` jobs of datalist items: each written on its image's grid."""
    from monai_dicomseg.cli.to_nifti import options_from_args

    jobs = []
    for item in items:
        options = options_from_args(args)
        options["source"] = list(item.image) if isinstance(item.image, tuple) else item.image
        if item.volume:  # the series holds several volumes: the one the datalist pairs with this SEG
            options["volume"] = item.volume
        output = output_path(args.output_dir, item.key, ".nii.gz")
        jobs.append(("to-nifti", item.label, str(output), options))
    return jobs


def datalist_to_nifti(args: argparse.Namespace) -> int:
    """``batch to-nifti DATALIST.json OUTPUT_DIR``: every item's SEG on its image's grid (sharded, resumable)."""
    from monai_dicomseg.cli import jobs

    if getattr(args, "source_root", None):
        raise InputError("--source-root is for a folder input; a datalist names each SEG's series itself")
    items = read_datalist(args.input_dir, args.image_key, args.label_key, remote=False)
    return jobs.run_jobs(args, items, _to_nifti_jobs, keys=[item.key for item in items])
