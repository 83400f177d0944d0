"""Temporary folders that say whether their writer still runs: the writer holds an advisory
lock (`flock`) on the folder itself while it writes into it.

The operating system releases the lock when the process ends, however it ends (kill -9
included), so a folder whose lock can be taken belongs to no running process and may be
removed; one whose lock is held is left alone. Nothing is written into the folder for this,
and nothing is keyed on process ids, which the system reuses.

A cleaner that takes the lock of a folder created a moment ago, before its writer locked
it, removes it; the writer notices (its lock is taken, or its folder is gone) and makes
another. Where locks are not available (a file system without them, a system without
fcntl), folders are made without one and no folder is ever removed.
"""

import contextlib
import os
import shutil
import tempfile

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None


def make_locked_folder(directory, prefix, suffix):
    """A new folder in `directory` (tempfile's name: prefix, 8 random characters, suffix),
    locked by this process: (its path, the descriptor that holds the lock, to be closed once
    the folder is gone or moved into place)."""
    while True:
        path = tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=directory)
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue  # a cleaner removed it before it was opened
        if _lock(descriptor) is not False and _still_named(descriptor, path):
            return path, descriptor
        os.close(descriptor)  # a cleaner holds it, or has removed it: it is the cleaner's


def remove_unowned_folders(directory, is_candidate):
    """Removes the folders of `directory` whose names satisfy `is_candidate` and whose lock no
    running process holds; returns their names, sorted."""
    if fcntl is None:
        return []
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if is_candidate(name) and _remove_if_unowned(path):
                removed.append(name)
    return sorted(removed)


def _remove_if_unowned(path):
    descriptor = _open_folder(path)
    if descriptor is None:
        return False
    try:
        if _lock(descriptor) is not True or not _still_named(descriptor, path):
            return False
        shutil.rmtree(path, ignore_errors=True)
        return not os.path.lexists(path)
    finally:
        os.close(descriptor)  # after the removal: a writer that opened it meanwhile finds it gone


def _open_folder(path):
    """A descriptor of the folder `path` (never through a symbolic link), or None where there
    is none to open (or it is not ours to open)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None


def _lock(descriptor):
    """True once locked; False if another process holds the lock; None where there are no
    locks to take."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None  # e.g. some network file systems
    return True


def _still_named(descriptor, path):
    """Whether `path` still names the folder that `descriptor` holds open."""
    try:
        named, opened = os.stat(path, follow_symlinks=False), os.fstat(descriptor)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)
