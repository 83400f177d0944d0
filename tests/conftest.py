"""Shared fixtures: backends, a small generated vocabulary and corpus, and the toy text."""

import contextlib
import errno
import os
import pathlib
import resource
import subprocess
import sys
import threading
import time

import numpy
import pytest
from hypothesis import HealthCheck, settings

from rwthlm_py.model.checkpoint import TrainingState, save_model
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.runtime.backend import cupy_device_count, get_backend
from rwthlm_py.testing import cuda_on_cpu
from rwthlm_py.testing.strict_cupy import strict_backend
from rwthlm_py.text.vocabulary import Vocabulary, remap

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
# the two command lines, run as a user runs them, each in a process of its own
RWTHLM = [sys.executable, "-c", "import sys; from rwthlm_py.cli import rwthlm_main; sys.exit(rwthlm_main())"]
RWTHLM_PY = [sys.executable, "-m", "rwthlm_py"]
CORPORA = pathlib.Path(os.environ.get("RWTHLM_CORPORA", SHARED / "corpora"))

# Hypothesis (tests/test_fuzz.py): "ci", a fixed set of examples, is the default;
# --hypothesis-profile=fuzz-long searches at random, for maintainers.
_FUZZ_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                            HealthCheck.too_slow])
settings.register_profile("ci", max_examples=400, derandomize=True, database=None, **_FUZZ_SETTINGS)
settings.register_profile("fuzz-long", max_examples=20_000, **_FUZZ_SETTINGS)
settings.load_profile("ci")

BACKENDS = [
    "numpy",
    "strict-cupy",
    pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(
        cupy_device_count() == 0, reason="needs cupy and a CUDA device")]),
]


NEEDS_A_COMPILER = pytest.mark.skipif(cuda_on_cpu.compiler() is None, reason="needs a C++ compiler (g++)")
# Where the CUDA kernels run: on the CPU in the strict double, or on a GPU.
CUDA_DEVICES = [
    pytest.param("cuda-on-cpu", marks=NEEDS_A_COMPILER),
    pytest.param("gpu", marks=[pytest.mark.gpu, pytest.mark.skipif(
        cupy_device_count() == 0, reason="needs cupy and a CUDA device")]),
]


@pytest.fixture(params=CUDA_DEVICES)
def cuda_backend(request):
    """backend(dtype): a backend whose fused operations are the CUDA kernels, run on the CPU
    (in the strict double, every launch in ascending, descending and shuffled thread order,
    which must give the same bytes; check_thread_orders=False runs them once, ascending) or
    on a GPU."""
    if request.param == "cuda-on-cpu":
        return lambda dtype, check_thread_orders=True: strict_backend(dtype, cuda_kernels=True,
                                                                      check_thread_orders=check_thread_orders)
    return lambda dtype, check_thread_orders=True: get_backend("cupy", dtype)


def make_backend(name, dtype="float32"):
    """numpy, cupy, or the strict cupy double (rwthlm_py/testing/strict_cupy.py) of that float
    type: "strict-cupy" with the numpy bodies as its fused kernels, "strict-cupy-cuda" with
    the CUDA kernels run on the CPU (every launch in three thread orders)."""
    if name == "strict-cupy":
        return strict_backend(dtype)
    if name == "strict-cupy-cuda":
        return strict_backend(dtype, cuda_kernels=True, check_thread_orders=True)
    return get_backend(name, dtype)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return make_backend(request.param)


@pytest.fixture
def float64():
    return get_backend("numpy", "float64")


@pytest.fixture
def class_vocab():
    """Eleven words in six single-word classes and classes of 2 and 3 words, plus <sb>."""
    classes = [0, 1, 2, 3, 4, 5, 6, 6, 7, 7, 7]
    return remap([(f"w{k}", c) for k, c in enumerate(classes)], "<sb>")


@pytest.fixture
def full_vocab(class_vocab):
    return Vocabulary(class_vocab.words, range(len(class_vocab)), "<sb>")


TOY_NOUNS = ["cat", "dog", "bird", "man", "woman", "child"]
TOY_VERBS = ["sees", "likes", "chases", "feeds"]
TOY_ADJECTIVES = ["big", "small", "red", "old"]


def toy_sentences(count, seed):
    """Sentences of a small grammar: 'the [adj] noun verb the noun [and verb a noun]'."""
    rng = numpy.random.default_rng(seed)
    sentences = []
    for _ in range(count):
        words = ["the"]
        if rng.random() < 0.4:
            words.append(str(rng.choice(TOY_ADJECTIVES)))
        words += [str(rng.choice(TOY_NOUNS)), str(rng.choice(TOY_VERBS)), "the", str(rng.choice(TOY_NOUNS))]
        if rng.random() < 0.3:
            words += ["and", str(rng.choice(TOY_VERBS)), "a", str(rng.choice(TOY_NOUNS))]
        sentences.append(" ".join(words))
    return sentences


@pytest.fixture
def toy(tmp_path):
    """train.txt, dev.txt and test.txt of the toy grammar in a temporary directory."""
    for name, count, seed in (("train", 400, 1), ("dev", 60, 2), ("test", 60, 3)):
        (tmp_path / f"{name}.txt").write_text("\n".join(toy_sentences(count, seed)) + "\n")
    return tmp_path


# A lattice small enough to check by hand (tests/test_lattice_outputs.py does): two words
# for the second slot, a !NULL link without LM score, two ways to the end, </s> last.
HAND_LATTICE = """VERSION=1.0
UTTERANCE=hand
N=6 L=7
I=0 t=0.00
I=1 t=0.20
I=2 t=0.50
I=3 t=0.55
I=4 t=0.80
I=5 t=0.80
J=0 S=0 E=1 W=the v=1 a=-10.0 l=-1.0
J=1 S=1 E=2 W=cat v=1 a=-30.0 l=-2.0
J=2 S=1 E=2 W=dog v=1 a=-29.0 l=-2.5
J=3 S=2 E=3 W=!NULL v=1 a=-1.0 l=0
J=4 S=3 E=4 W=sees v=1 a=-20.0 l=-1.5
J=5 S=2 E=4 W=feeds v=1 a=-25.0 l=-1.0
J=6 S=4 E=5 W=</s> v=1 a=0 l=-0.5
"""


def run_cli(command, *args, cwd, timeout=300, file_size_limit=None, **options):
    """(status, stdout, stderr) of a command line (RWTHLM or RWTHLM_PY, its arguments and
    `args`, each made a string) run in `cwd`, its output read as text (bytes with text=False).
    With file_size_limit no file it writes may grow past that many bytes (writes past it fail
    with EFBIG, as they fail with ENOSPC on a full disk); the other options (env, input,
    stdout, preexec_fn, ...) go to subprocess.run."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **options}
    if file_size_limit:
        options["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    result = subprocess.run([str(a) for a in [*command, *args]], cwd=cwd, timeout=timeout, **options)
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def trained(toy):
    """The toy folder with toy-i8-m8 trained for an epoch by rwthlm-py train (batches of 8
    sequences of 12 words, learning rate 0.05) and its vocabulary written to `vocab`."""
    status, _, err = run_cli(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "dev.txt", "--batch-size", 8,
                             "--sequence-length", 12, "--learning-rate", 0.05, "--vocab", "vocab", "--max-epoch", 1,
                             "toy-i8-m8", cwd=toy)
    assert status == 0, err
    return toy


def assert_one_line_error(result, program, *fragments):
    """A command's (status, stdout, stderr): it failed with one `PROGRAM: error: ...` line
    holding every fragment, and no traceback."""
    status, _, err = result
    lines = err.strip().splitlines()
    assert status != 0
    assert "Traceback" not in err
    errors = [line for line in lines if line.startswith(f"{program}: error: ")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


# How long a test waits for a process it started to reach the point it waits for (a line, a
# file, a named pipe opened): a guard that ends a test that would otherwise hang, far above
# what any run here needs; no test's result depends on it.
CHILD_DEADLINE = 60


class Children:
    """The processes a test starts (`start`): each one still running when the test ends,
    passed or failed, is killed and reaped by the `children` fixture."""

    def __init__(self):
        self.started = []

    def start(self, command, *args, cwd, **options):
        """Starts COMMAND ARGS in `cwd`, its standard output and error read as text."""
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **options}
        process = subprocess.Popen(command + [str(a) for a in args], cwd=cwd, **options)
        self.started.append(process)
        return process

    def kill_all(self):
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait()
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):  # stdin: a reader killed before it read
                        stream.close()


@pytest.fixture
def children():
    started = Children()
    yield started
    started.kill_all()


def _fail_with_output(process, waiting_for, expired, printed=""):
    """Kills `process` (if it still runs) and fails the test with what it printed."""
    if process.poll() is None:
        process.kill()
    out, err = process.communicate()
    why = f"was killed after {CHILD_DEADLINE} s" if expired else f"ended with status {process.returncode}"
    pytest.fail(f"waiting for {waiting_for}, the process {why}; its output:\n{printed}{out or ''}{err or ''}")


def wait_for_line(process, prefix):
    """Reads the standard output of `process` up to a line that starts with `prefix` and
    returns that line. A process that ends without it, or has not printed it within
    CHILD_DEADLINE seconds, fails the test with its output (killed, if it still ran)."""
    expired = threading.Event()

    def expire():  # ends the read below
        expired.set()
        process.kill()

    deadline = threading.Timer(CHILD_DEADLINE, expire)
    deadline.start()
    printed = []
    try:
        for line in process.stdout:
            printed.append(line)
            if line.startswith(prefix):
                return line
    finally:
        deadline.cancel()
    _fail_with_output(process, f"a line {prefix!r}", expired.is_set(), "".join(printed))


def wait_until(condition, process, waiting_for):
    """Returns once `condition()` is true, checking it every 10 ms; fails the test with the
    output of `process` where the process ends first or CHILD_DEADLINE seconds pass."""
    deadline = time.monotonic() + CHILD_DEADLINE
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            _fail_with_output(process, waiting_for, expired=process.poll() is None)
        time.sleep(0.01)


def feed_named_pipe(pipe, content, process):
    """Writes `content` into the named pipe `pipe` once `process` has opened it for reading,
    and closes it. The pipe is opened without blocking (ENXIO while it has no reader), so a
    process that ended or never opens it fails the test instead of leaving it waiting."""
    descriptor = None

    def opened():
        nonlocal descriptor
        try:
            descriptor = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:
                raise
            return False
        return True

    wait_until(opened, process, f"it to open {pipe}")
    os.set_blocking(descriptor, True)
    with open(descriptor, "w") as handle:
        handle.write(content)


def corpus_file(*parts):
    """A file of the shared corpora, or a skip saying why it is missing."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared corpora are not beside this checkout)")
    return path


LATTICE_MODEL = "net-i6-m5"


def write_lattice_model(folder):
    """A model file LATTICE_MODEL in `folder` of a network far from uniform (p(w | history)
    depends on the history), over the words of the hand lattices and of Kaldi's words.txt
    but !SIL; returns its path."""
    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees", "feeds", "<unk>"])], "<sb>")
    network = Network.build(parse_network(LATTICE_MODEL), vocab, get_backend("numpy", "float64"), seed=4)
    for value in network.named_params().values():
        value *= 10
    path = folder / LATTICE_MODEL
    save_model(path, network, None, TrainingState())
    return path
