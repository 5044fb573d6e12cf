"""What a line of the user's code that raised worked on: each operand's shape and where
it came from (a model's output, an array assigned on some line, a function's argument).

Model calls on data note their outputs here as they return (weakly: nothing is kept
alive); when the script raises, :func:`operands_at` reads the raising frame's names.
"""

from __future__ import annotations

import ast
import os
import weakref
from dataclasses import dataclass, field
from typing import Any

from shapecheck.script import frames, loops


@dataclass
class Operand:
    """One name on the line that raised, holding an array, tensor, TensorArray or list."""

    text: str  # the name: "pred"
    shape: list[Any]  # its shape (None for an axis a traced function leaves unknown)
    kind: str  # "NumPy array", "tensor", "traced tensor", "TensorArray", "list of 3 tensors"
    origin: str  # "the output of model `model_a` (layer `dense`) at line 54", ...
    model: str | None = None  # a model's output: the model, its output layer and index
    layer: str | None = None
    index: int = 0
    axes: list[str] = field(default_factory=list)  # leading axes counting loops' steps
    loop: str | None = None  # a TensorArray written in a loop: what the loop counts
    element: list[Any] | None = None  # a TensorArray's element shape
    items: list[list[Any]] = field(default_factory=list)  # a list's tensors' shapes
    named: list[Any] | None = None  # a model's output: its symbolic shape ("batch", 4)


@dataclass
class _Output:
    ref: Any  # weakref to the tensor
    model: str
    layer: str | None
    index: int
    path: str | None
    line: int | None


_OUTPUTS: dict[int, _Output] = {}


def reset() -> None:
    _OUTPUTS.clear()


def note_outputs(layer: Any, out: Any, site: tuple[str | None, int | None],
                 graph: Any = None) -> None:
    """Remember ``out`` as the outputs of ``layer`` called at ``site`` (weakly);
    ``graph``: the traced graph of a subclassed model, whose output layers name them."""
    from keras import tree

    try:
        leaves = tree.flatten(out)
    except Exception:
        return
    names = _output_layers(graph if graph is not None else layer, len(leaves))
    for i, t in enumerate(leaves):
        try:
            ref = weakref.ref(t, lambda _, k=id(t): _OUTPUTS.pop(k, None))
        except TypeError:
            continue
        _OUTPUTS[id(t)] = _Output(ref, layer.name, names[i], i, site[0], site[1])
    if len(_OUTPUTS) > 4096:  # tensors kept alive by the script itself: keep the newest
        for k in list(_OUTPUTS)[:1024]:
            _OUTPUTS.pop(k, None)


def _output_layers(layer: Any, n: int) -> list[str | None]:
    """The layer that makes each output of ``layer`` (a model's output layers)."""
    graph = getattr(layer, "_functional", None) or layer
    outputs = getattr(graph, "outputs", None)
    from keras import tree

    try:
        flat = tree.flatten(outputs) if outputs is not None else []
        names = [t._keras_history.operation.name for t in flat]
    except Exception:
        names = []
    if len(names) != n:
        names = [None] * n
    return names


def output_of(value: Any) -> _Output | None:
    found = _OUTPUTS.get(id(value))
    return found if found is not None and found.ref() is value else None


# --- reading the line that raised --------------------------------------------------------

def raising_frame(err: BaseException) -> tuple[Any, str, int] | None:
    """``(frame, path, line)`` of the innermost user frame ``err`` went through (an
    AutoGraph frame mapped to the user's line)."""
    found = None
    tb = err.__traceback__
    while tb is not None:
        filename = os.path.abspath(tb.tb_frame.f_code.co_filename)
        path, line = frames.original(filename, tb.tb_lineno)
        if path != filename or (frames.is_user_file(filename)
                                and "__autograph_generated_file" not in filename):
            found = (tb.tb_frame, path, line)
        tb = tb.tb_next
    return found


def _innermost(tree: ast.AST, line: int, kinds: tuple[type, ...]) -> Any:
    best = None
    for node in ast.walk(tree):
        if isinstance(node, kinds) and node.lineno <= line <= (node.end_lineno or node.lineno):
            if best is None or (node.end_lineno or 0) - node.lineno <= \
                    (best.end_lineno or 0) - best.lineno:
                best = node
    return best


def statement_at(path: str, line: int) -> Any:
    """The innermost statement of ``path`` on ``line``."""
    tree = loops.parsed(path)
    return _innermost(tree, line, (ast.stmt,)) if tree is not None else None


_SAFE = (ast.Slice, ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.Tuple, ast.Load,
         ast.operator, ast.unaryop)


def _safe_subscript(node: ast.AST) -> bool:
    """``y[i:i + 16]``, ``x[:, t]``: a name sliced by names and numbers (no call)."""
    return isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
        all(isinstance(n, _SAFE) for n in ast.walk(node.slice))


def _names(stmt: ast.AST) -> list[tuple[str, str]]:
    """``(expression, its base name)`` the statement reads, in order, once each: names,
    and names sliced by names and numbers (not what it only assigns)."""
    if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With)):
        parts: list[ast.AST] = [getattr(stmt, "iter", None) or getattr(stmt, "test", None)
                                or stmt]
        if isinstance(stmt, ast.With):
            parts = [item.context_expr for item in stmt.items]
    elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return []
    else:
        parts = [stmt]
    found: dict[str, tuple[tuple[int, int], str]] = {}
    inside: set[int] = set()  # the Name nodes a kept subscript holds
    for part in parts:
        for node in ast.walk(part):
            if _safe_subscript(node) and isinstance(node.ctx, ast.Load):
                inside |= {id(n) for n in ast.walk(node) if n is not node}
                found.setdefault(ast.unparse(node), ((node.lineno, node.col_offset),
                                                     node.value.id))
    for part in parts:
        for node in ast.walk(part):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                    id(node) not in inside:
                found.setdefault(node.id, ((node.lineno, node.col_offset), node.id))
    return [(text, base) for text, (_, base) in sorted(found.items(), key=lambda i: i[1][0])]


def operands_at(err: BaseException) -> tuple[str | None, int | None, list[Operand]]:
    """The user's line ``err`` was raised on, and the operands it read there."""
    found = raising_frame(err)
    if found is None:
        return None, None, []
    frame, path, line = found
    stmt = statement_at(path, line)
    if stmt is None:
        return path, line, []
    out = []
    for text, base in _names(stmt):
        if text == base:
            if text in frame.f_locals:
                value = frame.f_locals[text]
            elif text in frame.f_globals:
                value = frame.f_globals[text]
            else:
                continue
        else:
            held = frame.f_locals.get(base, frame.f_globals.get(base))
            if not (hasattr(held, "shape") and hasattr(held, "dtype")):
                continue  # only arrays and tensors are sliced: their slicing changes nothing
            try:  # a slice of an array by names and numbers
                value = eval(compile(text, "<operand>", "eval"), frame.f_globals,
                             dict(frame.f_locals))
            except Exception:
                continue
        op = describe(text, value, path, line, frame.f_locals, base=base)
        if op is not None:
            out.append(op)
    return path, line, out


def _shape(value: Any) -> list[Any] | None:
    try:
        dims = list(value.shape)
    except (TypeError, ValueError, AttributeError):
        return None
    return [None if d is None else int(d) for d in dims]


def _kind(value: Any) -> str:
    name = type(value).__name__
    if type(value).__module__ == "numpy":
        return "NumPy array"
    if name == "SymbolicTensor":
        return "tensor (traced by tf.function)"
    if "Variable" in name:
        return "variable"
    return "tensor" if "Tensor" in name or "Array" in name else name


def describe(name: str, value: Any, path: str, line: int,
             scope: dict[str, Any], base: str | None = None) -> Operand | None:
    """``value`` held by ``name`` (an expression on ``base``) as an operand; None when
    it is no array."""
    base = base or name
    if all(hasattr(value, a) for a in ("element_shape", "write", "stack")):  # a TensorArray
        element = _shape(type("S", (), {"shape": value.element_shape})())
        loop = getattr(value, "_shapecheck_loop", None)
        return Operand(name, [], "TensorArray", _origin(base, value, path, line, scope),
                       element=element, loop=loop.count if loop is not None else None,
                       axes=list(getattr(value, "_shapecheck_inner", []) or []))
    if isinstance(value, (list, tuple)) and value and \
            all(_shape(v) is not None and not isinstance(v, (int, float)) for v in value):
        items = [_shape(v) for v in value]
        return Operand(name, [], f"{type(value).__name__} of {len(value)} tensors",
                       _origin(base, value, path, line, scope), items=items)
    if isinstance(value, (bool, int, float, str, bytes)) or not hasattr(value, "dtype"):
        return None
    shape = _shape(value)
    if shape is None:
        return None
    op = Operand(name, shape, _kind(value), _origin(base, value, path, line, scope),
                 axes=loops.axis_names(value))
    made = output_of(value)
    if made is not None:
        op.model, op.layer, op.index = made.model, made.layer, made.index
    return op


def _origin(name: str, value: Any, path: str, line: int, scope: dict[str, Any]) -> str:
    made = output_of(value)
    if made is not None:
        layer = f" (layer `{made.layer}`)" if made.layer else ""
        at = f" at line {made.line}" if made.line and made.path == path else (
            f" at {made.path}:{made.line}" if made.line else "")
        return f"the output of model `{made.model}`{layer}, called{at}"
    assigned = assignment(path, line, name)
    if assigned is None:
        return "from an outer scope"
    where, text = assigned
    if text == "argument":
        return f"an argument of the function at line {where}"
    stmt = statement_at(path, where)
    code = ast.unparse(stmt) if stmt is not None and not isinstance(
        stmt, (ast.For, ast.AsyncFor, ast.With)) else ""
    return f"assigned at line {where}" + (f": `{code}`" if code and len(code) <= 80 else "")


def assignment(path: str, line: int, name: str) -> tuple[int, str] | None:
    """Where ``name`` was last given its value before ``line``, in the function (or
    module) around it: ``(line, "assigned")``, or ``(line of the def, "argument")``."""
    tree = loops.parsed(path)
    if tree is None:
        return None
    scope = _innermost(tree, line, (ast.FunctionDef, ast.AsyncFunctionDef)) or tree
    found: list[tuple[int, str]] = []
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = scope.args
        if name in [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]:
            found.append((scope.lineno, "argument"))
    for node in ast.walk(scope):
        if node is not scope and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                    ast.ClassDef, ast.Lambda)):
            continue
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            targets = [node.optional_vars]
        for t in targets:
            if any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(t)):
                found.append((node.lineno, "assigned"))
    before = [f for f in found if f[0] < line]
    if before:
        return max(before)
    return max(found) if found else None
