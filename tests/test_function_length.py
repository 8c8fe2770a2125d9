"""Issue 14: no function in ``monai_dicomseg/`` over ~60 lines without a reason stated in a comment.

A function whose body (docstring excluded) spans more than :data:`MAX_BODY_LINES` lines must carry a
comment containing one of :data:`REASON_PHRASES` near its start (between the ``def`` line and the first
few lines of code after the docstring), e.g. ``# long because: one flat dispatch over the 5 frame layouts``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monai_dicomseg"
MAX_BODY_LINES = 60
REASON_PHRASES = ("long because", "over 60 lines on purpose")
#: how many lines after the first statement of the body (docstring excluded) the reason may appear in
REASON_WINDOW = 6
EXEMPT_FILES: set[str] = set()


def _body_span(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    """First line of code after the docstring and the last line of the function (1-based)."""
    body = node.body
    if (
        len(body) > 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    first = body[0].lineno
    if getattr(body[0], "decorator_list", None):
        first = min([first] + [d.lineno for d in body[0].decorator_list])
    return first, node.end_lineno or first


def long_functions_without_reason(source: str) -> list[tuple[str, int, int]]:
    """``(qualified name, def line, body lines)`` of every over-long function of ``source`` lacking a reason."""
    lines = source.splitlines()
    offenders: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                first, last = _body_span(child)
                n_body = last - first + 1
                if n_body > MAX_BODY_LINES:
                    head = "\n".join(lines[child.lineno - 1 : first - 1 + REASON_WINDOW]).lower()
                    if not any(phrase in head for phrase in REASON_PHRASES):
                        offenders.append((name, child.lineno, n_body))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return offenders


def test_checker_flags_long_function_and_accepts_reason():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_BODY_LINES + 1))
    plain = f'def f():\n    """Doc."""\n{body}\n'
    assert long_functions_without_reason(plain) == [("f", 1, MAX_BODY_LINES + 1)]
    reasoned = f'def f():\n    """Doc."""\n    # long because: a flat table\n{body}\n'
    assert long_functions_without_reason(reasoned) == []
    short = "def f():\n" + "\n".join(f"    x{i} = {i}" for i in range(MAX_BODY_LINES)) + "\n"
    assert long_functions_without_reason(short) == []
    nested = "class C:\n    def m(self):\n" + "\n".join("    " + ln for ln in body.splitlines()) + "\n"
    assert long_functions_without_reason(nested) == [("C.m", 2, MAX_BODY_LINES + 1)]


def test_no_long_function_without_reason():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in EXEMPT_FILES:
            continue
        for name, line, n in long_functions_without_reason(path.read_text(encoding="utf-8")):
            offenders.append(f"monai_dicomseg/{rel}:{line} {name} ({n} body lines)")
    if offenders:
        pytest.fail(
            f"functions over {MAX_BODY_LINES} lines (docstring excluded) without a "
            f"'# long because: ...' comment near their start:\n" + "\n".join(offenders)
        )
