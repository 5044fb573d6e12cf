"""Shape rules for recurrent layers and the wrappers that drive them.

Covers ``SimpleRNN``, ``GRU``, ``LSTM``, the generic ``RNN(cell)`` (single
cells, ``StackedRNNCells``, custom cells with an int or list ``state_size``),
``ConvLSTM1D/2D/3D``, ``Bidirectional`` and ``TimeDistributed``.

Every rule mirrors the layer's ``compute_output_shape`` (what Keras declares
when the model is built) and records, as constraints, what the layer needs at
run time that Keras does not check when building: initial states whose batch
and width match the cell, inputs whose feature size matches the weights a
shared layer was built with, a backward layer whose outputs match the
forward one's.
"""

from __future__ import annotations

from typing import Any

from shapecheck.shapes import dims
from shapecheck.shapes.dims import Dim
from shapecheck.shapes.layers.registry import (Call, ShapeError, Sym, flatten,
                                               flatten_shapes, rule, shape_of)

# --- helpers -----------------------------------------------------------------


def _fmt(shape: tuple) -> str:
    return dims.fmt_shape(shape)


def _state_leaves(init: Any) -> list[tuple | None]:
    """Shapes of the initial-state tensors, flattened in Keras's order."""
    if init is None:
        return []
    if not isinstance(init, (list, tuple, dict)):
        init = [init]
    return [shape_of(s) for s in flatten(init)]


def check_input_spec(call: Call, spec: Any, shape: tuple) -> None:
    """Keras's ``assert_input_compatibility`` for the first input, symbolically."""
    if spec is None:
        return
    specs = [s for s in flatten(spec) if s is not None] if isinstance(
        spec, (list, tuple)) else [spec]
    if len(specs) != 1:
        return
    spec = specs[0]
    rank = len(shape)
    ndim = getattr(spec, "ndim", None)
    if ndim is not None and not getattr(spec, "allow_last_axis_squeeze", False) \
            and rank != ndim:
        raise ShapeError(
            f"expects an input of rank {ndim}; got {_fmt(shape)}",
            expected=f"rank {ndim}", got=_fmt(shape))
    max_ndim = getattr(spec, "max_ndim", None)
    if max_ndim is not None and rank > max_ndim:
        raise ShapeError(f"expects an input of rank <= {max_ndim}; got {_fmt(shape)}",
                         expected=f"rank <= {max_ndim}", got=_fmt(shape))
    min_ndim = getattr(spec, "min_ndim", None)
    if min_ndim is not None and rank < min_ndim:
        raise ShapeError(f"expects an input of rank >= {min_ndim}; got {_fmt(shape)}",
                         expected=f"rank >= {min_ndim}", got=_fmt(shape))
    for axis, value in (getattr(spec, "axes", None) or {}).items():
        if value is None or not -rank <= axis < rank:
            continue
        _need(call, shape[axis], int(value), f"axis {axis} of the input (the layer's input spec)")
    spec_shape = getattr(spec, "shape", None)
    if spec_shape is not None and not getattr(spec, "allow_last_axis_squeeze", False):
        for axis, (want, got) in enumerate(zip(spec_shape, shape)):
            if want is not None:
                _need(call, got, int(want),
                      f"axis {axis} of the input (the shape the layer was built for)")


def _need(call: Call, got: Dim, want: Dim, reason: str) -> Dim:
    """``got == want``: a ShapeError when both are ints and differ, else a constraint."""
    if isinstance(got, int) and isinstance(want, int) and got != want:
        raise ShapeError(f"{reason}: expected {want}, got {got}",
                         expected=str(want), got=str(got))
    return call.require_equal(got, want, reason)


def _built_shape(layer: Any) -> tuple | None:
    """The (first) input shape ``layer`` was built with, if it was built."""
    if not getattr(layer, "built", False):
        return None
    shapes = getattr(layer, "_build_shapes_dict", None)
    if not shapes:
        return None
    first = next(iter(shapes.values()))
    if isinstance(first, (list, tuple)) and all(
            d is None or isinstance(d, int) for d in first):
        return tuple(first)
    return None


def _standard_cell_types() -> tuple:
    from keras.src.layers.rnn.gru import GRUCell
    from keras.src.layers.rnn.lstm import LSTMCell
    from keras.src.layers.rnn.simple_rnn import SimpleRNNCell

    return (SimpleRNNCell, GRUCell, LSTMCell)


def _is_standard_cell(cell: Any) -> bool:
    """A Keras cell that indexes ``states[i]`` for each of its states."""
    from keras.src.layers.rnn.conv_lstm import ConvLSTMCell

    types = _standard_cell_types() + (ConvLSTMCell,)
    for klass in types:
        if isinstance(cell, klass):
            # A subclass with its own ``call`` may treat states differently.
            for c in type(cell).__mro__:
                if c is klass:
                    return True
                if "call" in vars(c):
                    return False
    return False


def _check_features(call: Call, cell: Any, x: tuple) -> None:
    """A built cell's kernel fixes the feature size (shared layers)."""
    first = cell
    cells = getattr(cell, "cells", None)
    if cells:  # StackedRNNCells: the first cell reads the input
        first = cells[0]
    if not isinstance(first, _standard_cell_types()):
        return
    built = _built_shape(first)
    if built and built[-1] is not None and x:
        call.require_equal(x[-1], int(built[-1]),
                           "the input's features must match the size the cell's "
                           "kernel was built for")


def _check_initial_state(call: Call, init: Any, expected: list[tuple],
                         cell: Any) -> None:
    """Each given state's batch and width must match the cell's states."""
    given = _state_leaves(init)
    if len(given) != len(expected):
        # Keras 3 builds fine with a wrong number of states: only
        # compute_output_shape runs at build time, and the declared outputs
        # follow the cell's state_size whatever was passed.  Too few states
        # make the built-in cells index past the list (``states[0]`` /
        # ``states[1]`` -> IndexError at run time, every backend), which is
        # certain, so it is noted.  Too many: SimpleRNN and LSTM on the
        # generic loop fail (the loop's state structure no longer matches:
        # "Too few leaves for PyTreeSpec" on TensorFlow), but LSTM's cuDNN
        # path reads only states[0:2] and GRU keeps states[0], so they run;
        # custom and stacked cells may do anything.  Not noted: a later
        # stage may compare the count with the cell's.
        if len(given) < len(expected) and _is_standard_cell(cell):
            message = (f"initial_state has {len(given)} tensor(s); the cell needs "
                       f"{len(expected)} ({', '.join(_fmt(s) for s in expected)}), "
                       "so the call fails at run time")
            if not any(n.layer == call.layer and n.message == message
                       for n in call.scope.notes):  # Bidirectional: once for both
                call.scope.note(call.layer, "shape-error", message)
        return
    for i, (got, want) in enumerate(zip(given, expected)):
        if got is None:
            continue
        if len(got) == len(want):
            for axis, (g, w) in enumerate(zip(got, want)):
                what = "batch size" if axis == 0 else (
                    "width" if axis == len(want) - 1 else f"axis {axis}")
                call.require_equal(g, w, f"initial state {i}: its {what} must match "
                                         f"the state the cell carries {_fmt(want)}")
        elif got:
            call.require_equal(got[-1], want[-1],
                               f"initial state {i}: its width must match the "
                               f"state the cell carries {_fmt(want)}")


def _check_stateful(call: Call, x: tuple) -> None:
    op = call.op
    if not getattr(op, "stateful", False) or not x:
        return
    states = getattr(op, "states", None)
    if not states:
        return
    try:
        first = flatten(list(states) if isinstance(states, (list, tuple)) else [states])[0]
        fixed = int(first.shape[0])
    except (TypeError, IndexError, AttributeError, ValueError):
        return
    call.require_equal(x[0], fixed, "a stateful RNN's batch size is fixed when it is built")


def _initial_state(call: Call) -> Any:
    return call.arg(1, "initial_state")


def _sequences(call: Call, name: str = "sequences") -> Sym:
    """The first call argument (positional or by keyword) as a Sym."""
    seq = call.arg(0, name)
    if not isinstance(seq, Sym):
        seq = call.tensors[0] if call.tensors else None
    if not isinstance(seq, Sym):
        raise ShapeError(f"expects a tensor as `{name}`")
    return seq


# --- RNN, SimpleRNN, GRU, LSTM -----------------------------------------------------


def rnn_state_shapes(op: Any, batch: Dim) -> list:
    """``RNN.compute_output_shape``'s state shapes (nested like ``state_size``)."""
    out: list = []
    for size in op.state_size:
        if isinstance(size, int):
            out.append((batch, size))
        elif isinstance(size, (list, tuple)):
            out.append([(batch, s) for s in size])
    return out


@rule("layers.RNN", "layers.SimpleRNN", "layers.GRU", "layers.LSTM")
def rnn(call: Call) -> Any:
    op = call.op
    x = _sequences(call).shape
    check_input_spec(call, op.input_spec, x)
    if len(x) < 2:
        raise ShapeError(f"expects (batch, timesteps, ...); got {_fmt(x)}",
                         expected="rank >= 2", got=_fmt(x))
    batch, length = x[0], x[1]
    states = rnn_state_shapes(op, batch)
    output_size = getattr(op.cell, "output_size", None)
    if output_size is None:
        output_size = op.state_size[0]
    if not isinstance(output_size, int):
        raise ShapeError(f"the cell's output_size must be an int; got {output_size!r}")

    _check_features(call, op.cell, x)
    _check_stateful(call, x)
    init = _initial_state(call)
    if init is not None:
        expected = [s for s in flatten_shapes(states)] if states else []
        _check_initial_state(call, init, expected, op.cell)
    # go_backwards, unroll, stateful and zero_output_for_mask keep shapes.
    # (unroll=True with an unknown time axis raises only when traced with it.)

    output = (batch, length, output_size) if op.return_sequences else (batch, output_size)
    if op.return_state:
        return [output, *states]
    return output


# --- ConvLSTM1D / 2D / 3D --------------------------------------------------------------


def _conv_state_shape(call: Call, cell: Any, step: tuple) -> tuple:
    """``ConvLSTMCell.compute_output_shape(step)[0]`` without the batch axis."""
    last = cell.data_format == "channels_last"
    spatial = step[1:-1] if last else step[2:]
    out = []
    for axis, n in enumerate(spatial):
        k = cell.kernel_size[axis]
        s = cell.strides[axis]
        d = cell.dilation_rate[axis]
        o = dims.conv_length(n, k, s, d, cell.padding)
        if cell.padding == "valid":
            if isinstance(o, int) and o <= 0:
                raise ShapeError(
                    f"spatial axis {axis} of size {n} is smaller than the kernel's "
                    f"reach ({d * (k - 1) + 1}); the output would be empty",
                    expected=f">= {d * (k - 1) + 1}", got=str(n))
            o = call.require_positive(o, f"spatial axis {axis} must fit the kernel "
                                         f"({d * (k - 1) + 1} with dilation)")
        out.append(o)
    return (*out, cell.filters) if last else (cell.filters, *out)


@rule("layers.ConvLSTM", "layers.ConvLSTM1D", "layers.ConvLSTM2D", "layers.ConvLSTM3D")
def conv_lstm(call: Call) -> Any:
    op = call.op
    cell = op.cell
    x = _sequences(call).shape
    check_input_spec(call, op.input_spec, x)
    if len(x) != cell.rank + 3:
        raise ShapeError(f"expects an input of rank {cell.rank + 3}; got {_fmt(x)}",
                         expected=f"rank {cell.rank + 3}", got=_fmt(x))
    batch, steps = x[0], x[1]
    step = (batch, *x[2:])
    state = _conv_state_shape(call, cell, step)

    last = cell.data_format == "channels_last"
    channels = step[-1] if last else step[1]
    built_dim = getattr(cell, "input_dim", None) if cell.built else None
    if built_dim is not None:
        call.require_equal(channels, int(built_dim),
                           "the input's channels must match the size the kernel was built for")
    init = _initial_state(call)
    if init is None and cell.built and getattr(cell, "spatial_dims", None) is not None:
        # The zero initial state is made with the spatial size of the first build.
        spatial = step[1:-1] if last else step[2:]
        for axis, (n, fixed) in enumerate(zip(spatial, cell.spatial_dims)):
            if fixed is not None:
                call.require_equal(n, int(fixed),
                                   f"spatial axis {axis} must match the size the layer was "
                                   "built for (its zero initial state has that size)")
    _check_stateful(call, x)
    if init is not None:
        batched = (batch, *state)
        _check_initial_state(call, init, [batched, batched], cell)

    output = (batch, steps, *state) if op.return_sequences else (batch, *state)
    if op.return_state:
        return [output, (batch, *state), (batch, *state)]
    return output


# --- Bidirectional -----------------------------------------------------------------------

@rule("layers.Bidirectional")
def bidirectional(call: Call) -> Any:
    op = call.op
    seq = _sequences(call)
    x = seq.shape
    check_input_spec(call, op.input_spec, x)
    fw_layer, bw_layer = op.forward_layer, op.backward_layer
    init = _initial_state(call)
    fw_kwargs: dict = {}
    bw_kwargs: dict = {}
    if init is not None:
        states = list(init) if isinstance(init, (list, tuple)) else [init]
        half = len(states) // 2
        fw_kwargs["initial_state"] = states[:half]
        bw_kwargs["initial_state"] = states[half:]
    fw = flatten_shapes(call.infer(fw_layer, seq, **fw_kwargs))
    bw = flatten_shapes(call.infer(bw_layer, seq, **bw_kwargs))

    # Keras declares the shapes from the forward layer alone; the backward
    # layer must produce the same ones for that to hold at run time.
    if len(fw) == len(bw):
        for i, (f, b) in enumerate(zip(fw, bw)):
            if len(f) != len(b):
                continue
            for axis, (df, db) in enumerate(zip(f, b)):
                call.require_equal(db, df, f"the backward layer's output {i} (axis {axis}) "
                                           "must match the forward layer's")

    output = fw[0]
    states = fw[1:] if op.return_state else []
    if op.merge_mode == "concat":
        output = (*output[:-1], dims.mul(output[-1], 2))
    elif op.merge_mode is None:
        output = [output, output]
    # sum / mul / ave keep the forward shape.
    if op.return_state:
        head = output if isinstance(output, list) else [output]
        return [*head, *states, *states]
    return output


# --- TimeDistributed ---------------------------------------------------------------------


@rule("layers.TimeDistributed")
def time_distributed(call: Call) -> Any:
    op = call.op
    seq = _sequences(call, "inputs")
    x = seq.shape
    if len(x) < 3:
        raise ShapeError(f"TimeDistributed needs an input of rank >= 3; got {_fmt(x)}",
                         expected="rank >= 3", got=_fmt(x))
    child = Sym((x[0], *x[2:]), seq.dtype)
    shapes = flatten_shapes(call.infer(op.layer, child))
    if len(shapes) != 1:
        raise ShapeError(f"TimeDistributed wraps a layer with {len(shapes)} outputs; "
                         "Keras supports a single output")
    out = shapes[0]
    if not out:
        raise ShapeError("the wrapped layer returns a scalar; TimeDistributed "
                         "needs a batch axis to put the time axis after")
    return (out[0], x[1], *out[1:])
