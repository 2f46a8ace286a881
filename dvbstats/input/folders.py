"""Output folders that are complete or absent: written in a temporary sibling, swapped in at the end.

A run folder (or a report folder) is built in ``.<name>.partial-XXXX`` beside its target and
renamed onto the target only when everything in it has been written. A failed or interrupted
run removes its temporary folder, so no folder that looks complete is left behind, and a
re-run never mixes its files with those of an earlier run. An existing target is replaced
only when it was written by dvbstats (it holds the ``marker`` file) or is empty; any other
non-empty folder is refused unless the caller passes ``overwrite``.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputFolderError(ValueError):
    """The output folder cannot be used: it is a file, below a file, not writable, or someone else's."""


def check(target: Path, *, marker: str, overwrite: bool, option: str = "--out") -> None:
    """Raise :class:`OutputFolderError` unless ``target`` can be written and replaced (before any work)."""
    for parent in [target, *target.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == target else f"is below {parent}, which is a file"
            raise OutputFolderError(f"{option} {target} {where}; give a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file() and not overwrite:
        raise OutputFolderError(
            f"{option} {target} is a non-empty folder that dvbstats did not write (no {marker}); "
            f"choose another {option}, or pass --overwrite to replace it and everything in it")


@contextmanager
def replacing(target: Path, *, marker: str, overwrite: bool = False, option: str = "--out") -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``target``; swap it in for ``target`` when the block ends.

    If the block raises (including ``KeyboardInterrupt``) the temporary folder is removed and
    ``target`` is left as it was.
    """
    check(target, marker=marker, overwrite=overwrite, option=option)
    parent = target.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = _sibling(target, "partial")
    except OSError as err:
        raise OutputFolderError(f"{option} {target}: cannot write there ({err.strerror or err})") from None
    try:
        yield staging
        swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def swap(staging: Path, target: Path) -> None:
    """Put ``staging`` where ``target`` is: two renames, the old folder deleted only after the new is in place."""
    old = None
    if target.exists():
        old = _sibling(target, "old")
        os.replace(target, old / "previous")
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:  # put the earlier folder back
            os.replace(old / "previous", target)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _sibling(target: Path, kind: str) -> Path:
    """A new empty folder ``.<name>.<kind>-<random>`` beside ``target`` (made with the user's umask)."""
    path = target.resolve().parent / f".{target.resolve().name}.{kind}-{secrets.token_hex(4)}"
    path.mkdir()
    return path
