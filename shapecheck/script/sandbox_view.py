"""The write sandbox's view of the files: each path mapped onto the scratch layer over the
real files, and the operations that write, hide and list through it
(:mod:`shapecheck.script.sandbox` says the whole design).
"""

from __future__ import annotations

import builtins
import errno
import os
import posixpath
import shutil
import stat as st
from typing import Any


READ_FUNCS = ("stat", "lstat", "access", "readlink", "getxattr", "listxattr", "statvfs")
MODIFY_FUNCS = ("chmod", "lchmod", "chown", "lchown", "utime", "truncate",
                "setxattr", "removexattr")
CREATE_FUNCS = ("mkfifo", "mknod")
_OS_FUNCS = READ_FUNCS + MODIFY_FUNCS + CREATE_FUNCS + (
    "open", "mkdir", "remove", "unlink", "rmdir", "rename", "replace", "link", "symlink",
    "listdir", "scandir", "chdir", "getcwd", "getcwdb", "makedirs", "system")


def oserror(code: int, name: Any) -> OSError:
    """The OSError subclass the OS raises for ``code`` about ``name``."""
    return OSError(code, os.strerror(code), fspath(name))


def fspath(path: Any) -> Any:
    try:
        return os.fspath(path)
    except TypeError:
        return path


def join(d: str, name: str) -> str:
    return d + name if d.endswith("/") else d + "/" + name


def renamed(err: OSError, phys: Any, user: Any) -> OSError:
    """``err`` naming the script's path instead of the scratch one."""
    if err.filename is not None and fspath(err.filename) == fspath(phys):
        err.filename = fspath(user)
    return err


def as_type(like: Any, path: str) -> Any:
    return os.fsencode(path) if isinstance(like, bytes) else path


def delete_tree(path: str) -> None:
    """``tf.io.gfile.rmtree``: a folder's tree or a file."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def no_overwrite(dst: str, overwrite: bool) -> None:
    if not overwrite and os.path.lexists(dst):
        raise oserror(errno.EEXIST, dst)


class Originals:
    """The functions as they were before activation."""

    def __init__(self) -> None:
        for name in _OS_FUNCS:
            if hasattr(os, name):
                setattr(self, name, getattr(os, name))
        self.open_ = builtins.open
        self.rmtree = shutil.rmtree


class Entry:
    """A merged listing's entry, duck-typed as ``os.DirEntry``."""

    __slots__ = ("name", "path", "_phys", "_o", "_lst")

    def __init__(self, name: Any, path: Any, phys: str, o: Originals) -> None:
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


class Listing:
    """What ``os.scandir`` returns for a merged folder."""

    def __init__(self, entries: list[Entry]) -> None:
        self._it = iter(entries)

    def __iter__(self) -> "Listing":
        return self

    def __next__(self) -> Entry:
        return next(self._it)

    def __enter__(self) -> "Listing":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._it = iter(())


class SandboxView:
    """The sandbox's view of the files: each path mapped onto the scratch layer over the
    real files, and the operations that write, hide and list through it."""

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
        return path if phys is p else as_type(path, phys)

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
            text = os.fsdecode(fspath(name))
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
                    raise oserror(errno.EEXIST, name)
                if self._view_isdir(p):
                    if not dir_ok:
                        raise oserror(errno.EISDIR, name)
                    self._ensure_dir(p)
                elif kind == "lower" and keep:
                    self._ensure_dir(posixpath.dirname(p))
                    self._copy_file(p, self.layer + p)
            elif not create:
                raise oserror(errno.ENOENT, name)
            elif not self._view_isdir(posixpath.dirname(p)):
                raise oserror(errno.ENOENT, name)
            self._ensure_dir(posixpath.dirname(p))
            self._mark(p, name)
            up = self.layer + p
        if self._has_links:
            real = os.path.realpath(up)
            if not real.startswith(self.root + "/"):  # an upper symlink points outside
                if depth > 8:
                    raise oserror(errno.ELOOP, name)
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
            raise oserror(errno.ENOENT, name)
        if not self._isdir(self.layer + p if kind == "upper" else p):
            raise oserror(errno.ENOTDIR, name)
        up = self.layer + p
        names: list[str] = list(self._o.listdir(up)) if self._isdir(up) else []
        if not self._under(p, self._gone) and self._isdir(p):
            seen = set(names)
            gone = self._gone
            names += [n for n in self._o.listdir(p) if n not in seen and join(p, n) not in gone]
        return names

    def _mkdir(self, p: str, name: Any, mode: int) -> None:
        with self._lock:
            if self._kind(p) is not None:
                raise oserror(errno.EEXIST, name)
            parent = posixpath.dirname(p)
            if not self._view_isdir(parent):
                raise oserror(errno.ENOENT, name)
            self._ensure_dir(parent)
            self._o.mkdir(self.layer + p, mode)
            self._mark(p, name)

    def _lmode(self, p: str, kind: str) -> int:
        return self._o.lstat(self.layer + p if kind == "upper" else p).st_mode

    def _unlink(self, p: str, name: Any) -> None:
        with self._lock:
            kind = self._kind(p)
            if kind is None:
                raise oserror(errno.ENOENT, name)
            if st.S_ISDIR(self._lmode(p, kind)):
                raise oserror(errno.EISDIR, name)
            if self._lexists(self.layer + p):
                self._o.unlink(self.layer + p)
            self._hide(p, name)

    def _rmdir(self, p: str, name: Any) -> None:
        with self._lock:
            kind = self._kind(p)
            if kind is None:
                raise oserror(errno.ENOENT, name)
            if not st.S_ISDIR(self._lmode(p, kind)):
                raise oserror(errno.ENOTDIR, name)
            if self._listdir(p, name):
                raise oserror(errno.ENOTEMPTY, name)
            if self._lexists(self.layer + p):
                self._o.rmdir(self.layer + p)
            self._hide(p, name)

    def _rmtree(self, p: str, name: Any) -> None:
        with self._lock:
            kind = self._kind(p)
            if kind is None:
                raise oserror(errno.ENOENT, name)
            mode = self._lmode(p, kind)
            if st.S_ISLNK(mode):
                raise OSError("Cannot call rmtree on a symbolic link")
            if not st.S_ISDIR(mode):
                raise oserror(errno.ENOTDIR, name)
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
                raise oserror(errno.ENOENT, src)
            s_dir = st.S_ISDIR(self._o.lstat(sphys).st_mode)
            if s is not None and s == d:
                return
            if s is not None and d is not None and s_dir and d.startswith(s + "/"):
                raise oserror(errno.EINVAL, src)
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
                raise oserror(errno.EISDIR, dst)
            if s_dir and not d_dir:
                raise oserror(errno.ENOTDIR, dst)
            if d_dir:
                self._rmdir(d, dst)
        elif not self._view_isdir(posixpath.dirname(d)):
            raise oserror(errno.ENOENT, dst)
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
