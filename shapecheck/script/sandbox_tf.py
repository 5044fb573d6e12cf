"""The write sandbox's stand-ins for h5py's and TensorFlow's own file access
(``tf.io.gfile``, checkpoints, saved models, summaries, TFRecords).
"""

from __future__ import annotations

import errno
import functools
import os
import posixpath
import shutil
import sys
from types import ModuleType
from typing import Any, Callable

from shapecheck.script.sandbox_os import param_names
from shapecheck.script.sandbox_view import as_type, delete_tree, fspath, join, no_overwrite


def _h5_how(mode: str | None) -> dict[str, bool] | None:
    """``_writable`` arguments for an ``h5py.File`` mode; None for a read."""
    return {"r+": {"create": False, "keep": True}, "a": {"create": True, "keep": True},
            "w": {"create": True, "keep": False}, "w-": {"create": True, "excl": True},
            "x": {"create": True, "excl": True}}.get(mode or "r")


def _tf_copy(src: str, dst: str, overwrite: bool = False, *rest: Any) -> None:
    no_overwrite(dst, overwrite)
    shutil.copyfile(src, dst)


def _tf_rename(src: str, dst: str, overwrite: bool = False, *rest: Any) -> None:
    no_overwrite(dst, overwrite)
    os.replace(src, dst)


class TfPatches:
    """The sandbox's stand-ins for h5py's and TensorFlow's own file access (``tf.io.gfile``,
    checkpoints, saved models, summaries, TFRecords)."""

    # ------------------------------------------------------------ h5py and TF

    def _patch_h5py(self, module: ModuleType) -> None:
        cls = module.File
        orig = cls.__init__
        sb = self

        @functools.wraps(orig)
        def __init__(self: Any, name: Any, mode: Any = "r", *args: Any, **kwargs: Any) -> None:
            if sb.active and isinstance(name, (str, bytes, os.PathLike)):
                how = _h5_how(mode)
                p = sb._abs(name)
                if how is None:
                    name = sb._read(name)
                elif p is not None:
                    name = sb._writable(p, name, **how)
            orig(self, name, mode, *args, **kwargs)

        self._set(cls, "__init__", __init__)

    def _tf_path(self, raw: Any) -> str | None:
        """The script's absolute path for a TensorFlow path argument; None: pass it through."""
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "surrogateescape")
        if not isinstance(raw, str):
            return None
        if raw.startswith("file://"):
            raw = raw[len("file://"):]
        elif "://" in raw:
            return None
        return self._abs(raw)

    def _tf_error(self, err: OSError, path: Any) -> Exception:
        errors = sys.modules["tensorflow.python.framework.errors_impl"]
        cls = {errno.ENOENT: errors.NotFoundError, errno.EEXIST: errors.AlreadyExistsError,
               errno.EACCES: errors.PermissionDeniedError,
               errno.EPERM: errors.PermissionDeniedError}.get(err.errno or 0,
                                                             errors.FailedPreconditionError)
        return cls(None, None, f"{fspath(path)}; {err.strerror or err}")

    def _tf_read(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any) -> Any:
            if not self._marks or not self.active:
                return orig(path, *args)
            p = self._tf_path(path)
            if p is None:
                return orig(path, *args)
            phys = self._phys(p)
            return orig(path if phys is p else as_type(path, phys), *args)
        return wrapper

    def _tf_write(self, orig: Callable[..., Any], modal: bool) -> Callable[..., Any]:
        """``WritableFile(path, mode)`` (``modal``) or ``WriteStringToFile(path, content)``."""
        def wrapper(path: Any, arg: Any) -> Any:
            p = self._tf_path(path) if self.active else None
            if p is None:
                return orig(path, arg)
            mode = os.fsdecode(arg) if modal else "w"
            try:
                phys = self._writable(p, path, keep="a" in mode or "r" in mode)
            except OSError as err:
                raise self._tf_error(err, path) from None
            return orig(as_type(path, phys), arg)
        return wrapper

    def _tf_op(self, orig: Callable[..., Any], op: Callable[..., Any], n: int = 1) -> Callable[..., Any]:
        """A TensorFlow mutation of ``n`` paths, done on the view by ``op(*paths, *rest)``."""
        def wrapper(*args: Any) -> Any:
            if not self.active or all(self._tf_path(a) is None for a in args[:n]):
                return orig(*args)
            paths = [os.fsdecode(a).removeprefix("file://") for a in args[:n]]
            try:
                return op(*paths, *args[n:])
            except OSError as err:
                raise self._tf_error(err, args[0]) from None
        return wrapper

    def _tf_glob(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(pattern: Any) -> Any:
            if not self._marks or not self.active or self._tf_path(pattern) is None:
                return orig(pattern)
            import glob

            return sorted(glob.glob(os.fsdecode(pattern).removeprefix("file://")))
        return wrapper

    def _patch_file_io(self, module: ModuleType) -> None:
        m = module
        for name in ("FileExists", "IsDirectory", "HasAtomicMove", "Stat",
                     "BufferedInputStream", "ReadFileToString"):
            self._set(m, name, self._tf_read(getattr(m, name)))
        self._set(m, "WritableFile", self._tf_write(m.WritableFile, modal=True))
        self._set(m, "WriteStringToFile", self._tf_write(m.WriteStringToFile, modal=False))
        ops: dict[str, Callable[..., Any]] = {
            "DeleteFile": os.remove, "CreateDir": os.mkdir, "GetChildren": os.listdir,
            "RecursivelyCreateDir": lambda p: os.makedirs(p, exist_ok=True),
            "DeleteRecursively": delete_tree}
        for name, op in ops.items():
            self._set(m, name, self._tf_op(getattr(m, name), op))
        self._set(m, "CopyFile", self._tf_op(m.CopyFile, _tf_copy, n=2))
        self._set(m, "RenameFile", self._tf_op(m.RenameFile, _tf_rename, n=2))
        self._set(m, "GetMatchingFiles", self._tf_glob(m.GetMatchingFiles))

    def _tf_logdir(self, value: Any) -> Any:
        """A summary writer's log folder, moved to the upper layer when it is known."""
        raw = value
        if hasattr(value, "numpy"):
            try:
                raw = value.numpy()
            except Exception:  # a symbolic tensor: not known before it runs
                return value
        if not isinstance(raw, (bytes, str)) or self._tf_path(raw) is None:
            return value
        new = self._compiled_dir(os.fsdecode(raw).removeprefix("file://"))
        return value if new is None else new

    def _tf_prefix(self, value: Any, write: bool) -> Any:
        """A checkpoint prefix (files ``prefix.index``, ``prefix.data-*``) moved to its layer.

        Lists map element by element; a symbolic tensor (inside a ``tf.function``)
        is not known before it runs and passes unchanged.
        """
        if isinstance(value, (list, tuple)):
            return [self._tf_prefix(v, write) for v in value]
        raw = value
        if hasattr(value, "numpy"):
            try:
                raw = value.numpy()
            except Exception:
                return value
        if hasattr(raw, "tolist") and not isinstance(raw, bytes):
            raw = raw.tolist()
            if isinstance(raw, list):
                return [self._tf_prefix(v, write) for v in raw]
        if not isinstance(raw, (bytes, str)) or self._tf_path(raw) is None:
            return value
        text = os.fsdecode(raw).removeprefix("file://")
        if write:
            folder = self._compiled_dir(posixpath.dirname(text) or ".")
            return value if folder is None else join(folder, posixpath.basename(text))
        p = self._abs(text)
        if p is not None and self._phys(p + ".index") != p + ".index":
            return self.layer + p
        return value

    def _patch_io_ops(self, module: ModuleType) -> None:
        """Checkpoint ops, in ``gen_io_ops`` and where ``io_ops`` re-exports them."""
        def wrap(orig: Callable[..., Any], *roles: str) -> Callable[..., Any]:
            names = param_names(orig)

            @functools.wraps(orig)
            def op(*args: Any, **kwargs: Any) -> Any:
                if self.active:
                    for i, role in enumerate(roles):
                        if role and i < len(args):
                            args = (*args[:i], self._tf_prefix(args[i], role == "w"), *args[i + 1:])
                        elif role and names[i] in kwargs:
                            kwargs[names[i]] = self._tf_prefix(kwargs[names[i]], role == "w")
                return orig(*args, **kwargs)
            return op

        roles = {"save_v2": ("w",), "restore_v2": ("r",), "merge_v2_checkpoints": ("r", "w")}
        io_ops = sys.modules.get("tensorflow.python.ops.io_ops")
        for name, role in roles.items():
            patched = wrap(getattr(module, name), *role)
            self._set(module, name, patched)
            if io_ops is not None and getattr(io_ops, name, None) is not None:
                self._set(io_ops, name, patched)

    def _patch_checkpoint_reader(self, module: ModuleType) -> None:
        orig = module.NewCheckpointReader

        @functools.wraps(orig)
        def NewCheckpointReader(filepattern: Any) -> Any:  # noqa: N802 - the TF name
            return orig(self._tf_prefix(filepattern, False) if self.active else filepattern)

        self._set(module, "NewCheckpointReader", NewCheckpointReader)

    def _tf_dir_read(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        """A compiled function reading files in the folder given first."""
        def wrapper(path: Any, *args: Any) -> Any:
            p = self._tf_path(path) if self.active and self._marks else None
            if p is None:
                return orig(path, *args)
            phys = self._phys(p)
            return orig(path if phys is p else as_type(path, phys), *args)
        return wrapper

    def _patch_saved_model(self, module: ModuleType) -> None:
        """SavedModel's compiled helpers: ``Save(dir)`` and the fingerprint readers."""
        orig_save = module.Save

        def Save(export_dir: Any) -> Any:  # noqa: N802 - the TF name
            if self.active and self._tf_path(export_dir) is not None:
                export_dir = self._compiled_dir(os.fsdecode(export_dir)) or export_dir
            return orig_save(export_dir)

        self._set(module, "Save", Save)
        fp = module.fingerprinting
        for name in ("CreateFingerprintDef", "SingleprintFromSM", "SingleprintFromFP",
                     "ReadSavedModelFingerprint"):
            if hasattr(fp, name):
                self._set(fp, name, self._tf_dir_read(getattr(fp, name)))

    def _patch_summary_ops(self, module: ModuleType) -> None:
        orig = module.create_summary_file_writer

        @functools.wraps(orig)
        def create_summary_file_writer(*args: Any, **kwargs: Any) -> Any:
            if self.active:
                if "logdir" in kwargs:
                    kwargs["logdir"] = self._tf_logdir(kwargs["logdir"])
                elif len(args) > 1:
                    args = (args[0], self._tf_logdir(args[1]), *args[2:])
            return orig(*args, **kwargs)

        self._set(module, "create_summary_file_writer", create_summary_file_writer)

    def _patch_events_writer(self, module: ModuleType) -> None:
        orig = module.EventsWriter

        def EventsWriter(prefix: Any, *args: Any) -> Any:  # noqa: N802 - the TF name
            if self.active and self._tf_path(prefix) is not None:
                text = os.fsdecode(prefix).removeprefix("file://")
                folder = self._compiled_dir(posixpath.dirname(text) or ".")
                if folder is not None:
                    prefix = as_type(prefix, join(folder, posixpath.basename(text)))
            return orig(prefix, *args)

        self._set(module, "EventsWriter", EventsWriter)

    def _patch_tf_record(self, module: ModuleType) -> None:
        cls = module.TFRecordWriter
        orig = cls.__init__
        sb = self

        @functools.wraps(orig)
        def __init__(self: Any, path: Any, *args: Any, **kwargs: Any) -> None:
            p = sb._tf_path(path) if sb.active else None
            if p is not None:
                path = sb._writable(p, path)
            orig(self, path, *args, **kwargs)

        self._set(cls, "__init__", __init__)

    def _patch_subprocess(self, module: ModuleType) -> None:
        orig = module.Popen.__init__
        sb = self

        @functools.wraps(orig)
        def __init__(self: Any, args: Any, *rest: Any, **kwargs: Any) -> None:
            sb._note_process(args)
            orig(self, args, *rest, **kwargs)

        self._set(module.Popen, "__init__", __init__)
