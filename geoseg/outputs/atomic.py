"""Writing outputs safely: an input is never an output, outputs appear all or nothing,
nothing of the user's is replaced unless asked, and a dead run's leftovers are cleared.

Every file a run writes is first written under a hidden temporary name beside its final
name, ``.geoseg~HOST~PID~RANDOM.partSUFFIX`` (scratch folders ``.geoseg~HOST~PID~RANDOM``;
nothing of the user's file name but its suffix's letters, whatever characters it holds),
and published only once the whole run succeeded (``OutputSet``). Without ``overwrite``,
publishing never replaces a file, even one that appeared while the run was writing (a
second run writing the same path): the temporary file is hard-linked to the final name,
which fails if that name exists, then unlinked. Should a later output of the set fail to
publish, the ones already published by this set are removed again. The owner's host and
process id in the temporary names let the next run that writes to a folder remove what a
killed run (``kill -9``, a power cut) left there, and only that.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from geoseg.errors import InputError, OutputExistsError

_LEFTOVER = re.compile(r"\.geoseg~(?P<host>[^~]+)~(?P<pid>\d+)~")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def owner_tag() -> str:
    """``geoseg~HOST~PID~``: marks a temporary name as this process's (read at call time, so a
    forked or spawned worker gets its own)."""
    return f"geoseg~{_host()}~{os.getpid()}~"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders of dead geoseg runs of this host in ``folder``
    (their owner's pid is in the name); return what was removed. Live runs' files, other
    hosts' files (a shared file system) and everything else are left alone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    host = _host()
    for entry in entries:
        m = _LEFTOVER.search(entry.name)
        if not entry.name.startswith(".") or m is None or m["host"] != host or _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def scratch_dir(parent: str | os.PathLike) -> tempfile.TemporaryDirectory:
    """A hidden scratch folder in ``parent`` named after this process (removed on exit)."""
    return tempfile.TemporaryDirectory(prefix=f".{owner_tag()}", dir=parent)


def _local(path) -> bool:
    text = os.fspath(path)
    return "://" not in text and not text.startswith("/vsi")


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same resolved path, or (both existing) the same
    inode, which catches hard links, symbolic links and ``..`` detours."""
    if not (_local(a) and _local(b)):
        return os.fspath(a) == os.fspath(b)
    with contextlib.suppress(OSError):
        if os.path.samefile(a, b):
            return True
    return Path(a).resolve() == Path(b).resolve()


def _inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def refuse_inputs_as_outputs(outputs: Iterable[tuple[str, str | os.PathLike | None]],
                             inputs: Iterable[tuple[str, str | os.PathLike | None]]) -> None:
    """Raise ``InputError`` when an output names an input or another output, whatever
    ``--overwrite`` says. ``outputs``/``inputs``: ``(what, path)`` pairs, ``what`` the option
    or role named in the message (e.g. ``"--prob-out"``, ``"the scene"``); None paths are
    skipped."""
    outs = [(w, p) for w, p in outputs if p is not None]
    ins = [(w, p) for w, p in inputs if p is not None]
    for k, (what, path) in enumerate(outs):
        for role, other in ins:
            if same_file(path, other):
                raise InputError(f"{what} {path}: is {role}, an input of this run; an input is never"
                                 f" overwritten, choose another path for {what}")
        for what2, path2 in outs[k + 1:]:
            if same_file(path, path2):
                raise InputError(f"{what} and {what2} both name {path}; give each output its own path")


def refuse_inputs_in_folder(what: str, folder: str | os.PathLike,
                            inputs: Iterable[tuple[str, str | os.PathLike | None]]) -> None:
    """Raise ``InputError`` when an output folder (replaced whole by ``--overwrite``) is, or
    holds, one of the inputs."""
    for role, path in inputs:
        if path is not None and _local(path) and _inside(path, folder):
            raise InputError(f"{what} {folder}: holds {role} ({path}), an input of this run; write the run"
                             " to another folder")


MARKER = ".geoseg"  # in every folder geoseg made or emptied for its outputs: --overwrite may empty it again
# what geoseg writes into its folders (run folders, the demo's, synth's): a folder of these alone, from a geoseg
# before the marker, may be emptied too; anything else in it is the user's, and refused even with --overwrite
GEOSEG_NAMES = {"model.pt", "last.pt", "config.json", "metrics.csv", "curves.png", "preview.png", "distributed.json",
                "data", "run", "roofs.geojson", "roofs.qml", "roofs.preview.png", "prob.tif", "train", "scene.tif",
                "truth.gpkg", "ortho"}


def _foreign(out: Path) -> list[str]:
    """The entries of a folder geoseg would not have written there (none when it holds the marker)."""
    names = sorted(p.name for p in out.iterdir())
    if MARKER in names:
        return []
    return [n for n in names if n not in GEOSEG_NAMES and not n.startswith(".geoseg~")]


def fresh_folder(folder: str | os.PathLike, overwrite: bool, kind: str = "output folder", also: str = "",
                 empty_it: bool = True) -> Path:
    """A folder for a run's outputs: refused when it holds files, unless ``overwrite`` (then
    emptied, when ``empty_it``); made if missing. Even with ``overwrite``, a folder is emptied
    only when geoseg made it (its ``MARKER``) or it holds nothing but what geoseg writes
    (``GEOSEG_NAMES``): a folder of the user's files is refused, never emptied. ``also``:
    another way out, named in the message (", --resume"). Callers refuse folders holding
    their inputs first (``refuse_inputs_in_folder``)."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file; give a folder for the {kind}")
    if out.exists() and any(p.name != MARKER for p in out.iterdir()):
        if not overwrite:
            raise OutputExistsError(f"{out}: {kind} exists and is not empty; pass `overwrite`{also} or choose"
                                    " another folder")
        foreign = _foreign(out)
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise OutputExistsError(f"{out}: holds files geoseg did not write ({shown}); `overwrite` empties only"
                                    f" geoseg's own folders: choose a new or empty {kind}")
        if empty_it:
            shutil.rmtree(out)
    if empty_it:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("made by geoseg for its outputs; `--overwrite` may empty this folder\n")
    return out


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output unless ``overwrite``; refuse a missing or unwritable parent
    folder, or one that is a file. Clears dead runs' leftovers in the parent folder."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a folder; give a file name for this output")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p}: exists; pass `overwrite` to replace it or choose another path")
    parent = p.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{parent}: is a file, not a folder; choose an output path in a folder")
    if not parent.exists():
        raise InputError(f"{parent}: output folder does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{parent}: output folder is not writable; choose another folder or fix its permissions")
    remove_leftovers(parent)
    return p


def publish(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move a finished temporary file to its final name. Without ``overwrite`` this never
    replaces a file, even one that appeared during the run: ``OutputExistsError`` then, and
    ``tmp`` is left for the caller to remove."""
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # fails if ``final`` exists: the check and the publish are one step
    except FileExistsError:
        raise OutputExistsError(f"{final}: appeared while this run was writing it (another run?); it was left as"
                                " it is and this run's result discarded; pass `overwrite` or choose another path"
                                ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        # a file system without hard links: claim the name first (O_EXCL), then move onto the claim
        try:
            os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            raise OutputExistsError(f"{final}: appeared while this run was writing it (another run?); pass"
                                    " `overwrite` or choose another path") from None
        os.replace(tmp, final)
        return
    os.unlink(tmp)


def _safe_suffix(path: Path) -> str:
    """``path``'s suffix (which picks GDAL's driver) with only letters and digits kept: a
    temporary name holds nothing of the user's name that GDAL, SQLite or a shell reads as
    syntax (``?``, ``|``, ``%``, ``:``, a leading ``-``, a newline …)."""
    return "." + re.sub(r"[^A-Za-z0-9]", "", path.suffix[1:]) if path.suffix else ""


class OutputSet:
    """Temporary files for a run's outputs, published together when the run succeeded.

    ``with OutputSet(overwrite) as outs: tmp = outs.add(final) … outs.publish()``: every
    ``tmp`` is a hidden name beside its ``final`` (nothing is created there: writers such
    as GDAL make the file themselves). Leaving the block without ``publish()`` (an error,
    Ctrl-C) removes the temporary files and leaves the final names untouched.
    """

    def __init__(self, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._items: list[tuple[Path, Path]] = []
        self._published = False

    def add(self, final: str | os.PathLike) -> Path:
        final = check_output(final, self.overwrite)
        fd, tmp = tempfile.mkstemp(prefix=f".{owner_tag()}", suffix=f".part{_safe_suffix(final)}", dir=final.parent)
        os.close(fd)
        os.unlink(tmp)  # writers (GDAL) want to create the file themselves
        self._items.append((Path(tmp), final))
        return Path(tmp)

    def publish(self) -> None:
        """Publish every output; if one cannot be, remove those this call published and raise."""
        done: list[Path] = []
        try:
            for tmp, final in self._items:
                publish(tmp, final, self.overwrite)
                done.append(final)
        except BaseException:
            if not self.overwrite:  # what this set created; a replaced file cannot come back
                for final in done:
                    with contextlib.suppress(OSError):
                        os.unlink(final)
            raise
        finally:
            self._discard()
        self._published = True

    def _discard(self) -> None:
        for tmp, _ in self._items:
            with contextlib.suppress(OSError):
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._published:
            self._discard()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; publish it (``publish``) only on success.

    On any error (or Ctrl-C) the temporary file is removed, so no partial output is
    ever left under the final name, and an existing file is untouched.
    """
    with OutputSet(overwrite) as outs:
        tmp = outs.add(path)
        yield tmp
        outs.publish()
