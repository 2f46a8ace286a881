"""Output folders that are complete or absent: written in a temporary sibling, swapped in at the end.

A run folder (or a report folder) is built in ``.<name>.partial-XXXX`` beside its target and
renamed onto the target only when everything in it has been written. A failed or interrupted
run removes its temporary folder, so no folder that looks complete is left behind, and a
re-run never mixes its files with those of an earlier run.

**Whose folder it is.** Every folder dvbstats builds carries the file :data:`MARK` (``.dvbstats``:
JSON naming dvbstats, the folder's ``marker`` file, a random id, the host and process that wrote
it). An existing target is replaced only when it is empty or verifiably dvbstats' own: its mark
names the same marker file, which is present (folders written before the mark existed are
recognised by their marker's content: a manifest recording dvbstats' version, a report source with
dvbstats' header). Any other non-empty folder is refused unless the caller passes ``overwrite``.
A temporary sibling left behind by a killed process (``kill -9``: no clean-up ran) is removed by
the next write of the same target once its mark shows it was dvbstats' and its process is gone on
this host; :func:`replacing` says so with a :class:`LeftoverWarning`.

Names: :func:`folder_name` checks a name the user or a manifest gave for one folder (no path
separators, no ``..``, not hidden), :func:`as_folder_name` makes one from a name derived from
input files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The file that marks a folder dvbstats wrote (and each of its temporary siblings).
MARK = ".dvbstats"
#: Longest folder name in bytes (UTF-8): file systems allow 255, and the temporary siblings add 19.
MAX_NAME = 200
#: What a folder name may not hold: path separators and control characters (NUL, line breaks, ...).
_NOT_IN_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")
#: What a dvbstats of before :data:`MARK` wrote into a folder's marker file (run manifest, report source).
_LEGACY = {"manifest.json": re.compile(r'"versions":\s*\{[^{}]*"dvbstats":'),
           "report.qmd": re.compile(r'\A---\n(?:[^\n]*\n)*?subtitle: "dvbstats report"\n')}


class OutputFolderError(ValueError):
    """The output folder cannot be used: it is a file, below a file, not writable, or someone else's."""


class LeftoverWarning(UserWarning):
    """A temporary folder an interrupted dvbstats process left beside its target was removed."""


def folder_name(name: str, *, what: str = "--name") -> str:
    """``name`` when it is one usable folder name; else :class:`OutputFolderError` naming ``what``.

    A name must not be empty, hold a path separator or a control character, be or start with
    ``.`` (``..``, hidden folders, dvbstats' own temporary siblings), or pass :data:`MAX_NAME` bytes:
    then it can only name a folder inside the one it is joined to.
    """
    text = str(name)
    problem = ("is empty" if not text.strip() else
               "holds a path separator or a control character" if _NOT_IN_NAME.search(text) else
               "starts with '.'" if text.startswith(".") else
               f"is longer than {MAX_NAME} bytes" if len(text.encode("utf-8", "surrogatepass")) > MAX_NAME else
               "starts or ends with a space" if text != text.strip() else None)
    if problem:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise OutputFolderError(f"{what} {shown!r} {problem}; give one folder name (letters, digits, '-', '_', ...)")
    return text


def as_folder_name(text: str, default: str = "run") -> str:
    """One usable folder name made from ``text`` (a name derived from input files): separators and
    control characters become ``_``, leading dots and spaces go, the length is cut to :data:`MAX_NAME` bytes."""
    name = _NOT_IN_NAME.sub("_", str(text)).strip().lstrip(".").strip()
    name = name.encode("utf-8", "surrogatepass")[:MAX_NAME].decode("utf-8", "ignore").strip()
    return name or default


def ours(target: Path, marker: str) -> bool:
    """Whether ``target`` is a folder dvbstats wrote with ``marker`` (see the module's docstring)."""
    if not (target / marker).is_file():
        return False
    mark = _read_mark(target)
    if mark is not None:
        return mark.get("marker") == marker
    legacy = _LEGACY.get(marker)
    try:
        return legacy is not None and bool(legacy.search((target / marker).read_text(encoding="utf-8")[:100_000]))
    except (OSError, UnicodeDecodeError):
        return False


def check(target: Path, *, marker: str, overwrite: bool, option: str = "--out") -> None:
    """Raise :class:`OutputFolderError` unless ``target`` can be written and replaced (before any work)."""
    for parent in [target, *target.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == target else f"is below {parent}, which is a file"
            raise OutputFolderError(f"{option} {target} {where}; give a folder")
    if target.is_dir() and any(target.iterdir()) and not overwrite and not ours(target, marker):
        found = "its " + marker + " was not written by dvbstats" if (target / marker).exists() else "no " + marker
        raise OutputFolderError(
            f"{option} {target} is a non-empty folder that dvbstats did not write ({found}); "
            f"choose another {option}, or pass --overwrite to replace it and everything in it")


@contextmanager
def replacing(target: Path, *, marker: str, overwrite: bool = False, option: str = "--out") -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; swap it in for ``target`` when the block ends.

    If the block raises (including ``KeyboardInterrupt``) the temporary folder is removed and
    ``target`` is left as it was. Leftovers of killed earlier writes of ``target`` are removed first.
    """
    check(target, marker=marker, overwrite=overwrite, option=option)
    parent = target.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(target)
        staging = _sibling(target, "partial", marker)
    except OSError as err:
        raise OutputFolderError(f"{option} {target}: cannot write there ({err.strerror or err})") from None
    try:
        yield staging
        swap(staging, target, marker)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def swap(staging: Path, target: Path, marker: str) -> None:
    """Put ``staging`` where ``target`` is: two renames, the old folder deleted only after the new is in place."""
    old = None
    if target.exists():
        old = _sibling(target, "old", marker)
        os.replace(target, old / "previous")
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:  # put the earlier folder back
            os.replace(old / "previous", target)
            shutil.rmtree(old)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_leftovers(target: Path) -> list[Path]:
    """Remove the temporary siblings of ``target`` that killed dvbstats processes left; return them.

    Only folders named ``.<name>.partial-XXXXXXXX`` or ``.<name>.old-XXXXXXXX`` whose mark says
    dvbstats wrote them on this host, from a process that no longer runs (a concurrent write of the
    same target keeps its folder). Each removal is reported as a :class:`LeftoverWarning`.
    """
    target = target.resolve()
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(partial|old)-[0-9a-f]{{8}}")
    removed = []
    for path in sorted(target.parent.iterdir()):
        if not (pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink()):
            continue
        mark = _read_mark(path)
        if mark is None or mark.get("host") != socket.gethostname() or _running(mark.get("pid")):
            continue
        shutil.rmtree(path)
        removed.append(path)
        warnings.warn(LeftoverWarning(f"removed {path}, a temporary folder an interrupted dvbstats run left "
                                      f"(process {mark.get('pid')} no longer runs)"), stacklevel=2)
    return removed


def _read_mark(folder: Path) -> dict | None:
    """The mark of ``folder`` when it is one dvbstats wrote, else None."""
    try:
        mark = json.loads((folder / MARK).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    ok = isinstance(mark, dict) and mark.get("written_by") == "dvbstats" and isinstance(mark.get("id"), str)
    return mark if ok else None


def _running(pid: object) -> bool:
    """Whether process ``pid`` exists (when unsure, say yes: its folder is then kept)."""
    if not isinstance(pid, int) or pid <= 0 or os.name == "nt":  # Windows' os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or cannot be asked
        return True
    return True


def _sibling(target: Path, kind: str, marker: str) -> Path:
    """A new folder ``.<name>.<kind>-<random>`` beside ``target`` (made with the user's umask), marked as ours."""
    path = target.resolve().parent / f".{target.resolve().name}.{kind}-{secrets.token_hex(4)}"
    path.mkdir()
    mark = {"written_by": "dvbstats", "marker": marker, "id": secrets.token_hex(16),
            "host": socket.gethostname(), "pid": os.getpid()}
    (path / MARK).write_text(json.dumps(mark) + "\n", encoding="utf-8")
    return path
