"""Files under DATA_DIR are the owner's alone: messages, training data, uploads, adapters.

The bot and the command line set the umask to 077 when they start (``OWNER_ONLY_UMASK``), so
everything they and their libraries create, and the training processes they start (a child
inherits the umask), is 0600 in 0700 folders. Where our code creates private data it asks for
those modes itself too (``private_dir``, ``open_private``): the same holds for code run under
another umask (tests, a library user). ``tighten`` narrows what an older version left
group- or world-readable, once at start.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Any

OWNER_ONLY_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
OTHERS_BITS = 0o077
"""Permission bits of the group and of everyone else."""


def private_dir(path: Path) -> Path:
    """``path`` as a folder, creating it and its missing parents owner-only (0700)."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by someone else meanwhile
            folder.mkdir(mode=PRIVATE_DIR_MODE)
            os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode passes through the umask
    return Path(path)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only (0600) unless it exists (its mode then stays)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def open_private(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> IO[Any]:
    """``open(path, mode)`` for writing, the file created (or narrowed) to 0600 first."""
    if "b" in mode:
        encoding = None
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    descriptor = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
        return os.fdopen(descriptor, mode, encoding=encoding)
    except BaseException:
        os.close(descriptor)
        raise


def write_private_text(path: Path, text: str) -> None:
    """``path.write_text(text)`` as an owner-only file."""
    with open_private(path) as handle:
        handle.write(text)


def tighten(root: Path) -> int:
    """Take the group's and everyone's permissions off ``root`` and everything in it that this
    user owns; return how many files and folders changed. Links are not followed."""
    root = Path(root)
    if not root.exists():
        return 0
    changed = int(_tighten_one(root))
    for folder, folders, files in os.walk(root):
        for name in (*folders, *files):
            changed += _tighten_one(Path(folder, name))
    return changed


def _tighten_one(path: Path) -> bool:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
        return False
    mode = stat.S_IMODE(info.st_mode)
    if not mode & OTHERS_BITS:
        return False
    os.chmod(path, mode & ~OTHERS_BITS)
    return True
