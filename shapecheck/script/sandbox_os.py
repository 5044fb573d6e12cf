"""The write sandbox's stand-ins for ``open`` and for the ``os``, ``shutil`` and
``subprocess`` functions that write, list or change the working directory.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from typing import Any, Callable

from shapecheck.script.sandbox_view import Entry, Listing, as_type, fspath, join, oserror, renamed


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


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


def param_names(func: Callable[..., Any]) -> list[str]:
    """The names of a function's positional parameters."""
    code = getattr(func, "__code__", None)
    return list(code.co_varnames[:code.co_argcount]) if code is not None else []


def _set_name(f: Any, name: Any) -> None:
    """Give an opened file the name the script used, not the scratch path."""
    raw = getattr(f, "buffer", f)
    raw = getattr(raw, "raw", raw)
    try:
        raw.name = fspath(name)
    except (AttributeError, TypeError):
        pass


@functools.lru_cache(maxsize=None)
def _library_dirs() -> tuple[str, ...]:
    """The standard library's and installed packages' folders."""
    import sysconfig

    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return tuple(os.path.join(d, "") for d in dirs if d)


class OsPatches:
    """The sandbox's stand-ins for ``open`` and the ``os``, ``shutil`` and ``subprocess``
    functions that write, list or change the working directory."""

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
                raise renamed(err, phys, path) from None
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
                raise renamed(err, phys, path) from None
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
            raise renamed(err, phys, file) from None
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
            raise renamed(err, phys, path) from None

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
                raise oserror(errno.EXDEV, src)
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
            raise oserror(errno.ENOENT, src)
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
        base = fspath(path)
        entries = [Entry(as_type(base, n), os.path.join(base, as_type(base, n)),
                         self._phys(join(p, n)), self._o) for n in self._listdir(p, path)]
        return Listing(entries)

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
            raise renamed(err, phys, path) from None

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

            command = shlex.join(str(fspath(c)) for c in command)
        self._processes.append(str(fspath(command)))
