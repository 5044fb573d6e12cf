"""The write sandbox: a script's writes reach only the scratch folder, and it sees them.

Each test runs a script in a fresh Python process with the sandbox active, in
a folder of "user's files"; the folder (every path, empty folders included,
each file's bytes, mode and mtime) must be exactly as before, the home folder
and the system temp folder empty, while the script's own asserts check what
it saw.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent

PROLOGUE = """
import json, os, sys
from shapecheck.script import sandbox
sb = sandbox.activate()
"""
EPILOGUE = """
changes = [[c.path, c.kind] for c in sb.changes()]
root = sb.root
sb.write_real(sys.argv[1], json.dumps({"changes": changes, "problems": sb.problems}))
sb.close()
assert not os.path.exists(root), root
"""


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` with its type, bytes, mode and mtime."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            key = str(path.relative_to(folder))
            if path.is_symlink():
                out[key] = ("link", os.readlink(path))
            elif path.is_dir():
                out[key] = ("dir", info.st_mode, info.st_mtime_ns)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                out[key] = ("file", digest, info.st_mode, info.st_mtime_ns)
    return out


@pytest.fixture
def user(tmp_path: Path) -> Path:
    """A folder of the user's files: last week's predictions, data, a tree, an empty folder."""
    folder = tmp_path / "project"
    (folder / "data" / "images").mkdir(parents=True)
    (folder / "empty").mkdir()
    np.save(folder / "preds.npy", np.arange(6.0))
    (folder / "data.csv").write_text("a,b\n1,2\n")
    (folder / "data" / "x.txt").write_text("old x\n")
    (folder / "data" / "images" / "0.png").write_bytes(b"\x89PNG fake")
    (folder / "link.txt").symlink_to("data.csv")
    (tmp_path / "home").mkdir()
    (tmp_path / "systmp").mkdir()
    return folder


def run(user: Path, body: str, timeout: float = 120) -> list[list[str]]:
    """Run ``body`` sandboxed in ``user``; check nothing changed; the script's changes()."""
    base = user.parent
    before = snapshot(user), snapshot(base / "home"), (base / "home").stat().st_mtime_ns
    script = base / "script.py"
    script.write_text(PROLOGUE + textwrap.dedent(body) + EPILOGUE)
    result = base / "result.json"
    env = dict(os.environ, HOME=str(base / "home"), TMPDIR=str(base / "systmp"),
               MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT),
               PYTHONDONTWRITEBYTECODE="")
    env.pop("KERAS_HOME", None)
    env.pop("MPLCONFIGDIR", None)
    proc = subprocess.run([sys.executable, str(script), str(result)], cwd=user, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(result.read_text())
    result.unlink()
    script.unlink()
    assert (snapshot(user), snapshot(base / "home"), (base / "home").stat().st_mtime_ns) == before
    assert not list((base / "home").iterdir())
    assert not list((base / "systmp").iterdir())
    assert data["problems"] == []
    return data["changes"]


def test_open_modes_see_their_writes_and_leave_the_files(user):
    changes = run(user, """
        with open("data.csv", "a") as f:
            f.write("3,4\\n")
        assert open("data.csv").read() == "a,b\\n1,2\\n3,4\\n"
        with open("data/x.txt", "r+") as f:
            f.write("NEW")
        assert open("data/x.txt").read() == "NEW x\\n"
        with open("out.txt", "w") as f:
            assert f.name == "out.txt"
            f.write("hello")
        assert open("out.txt").read() == "hello" and os.path.getsize("out.txt") == 5
        try:
            open("data.csv", "x")
        except FileExistsError as err:
            assert err.filename == "data.csv"
        else:
            raise AssertionError("x on an existing file")
        with open("fresh.txt", "x") as f:
            f.write("x")
        try:
            open("missing.txt", "r+")
        except FileNotFoundError as err:
            assert err.filename == "missing.txt", err
        else:
            raise AssertionError("r+ on a missing file")
        try:
            open("empty", "w")
        except IsADirectoryError:
            pass
        else:
            raise AssertionError("w on a folder")
        fd = os.open("data.csv", os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"5,6\\n")
        os.close(fd)
        assert open("data.csv").read().endswith("3,4\\n5,6\\n")
        fd = os.open("via_fd.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, b"\\x00\\x01")
        os.close(fd)
        assert open("via_fd.bin", "rb").read() == b"\\x00\\x01"
        folder = os.open("data", os.O_RDONLY)
        os.close(os.open("in_data.txt", os.O_WRONLY | os.O_CREAT, dir_fd=folder))
        os.close(folder)
        assert "in_data.txt" in os.listdir("data")
        with open(b"bytes.txt", "wb") as f:
            f.write(b"b")
        assert os.path.exists(b"bytes.txt") and b"bytes.txt" in os.listdir(b".")
        with open("link.txt", "a") as f:  # through the user's symlink
            f.write("7,8\\n")
        assert open("link.txt").read().endswith("7,8\\n")
        assert open("data.csv").read().endswith("5,6\\n")  # the link's target is untouched
        assert open(os.path.abspath("data/images/0.png"), "rb").read() == b"\\x89PNG fake"
    """)
    assert sorted(changes) == sorted([
        ["bytes.txt", "written"], ["data.csv", "written"], ["data/in_data.txt", "written"],
        ["data/x.txt", "written"],
        ["fresh.txt", "written"], ["link.txt", "written"], ["out.txt", "written"],
        ["via_fd.bin", "written"]])


def test_numpy_save_over_last_weeks_predictions(user):
    changes = run(user, """
        import numpy as np
        assert np.load("preds.npy").tolist() == [0, 1, 2, 3, 4, 5]
        np.save("preds.npy", np.zeros((2, 3)))
        assert np.load("preds.npy").shape == (2, 3)
        np.savez("bundle.npz", a=np.ones(2))
        assert np.load("bundle.npz")["a"].tolist() == [1, 1]
        np.ones(3).tofile("raw.bin")
        assert np.fromfile("raw.bin").tolist() == [1, 1, 1]
    """)
    assert changes == [["bundle.npz", "written"], ["preds.npy", "written"],
                       ["raw.bin", "written"]]


def test_pathlib_writes_renames_and_listings(user):
    changes = run(user, """
        from pathlib import Path
        Path("notes.txt").write_text("n")
        Path("out/deep").mkdir(parents=True)
        Path("out/deep/a.txt").write_bytes(b"a")
        Path("data.csv").touch()
        Path("data/x.txt").unlink()
        assert not Path("data/x.txt").exists()
        Path("preds.npy").rename("preds_old.npy")
        assert not Path("preds.npy").exists() and Path("preds_old.npy").stat().st_size > 0
        assert sorted(p.name for p in Path(".").iterdir()) == [
            "data", "data.csv", "empty", "link.txt", "notes.txt", "out", "preds_old.npy"]
        assert sorted(str(p) for p in Path(".").glob("**/*.txt")) == [
            "link.txt", "notes.txt", "out/deep/a.txt"]
        assert [p.name for p in Path("data").iterdir()] == ["images"]
        Path("out/deep/a.txt").unlink()
        Path("out/deep").rmdir()
        assert sorted(os.listdir("out")) == []
        assert Path("empty").is_dir() and not list(Path("empty").iterdir())
        Path("empty").rmdir()
        assert not Path("empty").exists()
        try:
            Path("data").rmdir()
        except OSError as err:
            assert err.filename == "data"
        else:
            raise AssertionError("rmdir of a folder with files")
    """)
    assert changes == [
        ["data.csv", "written"], ["data/x.txt", "deleted"], ["empty", "deleted"],
        ["notes.txt", "written"], ["out", "created-dir"], ["preds.npy", "deleted"],
        ["preds_old.npy", "written"]]


def test_os_remove_rmtree_and_recreate(user):
    changes = run(user, """
        import glob, shutil
        os.remove("preds.npy")
        assert not os.path.exists("preds.npy") and "preds.npy" not in os.listdir(".")
        try:
            os.remove("preds.npy")
        except FileNotFoundError:
            pass
        else:
            raise AssertionError("removed twice")
        shutil.rmtree("data")
        assert not os.path.isdir("data") and glob.glob("data/*") == []
        assert glob.glob("**/*.png", recursive=True) == []
        os.makedirs("data/images")
        assert os.listdir("data/images") == []  # the old tree stays hidden
        with open("data/images/1.png", "wb") as f:
            f.write(b"new")
        assert [e.name for e in os.scandir("data/images")] == ["1.png"]
        _, dirs, files = next(os.walk("."))
        assert (sorted(dirs), sorted(files)) == (["data", "empty"], ["data.csv", "link.txt"])
        shutil.rmtree("nothing_here", ignore_errors=True)
        os.unlink("link.txt")
        assert not os.path.lexists("link.txt") and os.path.exists("data.csv")
    """)
    assert changes == [
        ["data", "deleted"], ["data", "created-dir"], ["data/images", "created-dir"],
        ["data/images/1.png", "written"], ["link.txt", "deleted"], ["preds.npy", "deleted"]]


def test_makedirs_chdir_and_getcwd(user):
    changes = run(user, """
        start = os.getcwd()
        os.makedirs("runs/1")
        os.chdir("runs/1")
        assert os.getcwd() == os.path.join(start, "runs", "1")
        with open("log.txt", "w") as f:
            f.write("in run 1")
        assert os.listdir(".") == ["log.txt"] and os.path.isfile(os.path.abspath("log.txt"))
        os.chdir("..")
        assert os.listdir(".") == ["1"]
        os.chdir(start)
        assert open("runs/1/log.txt").read() == "in run 1"
        os.chdir("data")  # a real folder: entered for real
        with open("y.txt", "w") as f:
            f.write("y")
        os.chdir(start)
        assert sorted(os.listdir("data")) == ["images", "x.txt", "y.txt"]
        os.chdir("runs/1")  # left inside the sandbox: close() steps out
    """)
    assert changes == [["data/y.txt", "written"], ["runs", "created-dir"],
                       ["runs/1", "created-dir"], ["runs/1/log.txt", "written"]]


def test_shutil_metadata_links_and_temp_files(user):
    changes = run(user, """
        import shutil, stat, tempfile, time
        shutil.copy("data.csv", "copy.csv")
        shutil.copytree("data", "data2")
        assert open("data2/images/0.png", "rb").read() == b"\\x89PNG fake"
        shutil.move("data/x.txt", "moved.txt")
        assert not os.path.exists("data/x.txt") and open("moved.txt").read() == "old x\\n"
        os.chmod("data.csv", 0o600)
        assert stat.S_IMODE(os.stat("data.csv").st_mode) == 0o600
        os.utime("preds.npy", (1, 1))
        assert os.path.getmtime("preds.npy") == 1
        os.symlink(os.path.abspath("data.csv"), "abs_link.csv")
        with open("abs_link.csv", "w") as f:  # a sandboxed link to a real file
            f.write("through the link")
        assert open("data.csv").read() == "through the link"
        os.link("moved.txt", "hard.txt")
        with open("hard.txt", "a") as f:
            f.write("more")
        os.rename("empty", "renamed_empty")
        tmp = tempfile.mkdtemp()
        assert tmp.startswith(sb.root), tmp
        with tempfile.NamedTemporaryFile("w", dir=".", delete=False) as f:
            f.write("t")
        os.replace(f.name, "from_temp.txt")
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "t"), "w").close()
        import subprocess
        subprocess.run(["true"], check=True)
        os.system("true")
    """)
    assert changes == [
        ["abs_link.csv", "written"], ["copy.csv", "written"], ["data.csv", "written"],
        ["data/x.txt", "deleted"], ["data2", "created-dir"], ["data2/images", "created-dir"],
        ["data2/images/0.png", "written"], ["data2/x.txt", "written"], ["empty", "deleted"],
        ["from_temp.txt", "written"], ["hard.txt", "written"], ["moved.txt", "written"],
        ["preds.npy", "written"], ["renamed_empty", "created-dir"],
        ["true", "process"], ["true", "process"]]


def test_close_restores_the_original_functions(tmp_path):
    code = """
    import builtins, io, os, shutil, sys, tempfile
    from shapecheck.script import sandbox
    originals = (os.stat, os.open, os.listdir, builtins.open, shutil.rmtree, tempfile.tempdir)
    sb = sandbox.activate()
    held_stat, held_open = os.stat, open
    assert held_open is io.open and sys.dont_write_bytecode
    open("kept.txt", "w").close()
    assert sandbox.active() is sb and held_stat("kept.txt")
    try:
        sandbox.activate()
    except RuntimeError:
        pass
    else:
        raise AssertionError("two sandboxes at once")
    sb.close()
    assert (os.stat, os.open, os.listdir, builtins.open, shutil.rmtree,
            tempfile.tempdir) == originals
    assert sandbox.active() is None and not os.path.exists(sb.root)
    assert not os.path.exists("kept.txt")
    with held_open("real.txt", "w") as f:  # a patched function kept after close passes through
        f.write("real")
    assert held_stat("real.txt").st_size == 4
    assert [c.path for c in sb.changes()] == ["kept.txt"]
    again = sandbox.activate()  # one script after another in the same process
    os.remove("real.txt")
    assert not os.path.exists("real.txt") and held_stat is not os.stat
    again.close()
    assert os.path.exists("real.txt")
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp_path)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.txt"]


def test_describe_renders_each_kind():
    from shapecheck.script.sandbox import Change

    assert Change("m.keras", "/p/m.keras", "written").describe() == "wrote m.keras"
    assert Change("logs", "/p/logs", "created-dir").describe() == "created folder logs"
    assert Change("old.npy", "/p/old.npy", "deleted").describe() == "deleted old.npy"
    assert "not sandboxed: ls -l" in Change("ls -l", "", "process").describe()


def test_keras_saving_callbacks_tensorboard_and_plots(user):
    changes = run(user, """
        import numpy as np, keras, tensorflow as tf
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile("adam", "mse")
        x, y = np.ones((8, 3), "float32"), np.ones((8, 2), "float32")
        callbacks = [keras.callbacks.CSVLogger("log.csv"),
                     keras.callbacks.ModelCheckpoint("ckpt/best.keras"),
                     keras.callbacks.BackupAndRestore("backup", delete_checkpoint=False)]
        model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=callbacks)
        assert open("log.csv").read().startswith("epoch,loss")
        assert os.listdir("ckpt") == ["best.keras"]
        assert sorted(os.listdir("backup")) == ["latest.weights.h5", "training_metadata.json"]
        model.save("m.keras")
        assert keras.models.load_model("m.keras").count_params() == 8
        model.save_weights("w.weights.h5")
        other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        other.load_weights("w.weights.h5")
        assert np.allclose(other.predict(x, verbose=0), model.predict(x, verbose=0))
        model.save("legacy.h5")
        assert keras.models.load_model("legacy.h5", compile=False).count_params() == 8
        board = keras.callbacks.TensorBoard("tb")
        board.set_model(model)
        board.on_train_begin()
        board.on_train_end()
        writer = tf.summary.create_file_writer("tb/extra")
        with writer.as_default():
            tf.summary.write("loss", 1.0, step=0)
        writer.flush()
        assert len(tf.io.gfile.listdir("tb/extra")) == 1 and os.listdir("tb/train")
        with tf.io.gfile.GFile("g.txt", "w") as f:
            f.write("gfile")
        assert open("g.txt").read() == "gfile" and tf.io.gfile.exists("g.txt")
        tf.io.gfile.remove("data.csv")
        assert not tf.io.gfile.exists("data.csv") and not os.path.exists("data.csv")
        assert tf.io.gfile.glob("preds*") == ["preds.npy"]
        tf.io.gfile.rmtree("data")
        assert not os.path.exists("data")
        v = tf.Variable(1.0)
        checkpoint = tf.train.Checkpoint(v=v)
        checkpoint.write("tfck/x")
        v.assign(5.0)
        checkpoint.read("tfck/x")
        assert float(v) == 1.0 and sorted(os.listdir("tfck")) == [
            "x.data-00000-of-00001", "x.index"]
        model.export("exported")
        served = tf.saved_model.load("exported")
        assert served.serve(x).shape == (8, 2)
        np.save("preds.npy", model.predict(x, verbose=0))
        assert np.load("preds.npy").shape == (8, 2)
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3])
        os.makedirs("plots")
        plt.savefig("plots/curve.png")
        assert open("plots/curve.png", "rb").read(4) == b"\\x89PNG"
    """, timeout=300)
    kinds = {path: kind for path, kind in changes}
    for path in ("log.csv", "ckpt/best.keras", "backup/latest.weights.h5", "m.keras",
                 "w.weights.h5", "legacy.h5", "g.txt", "preds.npy", "plots/curve.png",
                 "tfck/x.index", "exported/saved_model.pb", "exported/variables/variables.index"):
        assert kinds.get(path) == "written", (path, changes)
    assert kinds["data.csv"] == kinds["data"] == "deleted"
    assert kinds["tb"] == kinds["tb/train"] == kinds["tb/extra"] == "created-dir"
    assert any(p.startswith("tb/train/events.out.tfevents") for p in kinds)
    assert any(p.startswith("tb/extra/events.out.tfevents") for p in kinds)
