"""SEG <-> MONAI arrays: the bridge between the SEG system and torch/MONAI.

Map of this folder (``*`` = imports torch + MONAI; the others import only
numpy/pydicom, torch at most lazily on the MONAI writer's paths, and the
command line uses them):

* ``source_series.py`` source-series loading; MONAI's axis/affine convention for DICOM volumes
* ``segload.py``    decode a SEG into a channel-first array on its own or a reference grid
  (``load_seg_array``; metadata keys ``MetaKey`` / ``META_KEYS``)
* ``segments.py``   segment tables, ``SegmentSelection`` (shared by every loader), ``label_map`` harmonisation
* ``grid.py``       map a model-output grid back onto the source series grid
  (voxel-for-voxel placement itself: :mod:`monai_dicomseg.geometry.grid_placement`)
* ``prediction.py`` model outputs (probabilities, one-hot, labels) to SEG pixel arrays
* ``reader.py`` *   ``DicomSegReader``, a MONAI ``ImageReader``
* ``writer.py`` *   ``DicomSegWriter``, a MONAI ``ImageWriter``

The MONAI layer (this folder's starred modules, :mod:`monai_dicomseg.transforms`
and :mod:`monai_dicomseg.data`) needs the ``monai`` extra
(``pip install "monai_dicomseg[monai]"``). Without it, importing one of those
modules raises :class:`~monai_dicomseg.errors.MissingDependencyError` (an
``ImportError``) whose one-line message says what to install, instead of a bare
``No module named 'torch'``. The unstarred modules stay importable, because the
light install's command line uses them.

Each MONAI-layer module says so itself, with no import hook: ``transforms/`` and
``data/`` call :func:`require_monai` before anything else, and ``reader.py`` /
``writer.py`` import MONAI inside ``try: ... except ImportError:
require_monai(__name__); raise``. Importing this package changes nothing
outside it (``sys.meta_path`` included).
"""
from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from monai_dicomseg.errors import MissingDependencyError

__all__ = ["MONAI_EXTRA", "MONAI_LAYER_MODULES", "missing_monai_packages", "require_monai"]

#: The install command printed when torch or MONAI is missing.
MONAI_EXTRA = 'pip install "monai_dicomseg[monai]"'
#: Modules that import torch / MONAI at import time (packages include their submodules).
MONAI_LAYER_MODULES = (
    "monai_dicomseg.io.reader",
    "monai_dicomseg.io.writer",
    "monai_dicomseg.transforms",
    "monai_dicomseg.data",
)


def _installed(name: str) -> bool:
    if sys.modules.get(name) is not None:
        return True
    if name in sys.modules:  # a None entry: the import is blocked
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_monai_packages() -> list[str]:
    """The distributions of the ``monai`` extra that are not installed (``[]`` when complete)."""
    return [name for name in ("torch", "monai") if not _installed(name)]


def require_monai(module: str) -> None:
    """Raise :class:`MissingDependencyError` when torch or MONAI is not installed.

    Parameters
    ----------
    module
        Name of the module being imported, used in the message. Call it
        before importing torch/MONAI, or in the ``except ImportError`` of that
        import (the original error is then not chained into the traceback).

    Raises
    ------
    MissingDependencyError
        One line: which module needs which missing packages, and the install
        command.
    """
    missing = missing_monai_packages()
    if missing:  # from None: called inside ``except ImportError``, the bare ImportError is not shown too
        raise MissingDependencyError(_message(module, missing)) from None


def _message(module: str, missing: Sequence[str]) -> str:
    names = " and ".join(missing)
    return (f"{module} is the MONAI layer and needs {names}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: {MONAI_EXTRA} (the SEG API and the monai-dicomseg command line work "
            "without them)")
