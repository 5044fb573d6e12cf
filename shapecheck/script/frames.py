"""Where the user's code is: the innermost stack frame outside Keras, its backends, the
standard library and shapecheck, and the position of the call made there.
"""

from __future__ import annotations

import linecache
import os
import sys
from typing import Any

SKIP_PREFIXES: tuple[str, ...] = ()  # folders whose frames are not the user's
GENERATED: dict[str, dict[int, tuple[str, int]]] = {}  # AutoGraph's file -> line -> origin


def note_generated(filename: str, lines: dict[int, tuple[str, int]]) -> None:
    """The lines of a file AutoGraph wrote for a ``tf.function``, each mapped to the
    user's line it came from."""
    GENERATED.setdefault(filename, {}).update(lines)


def original(path: str, line: int) -> tuple[str, int]:
    """The user's line for a line of an AutoGraph-generated file; else the line."""
    mapped = GENERATED.get(path, {}).get(line)
    return mapped if mapped is not None else (path, line)


def skip_libraries() -> None:
    """Set :data:`SKIP_PREFIXES` from the libraries loaded now (once Keras is imported)."""
    global SKIP_PREFIXES
    from shapecheck import version  # lies in the package's folder

    SKIP_PREFIXES = _package_dirs(
        "keras", "tensorflow", "tf_keras", "optree", "absl", "jax", "torch",
        "numpy", "shapecheck") + (os.path.dirname(os.__file__) + os.sep,)
    SKIP_PREFIXES += (os.path.dirname(os.path.abspath(version.__file__)) + os.sep,)


def _package_dirs(*names: str) -> tuple[str, ...]:
    dirs = []
    for name in names:
        mod = sys.modules.get(name)
        file = getattr(mod, "__file__", None)
        if file:
            dirs.append(os.path.dirname(os.path.abspath(file)) + os.sep)
    return tuple(dirs)


def _user_frame(skip: int, outside: Any = None) -> Any:
    """The innermost user frame; with ``outside``, the innermost not in a method of
    that object (its own ``__init__`` calling ``super().__init__()``)."""
    frame = sys._getframe(skip + 1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if (not filename.startswith("<") and not filename.startswith(SKIP_PREFIXES)
                and (outside is None or frame.f_locals.get("self") is not outside)):
            return frame
        frame = frame.f_back
    return None


def user_site(skip: int = 1) -> tuple[str | None, int | None]:
    """The innermost stack frame in user code (not Keras, TF or shapecheck)."""
    frame = _user_frame(skip)
    if frame is None:
        return None, None
    return original(os.path.abspath(frame.f_code.co_filename), frame.f_lineno)


def construction_site(obj: Any, skip: int = 1) -> tuple[str | None, int | None]:
    """Where the user made ``obj``: the innermost user frame outside ``obj``'s own
    methods (a subclass's ``__init__`` calling ``super().__init__()``)."""
    frame = _user_frame(skip, outside=obj)
    if frame is None:
        return None, None
    return os.path.abspath(frame.f_code.co_filename), frame.f_lineno


def raised_in_user_code(err: BaseException) -> Any:
    """The traceback entry of the innermost user frame ``err`` passed through, or None."""
    tb, found = err.__traceback__, None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith("<") and not filename.startswith(SKIP_PREFIXES):
            found = tb
        tb = tb.tb_next
    return found


Position = tuple[str | None, int | None, int | None, int | None]


def user_position(skip: int = 1, outside: Any = None) -> Position:
    """``(path, line, column, end column)`` of the innermost user frame's call (not in
    a method of ``outside``, when given).

    Columns are 1-based and inclusive; None when Python cannot tell."""
    frame = _user_frame(skip, outside)
    if frame is None:
        return None, None, None, None
    line, col, end = frame.f_lineno, None, None
    path = os.path.abspath(frame.f_code.co_filename)
    if path in GENERATED:
        path, line = original(path, line)
        return path, line, None, None
    try:
        pos = list(frame.f_code.co_positions())[frame.f_lasti // 2]
        if pos[0] == line and pos[2] is not None:
            text = linecache.getline(path, line).encode()  # offsets count UTF-8 bytes
            col = len(text[:pos[2]].decode(errors="replace")) + 1
            if pos[1] == line and pos[3] is not None:
                end = len(text[:pos[3]].decode(errors="replace"))
    except (IndexError, AttributeError):
        pass
    return path, line, col, end


def user_frames(skip: int = 1) -> list[Any]:
    """The user's frames on the stack, innermost first."""
    out = []
    frame = sys._getframe(skip + 1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<") and not filename.startswith(SKIP_PREFIXES):
            out.append(frame)
        frame = frame.f_back
    return out


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` is the user's code (not a library, shapecheck or ``<string>``)."""
    return not filename.startswith("<") and not filename.startswith(SKIP_PREFIXES)


def called_by_user(skip: int = 1) -> bool:
    """Whether the caller of the calling function is the user's code (AutoGraph's
    call machinery in between is looked through), not a library's."""
    frame = sys._getframe(skip + 1)
    while frame is not None and os.sep + "autograph" + os.sep in frame.f_code.co_filename:
        frame = frame.f_back
    if frame is None:
        return False
    filename = os.path.abspath(frame.f_code.co_filename)
    return filename in GENERATED or is_user_file(filename)
