"""Strict keyword options: an unknown name is a ``TypeError`` naming the closest valid one.

Every public class and function of the MONAI layer and of the command-line
helpers that accepts options through ``**kwargs`` (so that bundle JSON and
``SaveImage``-style call sites can pass them on) checks the names here, at
construction, so a typo such as ``segmentaton_type=`` fails loudly instead of
being silently ignored.
"""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from monai_dicomseg.errors import InputTypeError

__all__ = ["check_options", "closest_name", "options_of"]


def closest_name(name: str, valid: Iterable[str]) -> "str | None":
    """The valid name closest to ``name`` (difflib ratio >= 0.6), or None."""
    matches = difflib.get_close_matches(str(name), sorted(set(valid)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def check_options(given: "Mapping[str, Any] | Iterable[str]", valid: Iterable[str], where: str) -> None:
    """Raise if ``given`` names an option that is not in ``valid``.

    Parameters
    ----------
    given
        Keyword arguments (or just their names) as received.
    valid
        The option names ``where`` accepts.
    where
        Name of the class or function, used in the message.

    Raises
    ------
    InputTypeError
        (a ``TypeError``) naming each unknown option and, where one is close,
        the valid name it was probably meant to be.
    """
    valid = set(valid)
    unknown = [name for name in given if name not in valid]
    if not unknown:
        return
    parts = []
    for name in unknown:
        guess = closest_name(name, valid)
        parts.append(f"{name!r}" + (f" (did you mean {guess!r}?)" if guess else ""))
    raise InputTypeError(
        f"{where} got unexpected keyword argument{'s' if len(unknown) > 1 else ''} {', '.join(parts)}; "
        f"valid options are {sorted(valid)}"
    )


def options_of(function: Callable[..., Any], extra: Iterable[str] = (), *,
               exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """The option names of ``function`` (a class: its ``__init__``), read from its signature.

    An option is a parameter that can be passed by keyword and has a default
    (``self``, positional data such as ``keys`` or ``source``, ``*args`` and
    ``**kwargs`` are not options). Option tuples such as ``LOAD_OPTIONS`` are
    derived with it, so a new parameter is an accepted option without being
    listed a second time.

    Parameters
    ----------
    function
        A function, method or class.
    extra
        Options accepted through ``**kwargs`` (e.g. ``SELECTION_OPTIONS``), appended in order.
    exclude
        Parameters that are not options of this entry point.

    Returns
    -------
    tuple[str, ...]
        Signature order, then ``extra``; each name once.
    """
    target = function.__init__ if inspect.isclass(function) else function
    skip = set(exclude)
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [name for name, parameter in inspect.signature(target).parameters.items()
             if parameter.kind in keyword and parameter.default is not inspect.Parameter.empty and name not in skip]
    return tuple(dict.fromkeys([*names, *(name for name in extra if name not in skip)]))
