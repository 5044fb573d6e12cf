"""What executing a model needs from its Keras backend: the device, and the training
step's loss and gradient (``tf.GradientTape``, ``jax.value_and_grad`` over a stateless
scope, ``torch`` autograd).  A backend's library is imported only when it is the one
Keras runs on: nothing here imports TensorFlow under JAX or PyTorch.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator


class DeviceError(Exception):
    """The device asked for is not there."""


def backend() -> str:
    import keras

    return keras.backend.backend()


def gpus() -> list[str]:
    """The GPUs the backend sees, by name (empty: none, or the backend cannot say)."""
    name = backend()
    try:
        if name == "tensorflow":
            import tensorflow as tf

            found = tf.config.list_physical_devices("GPU")
            out = []
            for g in found:
                try:
                    out.append(tf.config.experimental.get_device_details(g)
                               .get("device_name") or g.name)
                except Exception:  # details are optional
                    out.append(g.name)
            return out
        if name == "jax":
            import jax

            try:
                return [str(getattr(d, "device_kind", d)) for d in jax.devices("gpu")]
            except RuntimeError:  # no GPU backend at all
                return []
        if name == "torch":
            import torch

            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []
    return []


_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def pick_device(choice: str) -> tuple[str, str]:
    """``(Keras device name, description)`` for ``cpu``, ``gpu`` or ``auto``:
    ``("gpu:0", "GPU:0 (NVIDIA H100)")`` or ``("cpu:0", "CPU")``."""
    found = gpus() if choice in ("gpu", "auto") else []
    if choice == "gpu" and not found:
        who = _NAMES.get(backend(), backend())
        raise DeviceError(f"--device gpu: {who} (the Keras backend) sees no GPU on this "
                          "machine (use --device cpu or auto)")
    if found:
        return "gpu:0", f"GPU:0 ({found[0]})"
    return "cpu:0", "CPU"


@contextmanager
def on_device(name: str) -> Iterator[None]:
    """Keras's own device scope (``keras.device``), for whichever backend."""
    import keras

    with keras.device(name):
        yield


class StepFailed(Exception):
    """The loss or the gradient raised: ``stage`` says which."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(str(error))
        self.stage = stage
        self.error = error


def loss_and_gradient(model: Any, loss_of: Callable[[], Any], train: bool) -> list[str]:
    """Run ``loss_of()`` (a forward pass and the compiled loss) and, when ``train``, its
    gradient with respect to the trainable weights, with the backend's own tools; the
    stages that completed.  Nothing is applied: the caller restores every variable.
    Errors of the forward pass propagate as raised; the loss's and the gradient's as
    :class:`StepFailed`."""
    name = backend()
    if name == "tensorflow":
        return _tensorflow(model, loss_of, train)
    if name == "jax":
        return _jax(model, loss_of, train)
    if name == "torch":
        return _torch(model, loss_of, train)
    return [f"loss skipped: the training step is not supported on the {name} backend"]


def _tensorflow(model: Any, loss_of: Callable[[], Any], train: bool) -> list[str]:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_of()
    if not train:
        return ["loss"]
    try:
        tape.gradient(loss, model.trainable_variables)
    except Exception as err:
        raise StepFailed("gradient", err) from err
    return ["loss", "gradient"]


def _jax(model: Any, loss_of: Callable[[], Any], train: bool) -> list[str]:
    import jax
    import keras

    trainable = list(model.trainable_variables)
    raised: list[BaseException] = []

    def loss_at(values: list[Any]) -> Any:
        with keras.StatelessScope(state_mapping=list(zip(trainable, values))):
            try:
                return loss_of()
            except BaseException as err:  # the forward pass's or the loss's own
                raised.append(err)
                raise

    values = [v.value for v in trainable]
    if not train:
        loss_at(values)
        return ["loss"]
    try:  # jax traces the forward pass and the loss, then differentiates them
        jax.value_and_grad(loss_at)(values)
    except Exception as err:
        if raised and err is raised[-1]:
            raise
        raise StepFailed("gradient", err) from err
    return ["loss", "gradient"]


def _torch(model: Any, loss_of: Callable[[], Any], train: bool) -> list[str]:
    import torch

    with torch.enable_grad():
        loss = loss_of()
        if not train:
            return ["loss"]
        try:
            loss.backward()
        except Exception as err:
            raise StepFailed("gradient", err) from err
        finally:
            for v in model.trainable_variables:
                value = getattr(v, "value", None)
                if getattr(value, "grad", None) is not None:
                    value.grad = None
    return ["loss", "gradient"]



def input_gradients(fn: Callable[[list[Any]], Any], inputs: list[Any]) -> list[tuple | None]:
    """The shape of the gradient of ``fn(inputs)`` (a scalar) with respect to each of
    ``inputs`` (``None`` where it does not depend on one), with the backend's own tools;
    raises what the backward pass raises.  Weights are constants here, and whatever a
    layer assigns to its variables is the caller's to restore (under JAX it is kept in
    a stateless scope)."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        ins = [tf.convert_to_tensor(t) for t in inputs]
        with tf.GradientTape() as tape:
            for t in ins:
                tape.watch(t)
            total = fn(ins)
        grads = tape.gradient(total, ins)
        return [None if g is None else _tf_shape(g) for g in grads]
    if name == "jax":
        import jax
        import keras

        def scalar(values: list[Any]) -> Any:
            with keras.StatelessScope():
                return fn(list(values))

        return [tuple(g.shape) for g in jax.grad(scalar)(list(inputs))]
    if name == "torch":
        import torch

        ins = [t.detach().requires_grad_(True) for t in inputs]
        with torch.enable_grad():
            total = fn(ins)
            if not getattr(total, "requires_grad", False):
                return [None] * len(ins)
            grads = torch.autograd.grad(total, ins, allow_unused=True)
        return [None if g is None else tuple(g.shape) for g in grads]
    return [None] * len(inputs)


def _tf_shape(grad: Any) -> tuple:
    dense = getattr(grad, "dense_shape", None)  # tf.IndexedSlices, from a gather
    if dense is not None:
        return tuple(int(d) for d in dense.numpy())
    return tuple(grad.shape)
