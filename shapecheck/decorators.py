"""``@shapecheck.returns``: a shape contract on what a function returns.

Checked when the ``shapecheck`` command runs the file (a failure is finding SC904,
the script goes on) and in tests, while the pytest plugin is loaded (a failure
raises :class:`shapecheck.ShapeContractError` from the call).  Anywhere else the
decorator gives the function back unchanged: a call costs nothing.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

PLUGIN = False  # set by the pytest plugin when pytest loads it


def enable_in_tests() -> None:
    """Check contracts from now on (the pytest plugin calls this as it is loaded)."""
    global PLUGIN
    PLUGIN = True


def _mode() -> str | None:
    capture = sys.modules.get("shapecheck.script.capture")
    if capture is not None and capture.INSTALLED:
        return "command"
    return "pytest" if PLUGIN else None


def returns(spec: Any, /, *, inputs: Any = None, **params: str) -> Callable[[F], F]:
    """Mark a function with the shapes of what it returns.

    ``spec`` is jaxtyping's dimension syntax (``"batch T 4"``, ``"*batch 64"``,
    ``"_ T//2"``), or a list (in order) or dict (by key or output name) of specs for
    several outputs.  The function may return a Keras model (its outputs are checked;
    ``inputs=`` specs its inputs, and names bind across both), Keras tensors (the
    function's tensor arguments are specced by name: ``x="batch T C"``), or arrays::

        @shapecheck.returns("batch T 4", inputs="batch T 8")
        def build_tagger(): ...

        @shapecheck.returns("batch T//2 C", x="batch T C")
        def downsample(x): ...

    Models and Keras tensors are checked for every size of their named dims;
    arrays at the sizes of the call.
    """
    from shapecheck.graph.returned import Contract

    caller = sys._getframe(1)
    where = (caller.f_code.co_filename, caller.f_lineno)
    Contract(spec, inputs, dict(params)).validate()

    def decorate(fn: F) -> F:
        signature = _signature(fn)
        unknown = [p for p in params if signature is not None
                   and p not in signature.parameters and not _takes_kwargs(signature)]
        if unknown:
            from shapecheck.shapes.contracts import SpecError

            raise SpecError(f"`{fn.__qualname__}` has no argument "
                            f"{', '.join(f'`{p}`' for p in unknown)} to spec")
        contract = Contract(spec, inputs, dict(params), fn.__qualname__, *where)
        try:
            fn.__shapecheck_returns__ = contract  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass
        mode = _mode()
        if mode is None:
            return fn

        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            value = fn(*args, **kwargs)
            called = sys._getframe(1)
            arguments = _arguments(signature, args, kwargs)
            if mode == "command":
                from shapecheck.script.capture import CAPTURE
                from shapecheck.script.contracts import keep

                keep(CAPTURE.contracts, contract,
                     (called.f_code.co_filename, called.f_lineno), value, arguments)
            else:
                check_now(contract, value, arguments)
            return value

        return checked  # type: ignore[return-value]

    return decorate


def check_now(contract: Any, value: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check ``value`` against ``contract`` in this process; the bindings, or
    :class:`~shapecheck.ShapeContractError`."""
    from shapecheck.api import shape_table
    from shapecheck.graph.returned import check, subject_of

    subject = subject_of(contract, value, arguments)
    if subject.kind == "unchecked":
        raise ValueError(f"{contract.text} on `{contract.function}` cannot be checked: "
                         f"{subject.why}")
    table = subject.table if subject.kind == "values" else shape_table(subject.model)
    return check(contract, subject, table)


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def _takes_kwargs(signature: inspect.Signature) -> bool:
    return any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())


def _arguments(signature: inspect.Signature | None, args: tuple,
               kwargs: dict[str, Any]) -> dict[str, Any]:
    if signature is None:
        return dict(kwargs)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return dict(kwargs)
    out = dict(bound.arguments)
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD and p.name in out:
            out.update(out.pop(p.name))
    return out
