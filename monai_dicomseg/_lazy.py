"""Lazy attribute loading for package namespaces (PEP 562), and late-bound providers.

Keeps ``import monai_dicomseg`` fast and free of torch/MONAI: a name is
imported from its module the first time it is accessed.

A *provider* fills a hook a lower layer declares but cannot implement without
importing a higher one (dependency inversion): ``geometry/`` is numpy-only,
yet ``Volume.get_plane_positions()`` returns pydicom sequences that
``codec/`` builds. The lower layer asks for a role (:func:`provider`); only
the package root says which higher-layer object plays it (:func:`provide`), so
no module below the root names a module above it. The bindings are listed in
``docs/architecture.md`` ("Late bindings") and checked by
``tests/test_layering.py``.
"""
from __future__ import annotations

import importlib
from typing import Any
from collections.abc import Callable

from monai_dicomseg.errors import InputError


def lazy_getattr(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """Return a module ``__getattr__`` resolving names through ``table``.

    Parameters
    ----------
    package
        ``__name__`` of the package whose namespace is being filled.
    table
        Maps an exported name to ``"module.path"`` (attribute of the same
        name) or ``"module.path:attribute"``.
    """

    def __getattr__(name: str) -> Any:
        try:
            target = table[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        value = module if attribute == "" and module_name.endswith("." + name) else getattr(
            module, attribute or name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value
        return value

    return __getattr__


#: role -> ``"module.path:attribute"``; filled by the package root only.
PROVIDERS: dict[str, str] = {}


def provide(role: str, target: str) -> None:
    """Declare the object that plays ``role``: ``"module.path:attribute"``, imported on first use.

    Called by the package root (``monai_dicomseg/__init__.py``), the one
    module allowed to know every layer.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise InputError(f"provide: target must be 'module.path:attribute'; got {target!r}")
    PROVIDERS[role] = target


def provider(role: str) -> Any:
    """The object declared for ``role`` by :func:`provide` (its module is imported now if it was not).

    Raises
    ------
    InputError
        If nothing was declared for ``role``.
    """
    try:
        target = PROVIDERS[role]
    except KeyError:
        raise InputError(f"provider: role must be one of {sorted(PROVIDERS)} (declared in "
                         f"monai_dicomseg/__init__.py); got {role!r}") from None
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
