"""A record of every run, so that any figure can be traced to the run that produced it.

With `--record DIR` a run writes DIR/runs/<UTC time>-<command>/:

    command.txt    the command line, shell-quoted, and the working directory
    config.json    the resolved options (defaults, --config file and command line merged)
    machine.json   rwthlm_py's version, Python, numpy and its BLAS, the threads, the CPU
    log.txt        everything the run printed (progress lines redrawn on a terminal are left out)
    status.json    how the run ended: exit status, wall time and the error line; while it
                   runs, exit status null with its process and host

The record is complete or absent, as a model is. The first four files and the running
status are written before the run starts (a record that cannot be begun is removed); the
log is written as the run goes, whole lines only (textio.open_log_file), so that a killed
run still leaves its command, configuration, machine, log and the status that names its
process; the final status replaces the running one atomically at the end. A run whose
final status cannot be written (a full disk) has its record removed: a record saying
"running" for a run that ended would mislead. A log that cannot be written ends the run,
and the status names it.
"""

import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import sys
import time

import numpy

from rwthlm_py import __version__
from rwthlm_py.config import to_dict
from rwthlm_py.errors import InputError, Terminated, WriteError
from rwthlm_py.runtime import threads
from rwthlm_py.runtime.parallel import available_cores
from rwthlm_py.text.textio import atomic_output, open_log_file


@contextlib.contextmanager
def recording(directory, command, argv, options, console):
    """Records the run in a new folder under directory/runs while the body runs; yields it.

    The console's stdout and stderr are copied into log.txt. The status written at the end
    is the body's return value (0 where it returns None), or what its exception says. Where
    that status cannot be written, the folder is removed, and a body that succeeded ends
    with that WriteError.
    """
    if not directory:
        yield None
        return
    folder = _new_folder(directory, command)
    try:
        _write_json(os.path.join(folder, "config.json"), to_dict(options))
        _write_json(os.path.join(folder, "machine.json"), machine_facts())
        with atomic_output(os.path.join(folder, "command.txt")) as handle:
            handle.write(f"cd {shlex.quote(os.getcwd())}\n{shlex.join(argv)}\n")
        _write_json(os.path.join(folder, "status.json"), running_status())
        log = open_log_file(os.path.join(folder, "log.txt"))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a record that could not be begun is no record
        raise
    record = RunFolder(folder)
    started = time.time()
    out, err = console.out, console.err
    console.out, console.err = Tee(out, log), Tee(err, log)
    try:
        yield record
    except BaseException as error:
        console.out, console.err = out, err
        record.ended_by(error)
        with contextlib.suppress(WriteError):  # the run's own error is the line to print
            record.finish(log, started)
        raise
    console.out, console.err = out, err
    record.finish(log, started)


def running_status():
    """The status of a run that has not ended: no exit status yet, and which process it is."""
    return {"exit_status": None, "process": os.getpid(), "host": platform.node()}


class RunFolder:
    """The folder of one run and what it ended with (set by the caller)."""

    def __init__(self, path):
        self.path, self.status, self.error = path, 0, None

    def ended_by(self, error):
        """The exit status and error of a run that `error` ended."""
        self.status = (130 if isinstance(error, KeyboardInterrupt)
                       else 128 + error.signal_number if isinstance(error, Terminated) else 1)
        self.error = str(error) if isinstance(error, InputError) else type(error).__name__

    def finish(self, log, started):
        """Closes the log and writes the final status; where that fails, removes the folder
        and raises the WriteError."""
        status = {"exit_status": self.status, "seconds": round(time.time() - started, 3)}
        if self.error:
            status["error"] = self.error
        try:
            log.close()  # every line is in the file already: nothing is left to write
            _write_json(os.path.join(self.path, "status.json"), status)
        except WriteError as error:
            shutil.rmtree(self.path, ignore_errors=True)
            raise WriteError(f"{error.message} (the run record is removed)", error.path) from None


class Tee:
    """A text stream that writes to a stream and to a log file; redrawn progress lines
    (starting with a carriage return) go to the stream only."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.stream.write(text)
        if not text.startswith("\r"):
            self.log.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.log.flush()

    def isatty(self):
        return hasattr(self.stream, "isatty") and self.stream.isatty()


def machine_facts():
    """What decides speed and results on this machine."""
    return {
        "rwthlm_py": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "blas": _blas(),
        "cpu": cpu_model(),
        "cores": available_cores(),
        "threads": threads.describe(threads.worker_count()),
        "thread_pools": threads.pool_sizes(),
        "threads_environment": {name: value for name, value in os.environ.items()
                                if name.startswith(("OPENBLAS_", "OMP_", "MKL_"))},
        "platform": platform.platform(),
        "host": platform.node(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _blas():
    try:
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - numpy's build description is informative only
        return "unknown"


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _new_folder(directory, command):
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = os.path.join(directory, "runs", f"{stamp}-{command}")
    folder, number = base, 1
    while True:
        try:
            os.makedirs(folder)
            return folder
        except FileExistsError:
            number += 1
            folder = f"{base}-{number}"
        except OSError as error:
            raise InputError(f"cannot create the run record: {error.strerror}", folder) from None


def _write_json(path, value):
    with atomic_output(path) as handle:
        json.dump(value, handle, indent=1, sort_keys=True, default=str)
        handle.write("\n")
