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
import errno
import functools
import io
import os
import posixpath
import shutil
import stat as st
import sys
import tempfile
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator

WRITTEN = "written"
DELETED = "deleted"
CREATED_DIR = "created-dir"
PROCESS = "process"

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_READ_FUNCS = ("stat", "lstat", "access", "readlink", "getxattr", "listxattr", "statvfs")
_MODIFY_FUNCS = ("chmod", "lchmod", "chown", "lchown", "utime", "truncate",
                 "setxattr", "removexattr")
_CREATE_FUNCS = ("mkfifo", "mknod")
_OS_FUNCS = _READ_FUNCS + _MODIFY_FUNCS + _CREATE_FUNCS + (
    "open", "mkdir", "remove", "unlink", "rmdir", "rename", "replace", "link", "symlink",
    "listdir", "scandir", "chdir", "getcwd", "getcwdb", "makedirs", "system")
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


def _oserror(code: int, name: Any) -> OSError:
    """The OSError subclass the OS raises for ``code`` about ``name``."""
    return OSError(code, os.strerror(code), _fspath(name))


def _fspath(path: Any) -> Any:
    try:
        return os.fspath(path)
    except TypeError:
        return path


def _join(d: str, name: str) -> str:
    return d + name if d.endswith("/") else d + "/" + name


def _renamed(err: OSError, phys: Any, user: Any) -> OSError:
    """``err`` naming the script's path instead of the scratch one."""
    if err.filename is not None and _fspath(err.filename) == _fspath(phys):
        err.filename = _fspath(user)
    return err


def _as_type(like: Any, path: str) -> Any:
    return os.fsencode(path) if isinstance(like, bytes) else path


def _open_how(mode: str) -> dict[str, bool] | None:
    """``_writable`` arguments for an ``open`` mode; None for a read."""
    if "w" in mode:
        return {"create": True, "keep": False}
    if "x" in mode:
        return {"create": True, "excl": True}
    if "a" in mode:
        return {"create": True, "keep": True}
    if "+" in mode:
        return {"create": False, "keep": True}
    return None


def _h5_how(mode: str | None) -> dict[str, bool] | None:
    """``_writable`` arguments for an ``h5py.File`` mode; None for a read."""
    return {"r+": {"create": False, "keep": True}, "a": {"create": True, "keep": True},
            "w": {"create": True, "keep": False}, "w-": {"create": True, "excl": True},
            "x": {"create": True, "excl": True}}.get(mode or "r")


def _param_names(func: Callable[..., Any]) -> list[str]:
    """The names of a function's positional parameters."""
    code = getattr(func, "__code__", None)
    return list(code.co_varnames[:code.co_argcount]) if code is not None else []


def _set_name(f: Any, name: Any) -> None:
    """Give an opened file the name the script used, not the scratch path."""
    raw = getattr(f, "buffer", f)
    raw = getattr(raw, "raw", raw)
    try:
        raw.name = _fspath(name)
    except (AttributeError, TypeError):
        pass


def _delete_tree(path: str) -> None:
    """``tf.io.gfile.rmtree``: a folder's tree or a file."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def _no_overwrite(dst: str, overwrite: bool) -> None:
    if not overwrite and os.path.lexists(dst):
        raise _oserror(errno.EEXIST, dst)


def _tf_copy(src: str, dst: str, overwrite: bool = False, *rest: Any) -> None:
    _no_overwrite(dst, overwrite)
    shutil.copyfile(src, dst)


def _tf_rename(src: str, dst: str, overwrite: bool = False, *rest: Any) -> None:
    _no_overwrite(dst, overwrite)
    os.replace(src, dst)


class _Originals:
    """The functions as they were before activation."""

    def __init__(self) -> None:
        for name in _OS_FUNCS:
            if hasattr(os, name):
                setattr(self, name, getattr(os, name))
        self.open_ = builtins.open
        self.rmtree = shutil.rmtree


class _Entry:
    """A merged listing's entry, duck-typed as ``os.DirEntry``."""

    __slots__ = ("name", "path", "_phys", "_o", "_lst")

    def __init__(self, name: Any, path: Any, phys: str, o: _Originals) -> None:
        self.name, self.path, self._phys, self._o, self._lst = name, path, phys, o, None

    def __fspath__(self) -> Any:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        if follow_symlinks:
            return self._o.stat(self._phys)
        if self._lst is None:
            self._lst = self._o.lstat(self._phys)
        return self._lst

    def _mode(self, follow: bool) -> int:
        try:
            return self.stat(follow_symlinks=follow).st_mode
        except OSError:
            return 0

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return st.S_ISDIR(self._mode(follow_symlinks))

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return st.S_ISREG(self._mode(follow_symlinks))

    def is_symlink(self) -> bool:
        return st.S_ISLNK(self._mode(False))

    def is_junction(self) -> bool:
        return False

    def inode(self) -> int:
        return self.stat(follow_symlinks=False).st_ino


class _Listing:
    """What ``os.scandir`` returns for a merged folder."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._it = iter(entries)

    def __iter__(self) -> "_Listing":
        return self

    def __next__(self) -> _Entry:
        return next(self._it)

    def __enter__(self) -> "_Listing":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._it = iter(())


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


@functools.lru_cache(maxsize=None)
def _library_dirs() -> tuple[str, ...]:
    """The standard library's and installed packages' folders."""
    import sysconfig

    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(d, "") for d in dirs if d)


class Sandbox:
    """The redirection installed by ``activate()``; see the module's docstring."""

    def __init__(self, scratch: str) -> None:
        self.root = os.path.realpath(scratch)
        self.layer = self.root + "/layer"
        self.tmp = self.root + "/tmp"
        self._o = _Originals()
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

    # ------------------------------------------------------------------ paths

    def _abs(self, path: Any, dir_fd: int | None = None) -> str | None:
        """The script's absolute, normalized path; None to pass ``path`` through."""
        if isinstance(path, str):
            s = path
        elif isinstance(path, (bytes, os.PathLike)):
            try:
                s = os.fsdecode(path)
            except TypeError:
                return None
        else:
            return None
        if not s or "\0" in s:
            return None
        if s[0] != "/":
            base = self._cwd() if dir_fd is None else self._fd_dir(dir_fd)
            if base is None:
                return None
            s = base + "/" + s
        s = posixpath.normpath(s)
        if s.startswith(self._exempt) or s in self._exempt_exact:
            return None
        return s

    def _view(self, real: str) -> str:
        """The script's path for a real one (the upper layer maps back)."""
        if real.startswith(self._layer_slash):
            return real[len(self.layer):]
        return "/" if real == self.layer else real

    def _cwd(self) -> str:
        return self._view(self._o.getcwd())

    def _fd_dir(self, fd: int) -> str | None:
        try:
            return self._view(self._o.readlink(f"/proc/self/fd/{fd}"))
        except (OSError, TypeError):
            return None

    def _under(self, p: str, marks: set[str]) -> bool:
        """``p`` or a folder above it is in ``marks``."""
        while True:
            if p in marks:
                return True
            i = p.rfind("/")
            if i <= 0:
                return False
            p = p[:i]

    def _lexists(self, phys: str) -> bool:
        try:
            self._o.lstat(phys)
        except (OSError, ValueError):
            return False
        return True

    def _isdir(self, phys: str) -> bool:
        try:
            return st.S_ISDIR(self._o.stat(phys).st_mode)
        except (OSError, ValueError):
            return False

    def _kind(self, p: str) -> str | None:
        """Where the script's ``p`` lives: "upper", "lower" or None (nowhere)."""
        if self._under(p, self._marks):
            if self._lexists(self.layer + p):
                return "upper"
            if self._under(p, self._gone):
                return None
        return "lower" if self._lexists(p) else None

    def _phys(self, p: str) -> str:
        """The real path to read the script's ``p`` at (``p`` itself when untouched)."""
        if self._under(p, self._marks):
            up = self.layer + p
            if self._lexists(up) or self._under(p, self._gone):
                return up
        return p

    def _read(self, path: Any, dir_fd: int | None = None) -> Any:
        """What to hand the original function to read ``path`` (``path`` itself if untouched)."""
        if not self._marks:
            return path
        p = self._abs(path, dir_fd)
        if p is None:
            return path
        phys = self._phys(p)
        return path if phys is p else _as_type(path, phys)

    def _view_isdir(self, p: str) -> bool:
        return self._isdir(self._phys(p))

    def _display(self, p: str) -> str:
        if p in self._names:
            return self._names[p]
        start = self._start.rstrip("/") + "/"
        return p[len(start):] if p.startswith(start) else p

    # ------------------------------------------------------------- the layers

    def _mark(self, p: str, name: Any) -> None:
        self._marks.add(p)
        if name is not None and p not in self._names:
            text = os.fsdecode(_fspath(name))
            if posixpath.normpath(posixpath.join(self._start, text)) == p:
                self._names[p] = text  # else relative to a folder changed into, or a dir_fd
        d = posixpath.dirname(p)
        while d not in self._dirs:
            self._dirs.add(d)
            if d == "/":
                break
            d = posixpath.dirname(d)

    def _hide(self, p: str, name: Any) -> None:
        """Tombstone the real ``p`` (and its tree) if the script could see it."""
        if not self._under(p, self._gone) and self._lexists(p):
            self._gone.add(p)
            self._mark(p, name)

    def _ensure_dir(self, p: str) -> None:
        """The upper copy of the script's folder ``p`` exists."""
        up = self.layer + p
        if not self._isdir(up):
            self._o.makedirs(up, exist_ok=True)

    def _copy_file(self, src: str, dst: str) -> None:
        """Copy a real file's content and mode (following symlinks) with the original functions."""
        with self.real_open(src, "rb") as fin, self.real_open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        self._o.chmod(dst, st.S_IMODE(self._o.stat(src).st_mode))

    def _writable(self, p: str, name: Any, *, create: bool = True, excl: bool = False,
                  keep: bool = False, dir_ok: bool = False, depth: int = 0) -> str:
        """The upper path to write the script's ``p`` at, copied up first when ``keep``.

        Raises as the OS would: ``excl`` and ``p`` exists, ``p`` missing and not
        ``create``, its folder missing, ``p`` a folder (unless ``dir_ok``).
        """
        with self._lock:
            kind = self._kind(p)
            if kind is not None:
                if excl:
                    raise _oserror(errno.EEXIST, name)
                if self._view_isdir(p):
                    if not dir_ok:
                        raise _oserror(errno.EISDIR, name)
                    self._ensure_dir(p)
                elif kind == "lower" and keep:
                    self._ensure_dir(posixpath.dirname(p))
                    self._copy_file(p, self.layer + p)
            elif not create:
                raise _oserror(errno.ENOENT, name)
            elif not self._view_isdir(posixpath.dirname(p)):
                raise _oserror(errno.ENOENT, name)
            self._ensure_dir(posixpath.dirname(p))
            self._mark(p, name)
            up = self.layer + p
        if self._has_links:
            real = os.path.realpath(up)
            if not real.startswith(self.root + "/"):  # an upper symlink points outside
                if depth > 8:
                    raise _oserror(errno.ELOOP, name)
                target = self._abs(real)
                if target is None:
                    return real
                return self._writable(target, name, create=create, excl=excl, keep=keep,
                                      dir_ok=dir_ok, depth=depth + 1)
        return up

    def _listdir(self, p: str, name: Any) -> list[str]:
        """The merged listing of the script's folder ``p``."""
        kind = self._kind(p)
        if kind is None:
            raise _oserror(errno.ENOENT, name)
        if not self._isdir(self.layer + p if kind == "upper" else p):
            raise _oserror(errno.ENOTDIR, name)
        up = self.layer + p
        names: list[str] = list(self._o.listdir(up)) if self._isdir(up) else []
        if not self._under(p, self._gone) and self._isdir(p):
            seen = set(names)
            gone = self._gone
            names += [n for n in self._o.listdir(p) if n not in seen and _join(p, n) not in gone]
        return names

    def _mkdir(self, p: str, name: Any, mode: int) -> None:
        with self._lock:
            if self._kind(p) is not None:
                raise _oserror(errno.EEXIST, name)
            parent = posixpath.dirname(p)
            if not self._view_isdir(parent):
                raise _oserror(errno.ENOENT, name)
            self._ensure_dir(parent)
            self._o.mkdir(self.layer + p, mode)
            self._mark(p, name)

    def _lmode(self, p: str, kind: str) -> int:
        return self._o.lstat(self.layer + p if kind == "upper" else p).st_mode

    def _unlink(self, p: str, name: Any) -> None:
        with self._lock:
            kind = self._kind(p)
            if kind is None:
                raise _oserror(errno.ENOENT, name)
            if st.S_ISDIR(self._lmode(p, kind)):
                raise _oserror(errno.EISDIR, name)
            if self._lexists(self.layer + p):
                self._o.unlink(self.layer + p)
            self._hide(p, name)

    def _rmdir(self, p: str, name: Any) -> None:
        with self._lock:
            kind = self._kind(p)
            if kind is None:
                raise _oserror(errno.ENOENT, name)
            if not st.S_ISDIR(self._lmode(p, kind)):
                raise _oserror(errno.ENOTDIR, name)
            if self._listdir(p, name):
                raise _oserror(errno.ENOTEMPTY, name)
            if self._lexists(self.layer + p):
                self._o.rmdir(self.layer + p)
            self._hide(p, name)

    def _rmtree(self, p: str, name: Any) -> None:
        with self._lock:
            kind = self._kind(p)
            if kind is None:
                raise _oserror(errno.ENOENT, name)
            mode = self._lmode(p, kind)
            if st.S_ISLNK(mode):
                raise OSError("Cannot call rmtree on a symbolic link")
            if not st.S_ISDIR(mode):
                raise _oserror(errno.ENOTDIR, name)
            if self._lexists(self.layer + p):  # a written file or the scaffolding of one
                self._o.rmtree(self.layer + p)
            self._hide(p, name)

    def _remove_any(self, p: str, name: Any) -> None:
        kind = self._kind(p)
        if kind is not None and st.S_ISDIR(self._lmode(p, kind)):
            self._rmtree(p, name)
        else:
            self._unlink(p, name)

    def _rename(self, s: str | None, d: str | None, src: Any, dst: Any) -> None:
        """``os.rename``/``replace`` with either side maybe outside the sandbox (None)."""
        with self._lock:
            sphys = os.fsdecode(src) if s is None else self._phys(s)
            if not self._lexists(sphys):
                raise _oserror(errno.ENOENT, src)
            s_dir = st.S_ISDIR(self._o.lstat(sphys).st_mode)
            if s is not None and s == d:
                return
            if s is not None and d is not None and s_dir and d.startswith(s + "/"):
                raise _oserror(errno.EINVAL, src)
            target = os.fsdecode(dst) if d is None else self._rename_target(d, dst, s_dir)
            only_upper = s is None or (sphys != s and (self._under(s, self._gone)
                                                       or not self._lexists(s)))
            if only_upper or (sphys != s and not s_dir):
                self._o.rename(sphys, target)
            elif s_dir:
                shutil.copytree(s, target, symlinks=True)  # the merged view, read through the patches
                self._has_links = True
                if self._lexists(self.layer + s):
                    self._o.rmtree(self.layer + s)
            elif st.S_ISLNK(self._o.lstat(sphys).st_mode):
                self._o.symlink(self._o.readlink(sphys), target)
                self._has_links = True
            else:
                self._copy_file(sphys, target)
            if s is not None:
                self._hide(s, src)
            if d is not None:
                self._mark(d, dst)

    def _rename_target(self, d: str, dst: Any, s_dir: bool) -> str:
        """The upper path a rename lands on, after the checks ``os.rename`` makes."""
        kind = self._kind(d)
        if kind is not None:
            d_dir = st.S_ISDIR(self._lmode(d, kind))
            if d_dir and not s_dir:
                raise _oserror(errno.EISDIR, dst)
            if s_dir and not d_dir:
                raise _oserror(errno.ENOTDIR, dst)
            if d_dir:
                self._rmdir(d, dst)
        elif not self._view_isdir(posixpath.dirname(d)):
            raise _oserror(errno.ENOENT, dst)
        self._ensure_dir(posixpath.dirname(d))
        return self.layer + d

    def _compiled_dir(self, path: str) -> str | None:
        """The real folder where compiled code may write the script's folder ``path``."""
        p = self._abs(path)
        if p is None:
            return None
        try:
            os.makedirs(path, exist_ok=True)  # through the patches: upper folders, marked
        except OSError:
            return self.layer + p
        with self._lock:
            if self._kind(p) == "lower":
                self._ensure_dir(p)
                self._mark(p, path)
        return self.layer + p

    # ------------------------------------------------------- patched functions

    def _wrap_read(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(orig)
        def wrapper(path: Any = None, *args: Any, **kwargs: Any) -> Any:
            if not self._marks or not self.active:
                return orig(path, *args, **kwargs) if path is not None else orig(*args, **kwargs)
            phys = self._read(path, kwargs.get("dir_fd"))
            try:
                return orig(phys, *args, **kwargs)
            except OSError as err:
                raise _renamed(err, phys, path) from None
        return wrapper

    def _wrap_change(self, orig: Callable[..., Any], **how: bool) -> Callable[..., Any]:
        @functools.wraps(orig)
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            p = self._abs(path, kwargs.get("dir_fd")) if self.active else None
            if p is None:
                return orig(path, *args, **kwargs)
            phys = self._writable(p, path, **how)
            try:
                return orig(phys, *args, **kwargs)
            except OSError as err:
                raise _renamed(err, phys, path) from None
        return wrapper

    def _wrap_op(self, orig: Callable[..., Any], op: Callable[[str, Any], None]) -> Callable[..., Any]:
        @functools.wraps(orig)
        def wrapper(path: Any, *, dir_fd: int | None = None) -> Any:
            p = self._abs(path, dir_fd) if self.active else None
            if p is None:
                return orig(path, dir_fd=dir_fd)
            op(p, path)
        return wrapper

    def _patched_open(self, file: Any, mode: Any = "r", *args: Any, **kwargs: Any) -> Any:
        real_open = self.real_open
        if (not self.active or isinstance(file, int) or not isinstance(mode, str)
                or kwargs.get("opener") is not None or len(args) > 5 and args[5] is not None):
            return real_open(file, mode, *args, **kwargs)  # an opener opens for itself
        how = _open_how(mode)
        if how is None:
            phys = self._read(file)
        else:
            p = self._abs(file)
            phys = file if p is None else self._writable(p, file, **how)
        if phys is file:
            return real_open(file, mode, *args, **kwargs)
        try:
            f = real_open(phys, mode, *args, **kwargs)
        except OSError as err:
            raise _renamed(err, phys, file) from None
        _set_name(f, file)
        return f

    def _os_open(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        orig = self._o.open
        if not self.active:
            return orig(path, flags, mode, dir_fd=dir_fd)
        if not flags & _WRITE_FLAGS:
            phys = self._read(path, dir_fd)
        else:
            p = self._abs(path, dir_fd)
            phys = path if p is None else self._writable(
                p, path, create=bool(flags & os.O_CREAT),
                excl=bool(flags & os.O_CREAT and flags & os.O_EXCL),
                keep=not flags & os.O_TRUNC)
        try:
            return orig(phys, flags, mode, dir_fd=dir_fd)
        except OSError as err:
            raise _renamed(err, phys, path) from None

    def _os_mkdir(self, path: Any, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        p = self._abs(path, dir_fd) if self.active else None
        if p is None:
            return self._o.mkdir(path, mode, dir_fd=dir_fd)
        self._mkdir(p, path, mode)

    def _os_rename(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(orig)
        def wrapper(src: Any, dst: Any, *, src_dir_fd: int | None = None,
                    dst_dir_fd: int | None = None) -> None:
            s = self._abs(src, src_dir_fd) if self.active else None
            d = self._abs(dst, dst_dir_fd) if self.active else None
            if s is None and d is None:
                return orig(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
            if s is None and src_dir_fd is not None:
                raise _oserror(errno.EXDEV, src)
            self._rename(s, d, src, dst)
        return wrapper

    def _os_link(self, src: Any, dst: Any, *, src_dir_fd: int | None = None,
                 dst_dir_fd: int | None = None, follow_symlinks: bool = True) -> None:
        d = self._abs(dst, dst_dir_fd) if self.active else None
        if d is None:
            return self._o.link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd,
                                follow_symlinks=follow_symlinks)
        s = self._abs(src, src_dir_fd)
        sphys = os.fsdecode(src) if s is None else self._phys(s)
        if not self._lexists(sphys):
            raise _oserror(errno.ENOENT, src)
        self._copy_file(sphys, self._writable(d, dst, excl=True))  # a copy, never a real inode

    def _os_symlink(self, src: Any, dst: Any, target_is_directory: bool = False, *,
                    dir_fd: int | None = None) -> None:
        d = self._abs(dst, dir_fd) if self.active else None
        if d is None:
            return self._o.symlink(src, dst, target_is_directory, dir_fd=dir_fd)
        self._o.symlink(src, self._writable(d, dst, excl=True))
        self._has_links = True

    def _os_listdir(self, path: Any = None) -> list[Any]:
        if path is None:
            path = "."
        p = self._abs(path) if self.active else None
        if p is None or (p not in self._dirs and not self._under(p, self._marks)):
            return self._o.listdir(path)
        names = self._listdir(p, path)
        return [os.fsencode(n) for n in names] if isinstance(path, bytes) else names

    def _os_scandir(self, path: Any = None) -> Any:
        if path is None:
            path = "."
        p = self._abs(path) if self.active else None
        if p is None or (p not in self._dirs and not self._under(p, self._marks)):
            return self._o.scandir(path)
        base = _fspath(path)
        entries = [_Entry(_as_type(base, n), os.path.join(base, _as_type(base, n)),
                          self._phys(_join(p, n)), self._o) for n in self._listdir(p, path)]
        return _Listing(entries)

    def _os_chdir(self, path: Any) -> None:
        p = self._abs(path) if self.active else None
        if p is None:
            return self._o.chdir(path)
        phys = p
        if self._under(p, self._marks) and (self._under(p, self._gone) or not self._isdir(p)):
            phys = self.layer + p  # a folder only the sandbox has: enter its upper copy
        try:
            self._o.chdir(phys)
        except OSError as err:
            raise _renamed(err, phys, path) from None

    def _os_getcwd(self) -> str:
        return self._view(self._o.getcwd())

    def _os_getcwdb(self) -> bytes:
        return os.fsencode(self._os_getcwd())

    def _os_system(self, command: Any) -> int:
        self._note_process(command)
        return self._o.system(command)

    def _rmtree_function(self) -> Callable[..., None]:
        orig = self._o.rmtree

        @functools.wraps(orig)
        def rmtree(path: Any, ignore_errors: bool = False, onerror: Any = None,
                   **kwargs: Any) -> None:
            p = self._abs(path, kwargs.get("dir_fd")) if self.active else None
            if p is None:
                return orig(path, ignore_errors, onerror, **kwargs)
            try:
                self._rmtree(p, path)
            except OSError as err:
                if ignore_errors:
                    return
                if kwargs.get("onexc") is not None:
                    return kwargs["onexc"](os.rmdir, path, err)
                if onerror is not None:
                    return onerror(os.rmdir, path, (type(err), err, err.__traceback__))
                raise

        rmtree.avoids_symlink_attacks = orig.avoids_symlink_attacks  # type: ignore[attr-defined]
        return rmtree

    def _note_process(self, command: Any) -> None:
        """Remember a process started from the script's own code."""
        if not self.active:
            return
        skip = (__file__, os.__file__, getattr(sys.modules.get("subprocess"), "__file__", ""))
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename in skip:
            frame = frame.f_back
        if frame is None or frame.f_code.co_filename.startswith(_library_dirs()):
            return
        if isinstance(command, (list, tuple)):
            import shlex

            command = shlex.join(str(_fspath(c)) for c in command)
        self._processes.append(str(_fspath(command)))

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
        return cls(None, None, f"{_fspath(path)}; {err.strerror or err}")

    def _tf_read(self, orig: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(path: Any, *args: Any) -> Any:
            if not self._marks or not self.active:
                return orig(path, *args)
            p = self._tf_path(path)
            if p is None:
                return orig(path, *args)
            phys = self._phys(p)
            return orig(path if phys is p else _as_type(path, phys), *args)
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
            return orig(_as_type(path, phys), arg)
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
            "DeleteRecursively": _delete_tree}
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
            return value if folder is None else _join(folder, posixpath.basename(text))
        p = self._abs(text)
        if p is not None and self._phys(p + ".index") != p + ".index":
            return self.layer + p
        return value

    def _patch_io_ops(self, module: ModuleType) -> None:
        """Checkpoint ops, in ``gen_io_ops`` and where ``io_ops`` re-exports them."""
        def wrap(orig: Callable[..., Any], *roles: str) -> Callable[..., Any]:
            names = _param_names(orig)

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
            return orig(path if phys is p else _as_type(path, phys), *args)
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
                    prefix = _as_type(prefix, _join(folder, posixpath.basename(text)))
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
        for name in _READ_FUNCS:
            table[name] = self._wrap_read(getattr(o, name, None)) if hasattr(o, name) else None
        for name in _MODIFY_FUNCS:
            table[name] = (self._wrap_change(getattr(o, name), create=False, keep=True, dir_ok=True)
                           if hasattr(o, name) else None)
        for name in _CREATE_FUNCS:
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
