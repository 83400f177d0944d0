"""The exclusive right to write a model file, held by the run that trains it.

Two trainings on one model path would overwrite each other's saves and backups, and a run
started a moment after another would resume the other's file. A training run therefore
holds an advisory lock (`flock`) on a hidden file beside the model file, `.NAME.lock` (where
the model path is a symbolic link: beside the file it points to, named after it), from
before it reads the model until it ends, and removes the file at the end; the operating
system releases the lock when the process dies, however it dies (a file left by a killed run
is taken over by the next). The file holds the holder's process id and host for the error
line of a second run. Readers (perplexity, rescoring) take no lock: every save is a rename, so
they always see a whole file.

Once the lock is held, temporary files that a killed save of this model left behind
(`textio.remove_stale_temporaries`) are removed: no other writer can own them.
"""

import contextlib
import os
import socket

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import link_target, remove_stale_temporaries, write_error
from rwthlm_py.training.epoch_checkpoint import partial_path

try:
    import fcntl
except ImportError:  # not POSIX: no locking, as with a file system that has none
    fcntl = None


def lock_path(model_path):
    """`.NAME.lock` beside the model file; where the model path is a symbolic link, beside the
    file it points to, so that trainings through any name of one model meet the same lock."""
    directory, name = os.path.split(os.path.abspath(link_target(os.fspath(model_path))))
    return os.path.join(directory, f".{name}.lock")


@contextlib.contextmanager
def exclusive_model_lock(model_path, console=None):
    """Holds the model's lock while the body runs; an InputError naming the holder if another
    process holds it. Yields the names of the stale temporary files it removed."""
    path = lock_path(model_path)
    descriptor = _acquire(path, model_path)
    try:
        _record_holder(descriptor, path)
        removed = (remove_stale_temporaries(link_target(os.fspath(model_path)))
                   + remove_stale_temporaries(partial_path(model_path)))
        if removed and console is not None:
            console.note(f"removed {len(removed)} temporary file(s) left by an earlier run that was killed: "
                         + ", ".join(removed))
        yield removed
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still locked: a run that opened it meanwhile sees it gone and retries
        os.close(descriptor)


def _acquire(path, model_path):
    """A descriptor of the lock file, locked. The file may be unlinked by its previous holder
    between open and lock: then the lock is on a file nobody else will find, so try again."""
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise write_error(error, path) from None
        if fcntl is None or _lock(descriptor, model_path) and _still_there(descriptor, path):
            return descriptor
        os.close(descriptor)


def _lock(descriptor, model_path):
    """True once locked (or on a file system without locks, as rwthlm would go on)."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(descriptor)
        os.close(descriptor)
        raise InputError(f"another training run{holder} is writing this model; wait for it to end, "
                         "or train into another file", model_path) from None
    except OSError:
        pass  # some network mounts have no locks
    return True


def _still_there(descriptor, path):
    try:
        named, opened = os.stat(path), os.fstat(descriptor)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _record_holder(descriptor, path):
    text = f"{os.getpid()} {socket.gethostname()}\n".encode()
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, text, 0)
    except OSError as error:
        raise write_error(error, path) from None


def _read_holder(descriptor):
    """' (process P on host H)' from the lock file, or '' where it holds nothing readable."""
    try:
        fields = os.pread(descriptor, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        return ""
    if len(fields) == 2 and fields[0].isdigit():
        return f" (process {fields[0]} on host {fields[1]})"
    return ""
