"""Check a saved Keras model: a ``.keras`` file or a legacy ``.h5``/``.hdf5`` file.

The child process runs ``python -m shapecheck.child --saved RESULT.json FILE``:
the file is loaded with ``keras.saving.load_model(FILE, compile=True,
safe_mode=True)`` and the model goes through the same analysis as a model a
script builds (its layers have no source lines: findings point at the file).

Safe mode means no code from the file runs: Keras refuses a ``Lambda`` whose
function is stored as Python bytecode, and imports nothing outside Keras's own
packages.  Custom classes and functions are not importable here (shapecheck
runs no user code while loading), so a model that needs them is reported with
their names.  The file is only read; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

SAVED_SUFFIXES = (".keras", ".h5", ".hdf5")  # as Keras's load_model tells them apart

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_KERAS_PACKAGES = {"keras", "keras_hub", "keras_cv", "keras_nlp"}  # importable by Keras
_BYTECODE = '{"value": ["'  # how Keras 3 saves a lambda activation: {"value": [code, ...]}


def is_saved_model(path: str) -> bool:
    return path.endswith(SAVED_SUFFIXES)


class LoadFailure(Exception):
    """The file could not be checked: ``kind`` for the report, ``message`` in words."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class SavedConfig:
    """What the file says about the model, read as JSON (nothing deserialized)."""

    legacy: bool  # HDF5 (Keras 2 style config) rather than the .keras zip
    model: Any  # the model's config
    compiled: bool = False  # it holds a compile (training) config
    loss: Any = None  # the saved compile loss config
    lambdas: list[str] = field(default_factory=list)  # layers holding bytecode
    custom: list[tuple[str, str]] = field(default_factory=list)  # (name, registered name)


def _head(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(8)


def read_config(path: str) -> SavedConfig:
    """The model and compile configs in the file, or :class:`LoadFailure` ("bad-file")."""
    if path.endswith(".keras"):
        return _read_keras(path)
    return _read_h5(path)


def _read_keras(path: str) -> SavedConfig:
    if not zipfile.is_zipfile(path):
        head = _head(path)
        if head.startswith(_HDF5_MAGIC):
            why = ("it is an HDF5 file, not the zip archive a .keras file is: if it "
                   "was saved as HDF5, rename it to .h5")
        elif not head:
            why = "the file is empty"
        else:
            why = "it is not a zip archive, as a .keras file is (truncated or corrupt?)"
        raise LoadFailure("bad-file", f"not a readable .keras file: {why}")
    try:
        with zipfile.ZipFile(path) as zf:
            if "config.json" not in zf.namelist():
                raise LoadFailure("bad-file", "not a saved Keras model: the archive "
                                  "has no config.json (a .keras file written by "
                                  "`model.save()` has one)")
            config = json.loads(zf.read("config.json"))
    except LoadFailure:
        raise
    except Exception as err:  # BadZipFile, a bad CRC, truncated data, invalid JSON
        raise LoadFailure("bad-file", f"not a readable .keras file "
                          f"(truncated or corrupt?): {err}") from None
    if not isinstance(config, dict):
        raise LoadFailure("bad-file", "its config.json is not a model config")
    compile_config = config.get("compile_config") or {}
    out = SavedConfig(False, config, bool(compile_config), compile_config.get("loss"))
    _scan(config, out)
    return out


def _read_h5(path: str) -> SavedConfig:
    import h5py

    head = _head(path)
    try:
        with h5py.File(path, mode="r") as f:
            raw = f.attrs.get("model_config")
            training = f.attrs.get("training_config")
            has_weights_only = "layer_names" in f.attrs or "vars" in f or "layers" in f
    except Exception as err:  # h5py raises OSError, KeyError, RuntimeError on bad data
        why = str(err) or type(err).__name__
        if head.startswith(_ZIP_MAGIC):
            why += ": it is a zip archive, as a .keras file is: rename it to .keras"
        elif not head:
            why = "the file is empty"
        raise LoadFailure("bad-file", f"not a readable HDF5 file "
                          f"(truncated or corrupt?): {why}") from None
    if raw is None:
        what = (" (it holds weights only, as `save_weights` writes them)"
                if has_weights_only else "")
        raise LoadFailure("bad-file", f"no model config in this HDF5 file{what}; "
                          "shapecheck needs a model saved whole with `model.save(...)`")
    try:
        config = json.loads(raw.decode("utf-8") if hasattr(raw, "decode") else raw)
        if hasattr(training, "decode"):
            training = training.decode("utf-8")
        training = json.loads(training) if training else None
    except ValueError as err:
        raise LoadFailure("bad-file", f"its model config is not valid JSON: "
                          f"{err}") from None
    out = SavedConfig(True, config, bool(training))
    if isinstance(training, dict):
        out.loss = training.get("loss")
    _scan(config, out)
    stack = [out.loss]  # legacy losses are names: "package>name" for registered ones
    while stack:
        item = stack.pop()
        if isinstance(item, str) and ">" in item:
            name = item.split(">", 1)[1]
            if name not in [n for n, _ in out.custom]:
                out.custom.append((name, item))
        elif isinstance(item, dict) and "class_name" not in item:
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return out


def _keras_module(module: Any) -> bool:
    return isinstance(module, str) and module.split(".", 1)[0] in _KERAS_PACKAGES


def _scan(config: Any, out: SavedConfig) -> None:
    """Layers holding bytecode and custom objects named in ``config`` (best effort)."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        cls = node.get("class_name")
        inner = node.get("config")
        if (isinstance(cls, str) and not cls.startswith("__") and isinstance(inner, dict)
                and isinstance(inner.get("name"), str)):
            text = json.dumps(inner)  # a layer holding bytecode, not a model around it
            if '"layers"' not in text and ('"__lambda__"' in text or _BYTECODE in text or (
                    cls == "Lambda" and (inner.get("function_type") == "lambda"
                                         or isinstance(inner.get("function"), list)))):
                out.lambdas.append(inner["name"])
        if isinstance(cls, str):
            name = _custom_name(node, cls)
            if name and name not in [n for n, _ in out.custom]:
                out.custom.append((name, _registered(node, cls)))
        stack.extend(reversed(list(node.values())))


def _custom_name(node: dict, cls: str) -> str | None:
    """The name of the custom class or function ``node`` serializes, if it is one."""
    if cls.startswith("__"):
        return None
    if "module" not in node:  # the legacy (HDF5) config: custom names carry a package
        return cls.split(">", 1)[1] if ">" in cls else None
    module = node.get("module")
    if cls == "function":
        fn = node.get("config")
        if not isinstance(fn, str):
            return None
        if ">" in fn:
            return fn.split(">", 1)[1]
        return fn if module is not None and module != "builtins" and not _keras_module(
            module) else None
    if _keras_module(module):
        return None
    return cls


def _registered(node: dict, cls: str) -> str:
    if cls == "function":
        return str(node.get("config"))
    return node.get("registered_name") or cls


# What Keras says when it cannot find a custom object (Keras 3 and legacy loaders).
_MISSING = [
    re.compile(r"Could not locate (?:class|function) '([^']+)'"),
    re.compile(r"Unknown [a-z _]+: '([^']+)'"),
    re.compile(r"Could not deserialize (?:class|function) '([^']+)' because its parent "
               r"module \S+ cannot be imported"),
]


def _messages(err: BaseException) -> str:
    texts, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        texts.append(str(err))
        err = err.__cause__ or err.__context__
    return "\n".join(texts)


def missing_names(err: BaseException) -> list[str]:
    """Custom object names Keras could not find, from its error, in order."""
    text = _messages(err)
    names: list[str] = []
    for pattern in _MISSING:
        for m in pattern.finditer(text):
            if m.group(1) not in names:
                names.append(m.group(1))
    return names


def _safe_mode_refusal(err: BaseException) -> bool:
    text = _messages(err)
    return "Requested the deserialization of" in text and "safe_mode=False" in text


def _short(err: BaseException) -> str:
    """Keras's message without the full configs it appends."""
    text = str(err).strip() or type(err).__name__
    if "Exception encountered:" in text:  # Keras's wrapper first, the cause after it
        text = text.rsplit("Exception encountered:", 1)[1].strip()
    text = re.sub(r"\{'value': \[.*?\]\}", "<Python bytecode>", text, flags=re.S)
    for cut in ("Full object config", "\n\nconfig=", " Full Config"):
        if cut in text:
            text = text[:text.index(cut)].rstrip()
    text = " ".join(text.split())
    return text if len(text) <= 400 else text[:397] + "..."


def _custom_failure(names: list[str], config: SavedConfig | None) -> LoadFailure:
    registered = dict(config.custom) if config else {}
    listed: list[str] = []
    for name in names:
        short = name.split(">", 1)[1] if ">" in name else name
        reg = name if ">" in name else registered.get(short, short)
        item = f"`{short}`" + (f" (registered as `{reg}`)" if reg != short else "")
        if item not in listed and not any(f"`{short}`" in x for x in listed):
            listed.append(item)
    for short, reg in (config.custom if config else []):  # the others the file names
        if not any(f"`{short}`" in x for x in listed):
            listed.append(f"`{short}`" + (f" (registered as `{reg}`)" if reg != short else ""))
    what = ", ".join(listed)
    return LoadFailure(
        "custom-object",
        f"the model uses custom objects Keras cannot find: {what}. A saved model "
        "stores only their names; their code is in the script or module that defines "
        "them, which shapecheck does not run when it loads a file. Check the script "
        "that builds the model instead (`shapecheck train.py`), or a short script that "
        "imports the module defining them (where `@keras.saving."
        "register_keras_serializable()` registers them) and calls "
        "`keras.saving.load_model(...)`.")


def _safe_mode_failure(config: SavedConfig | None) -> LoadFailure:
    where = ""
    if config and config.lambdas:
        where = " (layer " + ", ".join(f"`{n}`" for n in config.lambdas) + ")"
    return LoadFailure(
        "safe-mode",
        f"Keras's safe mode refused to load it: the model holds a Python function "
        f"stored as bytecode{where}, as a `Lambda` layer saves it, and loading it "
        "would run that code. shapecheck loads saved models only in safe "
        "mode (`safe_mode=True`), so that nothing from the file is executed. Check the "
        "script that builds the model instead (`shapecheck train.py`); to make the file "
        "loadable, replace the lambda with a named function or layer registered with "
        "`@keras.saving.register_keras_serializable()`.")


def _classify(err: BaseException, config: SavedConfig | None) -> LoadFailure:
    if _safe_mode_refusal(err):
        return _safe_mode_failure(config)
    names = missing_names(err)
    if names:
        return _custom_failure(names, config)
    if isinstance(err, (zipfile.BadZipFile, EOFError, OSError)) or type(
            err).__module__.startswith("h5py"):
        return LoadFailure("bad-file", f"Keras could not read it (truncated or "
                           f"corrupt?): {_short(err)}")
    hint = ""
    if config and config.lambdas:
        hint = (" (layer " + ", ".join(f"`{n}`" for n in config.lambdas) + " holds a Python "
                "function stored as bytecode, which Keras does not load back: check the "
                "script that builds the model instead)")
    return LoadFailure("load-error", f"Keras could not load the model: "
                       f"{type(err).__name__}: {_short(err)}{hint}")


def _loss_from_config(config: SavedConfig) -> tuple[Any, list[str]]:
    """The saved compile loss rebuilt from its config, and the names that did not resolve."""
    import keras

    missing: list[str] = []

    def one(item: Any) -> Any:
        try:
            if config.legacy:
                return keras.losses.get(item)
            return keras.saving.deserialize_keras_object(item, safe_mode=True)
        except Exception as err:
            names = missing_names(err)
            if not names and isinstance(item, str):
                names = [item]
            elif not names and isinstance(item, dict):
                names = [str(item.get("registered_name") or item.get("class_name"))]
            missing.extend(n for n in names if n not in missing)
            return None

    def nested(item: Any) -> Any:
        if item is None:
            return None
        if isinstance(item, str) or (isinstance(item, dict) and "class_name" in item):
            return one(item)
        if isinstance(item, dict):
            return {k: nested(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [nested(v) for v in item]
        missing.append(repr(item))
        return None

    loss = nested(config.loss)
    return loss, missing


def load(path: str) -> tuple[Any, Any, list[str]]:
    """``(model, loss, notes)``: the loaded model, its compiled loss (or None) and
    notes on what could not be restored; raises :class:`LoadFailure`."""
    import keras

    config = read_config(path)
    path = os.path.abspath(path)  # a local file, never a remote address Keras would fetch
    try:
        model = keras.saving.load_model(path, compile=True, safe_mode=True)
    except Exception as err:
        failure = _classify(err, config)
        if failure.kind != "load-error" or not config.compiled:
            raise failure from None
        first = err
    else:
        loss = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
        return model, loss, []
    # Keras failed with the compile config: load the model alone, read the loss ourselves
    # (Keras 3.15 cannot compile an HDF5 file whose loss is an alias: "mse", "mae", ...).
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:
        raise _classify(err, config) from None
    loss, missing = _loss_from_config(config)
    if missing:
        raise _custom_failure(missing, config)
    notes = [] if loss is not None else [
        f"Keras could not restore the saved compile configuration ({type(first).__name__}: "
        f"{_short(first)}); the loss is not checked"]
    return model, loss, notes


def run_saved(result_path: str, path: str) -> int:
    """The child's ``--saved`` mode: load ``path``, analyse it, write the report."""
    from shapecheck.graph.model import analyze
    from shapecheck.report import display_path
    from shapecheck.script.protocol import device_error, run_options, write_result
    from shapecheck.report import FileReport, NoteEntry, ScriptError

    shown = display_path(path)
    report = FileReport(path=shown)
    run_options = run_options()
    report.error = device_error(run_options)
    if report.error is not None:
        write_result(result_path, report.finish())
        return 0
    try:
        model, loss, notes = load(path)
    except LoadFailure as failure:
        report.error = ScriptError(failure.kind, f"{shown}: {failure.message}")
    except Exception as err:  # not foreseen above: still a message, never a traceback
        report.error = ScriptError("load-error", f"{shown}: the model could not be loaded: "
                                   f"{type(err).__name__}: {_short(err)}")
    if report.error is not None:
        write_result(result_path, report.finish())
        return 0
    compiled = {id(model): {"args": (), "kwargs": {"loss": loss}}} if loss is not None else {}
    report.models, found = analyze([(model, path, None)], compiled=compiled,
                                   run=run_options)
    for d in found:  # a loaded layer has no source line: the finding is in the file
        if d.path is None:
            d.path, d.line, d.col, d.end_col = shown, None, None, None
    for entry in report.models:
        entry.notes += [NoteEntry(entry.name, "compile-config", n) for n in notes]
    report.diagnostics.extend(found)
    write_result(result_path, report.finish())
    return 0
