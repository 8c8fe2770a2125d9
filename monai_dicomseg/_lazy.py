"""Lazy attribute loading for package namespaces (PEP 562).

Keeps ``import monai_dicomseg`` fast and free of torch/MONAI: a name is
imported from its module the first time it is accessed.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


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
