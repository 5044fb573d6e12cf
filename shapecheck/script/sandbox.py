"""The write sandbox: a user's script writes into a scratch folder, never onto the real files.

How it works.  ``activate()`` replaces, in this process, the Python functions
that touch files -- ``open``/``io.open``, ``os.open``, ``os.stat``/``lstat``/
``access``/``readlink``, ``os.listdir``/``scandir``, ``os.mkdir``/``remove``/
``unlink``/``rmdir``/``rename``/``replace``/``link``/``symlink``/``chmod``/
``chown``/``utime``/``truncate``/xattrs, ``os.chdir``/``getcwd``,
``shutil.rmtree`` -- and, once they are imported, the file entry points of
h5py (``h5py.File``: Keras's ``.h5`` and ``.weights.h5``) and TensorFlow
(``tf.io.gfile`` through its ``_pywrap_file_io`` module, the
``tf.summary`` file writers behind Keras's ``TensorBoard``, the v1 events
writer, ``tf.io.TFRecordWriter``, the checkpoint ops behind
``tf.train.Checkpoint``/``CheckpointManager``, SavedModel's compiled
helpers behind ``tf.saved_model.save``/``load`` and Keras's ``model.export``).
TensorFlow and h5py are patched by an import hook when they are imported,
never imported here.  The script sees a union of two layers, as in overlayfs:

- the *lower* layer is the real filesystem, only ever read;
- the *upper* layer is ``<scratch>/layer``, mirroring absolute paths: the
  script's ``/home/u/p/m.keras`` is ``<scratch>/layer/home/u/p/m.keras``;
- *tombstones* hide the real paths the script deleted or renamed (a folder's
  whole tree).

A path the script never wrote is read from the real file.  A write creates
the file in the upper layer; opening a real file to append or update
(``"a"``, ``"r+"``, ``os.O_RDWR`` without ``O_TRUNC``, h5py ``"a"``/``"r+"``)
or changing its metadata (``chmod``, ``utime``...) first copies it up.
Listings merge both layers minus the tombstones.  ``os.path``, ``pathlib``,
``glob``, ``shutil`` (``copy*``, ``move``, ``copytree``), ``os.walk``/
``makedirs``/``removedirs``, numpy, pandas, matplotlib and Keras all reach
the files through these functions.  ``os.chdir`` into a folder that exists
only in the sandbox really enters its upper copy; ``os.getcwd`` still
answers the script's path.  Until the script writes something the patched
functions only check a flag and call the original.

Left alone: ``/dev`` (``/dev/shm`` too), ``/proc``, ``/sys`` and the scratch folder itself.
Temporary files: while active, ``tempfile.tempdir`` and ``$TMPDIR`` point to
``<scratch>/tmp``, so what ``tempfile`` makes (the script's, Keras's,
TensorFlow's) is written for real there and dropped with the scratch
folder; a literal ``/tmp/...`` path is sandboxed like any other.
``sys.dont_write_bytecode`` is set while active: importing the user's own
modules would otherwise write ``__pycache__`` next to them.

Where it stops (these *can* change the real filesystem):

- compiled code that opens files itself: C extensions other than the h5py
  and TensorFlow entry points above (sqlite3, OpenCV's ``imwrite``,
  pyarrow...), a TensorFlow op given a path as a symbolic tensor inside a
  ``tf.function`` (a checkpoint saved from inside one); the same code
  reading a file the script wrote finds the real one, or none
  (``tf.data.TextLineDataset`` of a CSV the script wrote);
- other processes: ``subprocess``, ``os.system``, multiprocessing's spawn.
  ``changes()`` lists a process started from the script's own code as kind
  ``"process"`` (calls made inside libraries are not listed);
- functions bound before activation (``from os import remove`` in a module
  imported earlier), ``posix.*``, ``_io.open`` and ``io.FileIO`` called
  directly, file descriptors opened before activation or inherited, and
  ``dir_fd``-relative calls where ``/proc/self/fd`` is missing;
- symlinks: a symlink the script creates lives in the scratch folder with
  its target as written; writing through a real symlink writes a sandboxed
  file under the link's own name; ``os.link`` makes a copy;
- a real folder the script renames is copied into the scratch folder.

``changes()`` lists what the script did, none of which reached the real
files: ``"written"`` (a file created, overwritten, appended to, touched or
chmod-ed: its content is in the scratch folder), ``"deleted"`` (a real file or folder
removed or renamed away), ``"created-dir"`` (a folder that exists only in
the sandbox) and ``"process"``.
"""

from __future__ import annotations

import builtins
import io
import os
import posixpath
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator

from shapecheck.script.sandbox_os import OsPatches
from shapecheck.script.sandbox_tf import TfPatches
from shapecheck.script.sandbox_view import (CREATE_FUNCS, MODIFY_FUNCS, Originals, READ_FUNCS,
                                            SandboxView)


WRITTEN = "written"
DELETED = "deleted"
CREATED_DIR = "created-dir"
PROCESS = "process"


_ACTIVE: "Sandbox | None" = None


@dataclass(frozen=True)
class Change:
    """One thing the script did to the filesystem, kept in the sandbox."""

    path: str       # as the script named it, else relative to the starting folder; a process: its command
    real_path: str  # the absolute real path, left untouched ("" for a process)
    kind: str       # WRITTEN | DELETED | CREATED_DIR | PROCESS

    def describe(self) -> str:
        """One line for a report."""
        if self.kind == PROCESS:
            return f"started a process, whose writes are not sandboxed: {self.path}"
        verb = {WRITTEN: "wrote", DELETED: "deleted", CREATED_DIR: "created folder"}[self.kind]
        return f"{verb} {self.path}"


class _ImportHook:
    """A meta-path finder that patches a named module right after it executes."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], None]]) -> None:
        self.hooks = hooks

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        hook = self.hooks.get(fullname)
        if hook is None:
            return None
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is not self and find is not None:
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            hook(module)

        try:
            spec.loader.exec_module = exec_module
        except AttributeError:  # a loader that does not take attributes: unpatched
            pass
        return spec


class Sandbox(SandboxView, OsPatches, TfPatches):
    """The redirection installed by ``activate()``; see the module's docstring."""

    def __init__(self, scratch: str) -> None:
        self.root = os.path.realpath(scratch)
        self.layer = self.root + "/layer"
        self.tmp = self.root + "/tmp"
        self._o = Originals()
        self.real_open: Callable[..., Any] = self._o.open_  # the unpatched open, for our own files
        self._layer_slash = self.layer + "/"
        roots = {self.root, os.path.abspath(scratch)}
        self._exempt = tuple(r + "/" for r in roots) + ("/dev/", "/proc/", "/sys/")
        self._exempt_exact = frozenset(roots | {"/dev", "/proc", "/sys"})
        self._marks: set[str] = set()  # paths written, deleted or changed, and their trees
        self._gone: set[str] = set()   # tombstones: real paths hidden with their trees
        self._dirs: set[str] = set()   # folders above a mark: their listings are merged
        self._names: dict[str, str] = {}
        self._processes: list[str] = []
        self._has_links = False
        self._lock = threading.RLock()
        self._patches: list[tuple[Any, str, Any]] = []
        self._hook: _ImportHook | None = None
        self._saved: dict[str, Any] = {}
        self._start = os.getcwd()
        self._final: list[Change] | None = None
        self.problems: list[str] = []  # patches that could not be installed
        self.active = False

    # ----------------------------------------------------------- install/undo

    def _set(self, owner: Any, attr: str, value: Any) -> None:
        self._patches.append((owner, attr, owner.__dict__.get(attr, getattr(owner, attr))))
        setattr(owner, attr, value)

    def _lazy_patches(self) -> dict[str, Callable[[ModuleType], None]]:
        return {
            "h5py._hl.files": self._patch_h5py,
            "tensorflow.python.lib.io._pywrap_file_io": self._patch_file_io,
            "tensorflow.python.ops.gen_summary_ops": self._patch_summary_ops,
            "tensorflow.python.client._pywrap_events_writer": self._patch_events_writer,
            "tensorflow.python.lib.io.tf_record": self._patch_tf_record,
            "tensorflow.python.ops.io_ops": lambda m: self._patch_io_ops(m.gen_io_ops),
            "tensorflow.python.training.py_checkpoint_reader": self._patch_checkpoint_reader,
            "tensorflow.python.saved_model.pywrap_saved_model": self._patch_saved_model,
            "subprocess": self._patch_subprocess,
        }

    def _guarded(self, name: str, patch: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
        def run(module: ModuleType) -> None:
            if not self.active:
                return
            try:
                patch(module)
            except Exception as err:  # a library version we do not know: recorded, not fatal
                self.problems.append(f"{name}: {type(err).__name__}: {err}")
        return run

    def _install(self) -> None:
        o = self._o
        table: dict[str, Callable[..., Any]] = {
            "open": self._os_open, "mkdir": self._os_mkdir,
            "remove": self._wrap_op(o.remove, self._unlink),
            "unlink": self._wrap_op(o.unlink, self._unlink),
            "rmdir": self._wrap_op(o.rmdir, self._rmdir),
            "rename": self._os_rename(o.rename), "replace": self._os_rename(o.replace),
            "link": self._os_link, "symlink": self._os_symlink, "listdir": self._os_listdir,
            "scandir": self._os_scandir, "chdir": self._os_chdir, "getcwd": self._os_getcwd,
            "getcwdb": self._os_getcwdb, "system": self._os_system}
        for name in READ_FUNCS:
            table[name] = self._wrap_read(getattr(o, name, None)) if hasattr(o, name) else None
        for name in MODIFY_FUNCS:
            table[name] = (self._wrap_change(getattr(o, name), create=False, keep=True, dir_ok=True)
                           if hasattr(o, name) else None)
        for name in CREATE_FUNCS:
            table[name] = self._wrap_change(getattr(o, name), excl=True) if hasattr(o, name) else None
        self._saved = {"tempdir": tempfile.tempdir, "TMPDIR": os.environ.get("TMPDIR"),
                       "bytecode": sys.dont_write_bytecode}
        o.makedirs(self.layer, exist_ok=True)
        o.makedirs(self.tmp, exist_ok=True)
        self.active = True
        for name, fn in table.items():
            if fn is not None and hasattr(os, name):
                self._set(os, name, fn)
        opener = self._patched_open  # one object: ``io.open is open`` stays true
        self._set(builtins, "open", opener)
        self._set(io, "open", opener)
        self._set(shutil, "rmtree", self._rmtree_function())
        tempfile.tempdir = self.tmp
        os.environ["TMPDIR"] = self.tmp
        sys.dont_write_bytecode = True
        hooks = {name: self._guarded(name, patch) for name, patch in self._lazy_patches().items()}
        for name, hook in hooks.items():
            if name in sys.modules:
                hook(sys.modules[name])
        self._hook = _ImportHook(hooks)
        sys.meta_path.insert(0, self._hook)

    # ------------------------------------------------------------- public API

    def changes(self) -> list[Change]:
        """What the script wrote, deleted, created and started, in path order."""
        if self._final is not None:
            return list(self._final)
        out: list[Change] = []
        with self._lock:
            for p, is_dir in self._upper_entries():
                if not is_dir:
                    out.append(Change(self._display(p), p, WRITTEN))
                elif self._under(p, self._gone) or not self._lexists(p):
                    out.append(Change(self._display(p), p, CREATED_DIR))
            for p in self._gone:
                parent = posixpath.dirname(p)
                if parent != p and self._under(parent, self._gone):
                    continue
                up = self.layer + p
                if self._lexists(up) and not self._isdir(up):
                    continue  # rewritten: listed as written
                out.append(Change(self._display(p), p, DELETED))
        out.sort(key=lambda c: (c.real_path, c.kind != DELETED))
        out += [Change(cmd, "", PROCESS) for cmd in self._processes]
        return out

    def _upper_entries(self) -> Iterator[tuple[str, bool]]:
        stack = [self.layer]
        while stack:
            folder = stack.pop()
            try:
                entries = list(self._o.scandir(folder))
            except OSError:
                continue
            for e in entries:
                is_dir = e.is_dir(follow_symlinks=False)
                yield e.path[len(self.layer):], is_dir
                if is_dir:
                    stack.append(e.path)

    def write_real(self, path: str, text: str) -> None:
        """Write ``text`` to the real ``path``, around the sandbox (for shapecheck's own files)."""
        with self.real_open(path, "w", encoding="utf-8") as fh:
            fh.write(text)

    def deactivate(self) -> None:
        """Put the original functions back; the scratch folder stays until ``close()``."""
        global _ACTIVE
        if not self.active:
            return
        self.active = False
        try:
            if self._o.getcwd().startswith(self.root + "/"):  # inside a sandbox-only folder
                self._o.chdir(self._start)
        except OSError:  # the folder we stood in is gone
            self._o.chdir(self._start)
        for owner, attr, value in reversed(self._patches):
            setattr(owner, attr, value)
        self._patches.clear()
        if self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        tempfile.tempdir = self._saved["tempdir"]
        if self._saved["TMPDIR"] is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = self._saved["TMPDIR"]
        sys.dont_write_bytecode = self._saved["bytecode"]
        if _ACTIVE is self:
            _ACTIVE = None

    def close(self) -> None:
        """Deactivate and remove the scratch folder; ``changes()`` still answers."""
        if self._final is None:
            self._final = self.changes()
        self.deactivate()
        self._o.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def activate(scratch: str | None = None) -> Sandbox:
    """Sandbox this process's writes into ``scratch`` (a new temporary folder by default)."""
    global _ACTIVE
    if _ACTIVE is not None:
        raise RuntimeError("a sandbox is already active in this process")
    previous = tempfile.tempdir  # mkdtemp below may set it
    if scratch is None:
        scratch = tempfile.mkdtemp(prefix="shapecheck-sandbox-")
    else:
        os.makedirs(scratch, exist_ok=True)
    sandbox = Sandbox(scratch)
    sandbox._install()
    sandbox._saved["tempdir"] = previous
    _ACTIVE = sandbox
    return sandbox


def active() -> Sandbox | None:
    """The sandbox active in this process, if any."""
    return _ACTIVE
