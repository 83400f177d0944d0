"""Data-parallel training (training/data_parallel.py): N MPI ranks train the model one
process trains with the same options, to float64 rounding; rank 0 alone writes; a model
trained with N ranks resumes with M; a killed rank ends the job and the run resumes."""

import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy
import pytest
from conftest import RWTHLM, wait_until

from rwthlm_py.model.checkpoint import read_model
from rwthlm_py.runtime import distributed
from rwthlm_py.text.data import Sequences
from rwthlm_py.training import data_parallel
from rwthlm_py.training.dropout import DropoutMasks
from tests.mpi import launcher, run_ranks, skip_without_mpi

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RWTHLM_PY = [sys.executable, "-m", "rwthlm_py", "train"]
# parameters after a few batches, and the sums of -ln p, agree to this: float64 rounding
# (the ranks add their columns' gradients in another order than one process does)
TOLERANCE = 1e-10


class Ranks:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.mark.parametrize("columns, size, blocks", [
    (5, 2, [(0, 3), (3, 5)]),
    (4, 2, [(0, 2), (2, 4)]),
    (2, 3, [(0, 1), (1, 2), (2, 2)]),
    (7, 3, [(0, 3), (3, 5), (5, 7)]),
])
def test_the_columns_are_cut_into_contiguous_blocks_the_first_one_longer(columns, size, blocks):
    assert [data_parallel.column_block(columns, rank, size) for rank in range(size)] == blocks


def test_a_smaller_last_batch_keeps_each_column_on_its_rank():
    # the schedule's 5 columns are 3 + 2; a last batch of 4 keeps columns 0-2 on rank 0
    assert data_parallel.batch_block(4, 5, Ranks(0, 2)) == (0, 3)
    assert data_parallel.batch_block(4, 5, Ranks(1, 2)) == (3, 4)
    assert data_parallel.batch_block(2, 5, Ranks(1, 2)) == (2, 2)


def test_each_rank_scores_its_columns_of_every_batch():
    sequences = Sequences(numpy.arange(11), numpy.arange(11) + 1)
    mine = [data_parallel.local_sequences(sequences, 4, Ranks(rank, 2)) for rank in range(2)]
    assert [width for _, width in mine] == [2, 2]
    assert mine[0][0].first.tolist() == [0, 1, 4, 5, 8, 9]
    assert mine[1][0].first.tolist() == [2, 3, 6, 7, 10]


@pytest.mark.parametrize("variational", [False, True])
def test_a_block_of_columns_drops_what_the_whole_batch_drops_there(float64, variational):
    masks = DropoutMasks(0.5, variational, (1, 0, 3), float64)
    whole = masks.mask(1, (6, 5, 4))
    block = masks.for_columns(3, 5, 6, 5).mask(1, (4, 2, 4))  # a block whose sequences are 4 steps long
    assert numpy.array_equal(block, whole[:4, 3:5])
    one_slice = masks.for_slice(2).mask(0, (1, 5, 4))
    assert numpy.array_equal(masks.for_columns(1, 3, 6, 5).for_slice(2).mask(0, (1, 2, 4)), one_slice[:, 1:3])


def test_ranks_train_the_parameters_and_losses_of_one_process(tmp_path):
    result = run_ranks(2, [os.path.join(HERE, "data_parallel_program.py"), "report.json"], cwd=tmp_path,
                       env={"PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ranks"] == 2 and len(report["cases"]) == 6
    for name, case in report["cases"].items():
        assert case["parameters"] < TOLERANCE, name
        assert case["losses"] < TOLERANCE and case["dev"] < TOLERANCE, name
        assert case["dev_counts"][0] == case["dev_counts"][1] > 0, name
        assert case["dev_counts"][2] == case["dev_counts"][3], name
        assert case["ranks_identical"], name


def test_ranks_on_the_strict_cupy_double_sum_through_host_buffers_and_train_alike(tmp_path):
    result = run_ranks(2, [os.path.join(HERE, "data_parallel_program.py"), "report.json", "strict"], cwd=tmp_path,
                       env={"PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["cases"]) == 2
    for name, case in report["cases"].items():
        assert case["parameters"] < TOLERANCE and case["dev"] < TOLERANCE and case["ranks_identical"], name


# -- the command line ----------------------------------------------------------------------------

def training(*extra):
    return [str(a) for a in ["--train", "train.txt", "--dev", "dev.txt", "--vocab", "vocab", "--classes", 4,
                             "--batch-size", 5, "--sequence-length", 10, "--momentum", 0.5, "--dropout", 0.2,
                             "--gradient-clipping", 1.0, "--dtype", "float64", *extra]]


def train_on_ranks(ranks, arguments, cwd, check=True):
    """`rwthlm-py train ARGUMENTS` as `ranks` MPI ranks (or one process without a launcher)."""
    environment = {**os.environ, "PYTHONPATH": ROOT}
    arguments = [str(argument) for argument in arguments]
    if ranks == 1:
        result = subprocess.run([*RWTHLM_PY, *arguments], cwd=cwd, env=environment, capture_output=True, text=True,
                                timeout=240)
    else:
        result = run_ranks(ranks, ["-m", "rwthlm_py", "train", *arguments], cwd=cwd, env=environment)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def parameters(path):
    return {name: value for name, value in read_model(path).params.items()}


def assert_same_model(path, other):
    ours, theirs = parameters(path), parameters(other)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].shape == theirs[name].shape and numpy.all(abs(ours[name] - theirs[name]) < TOLERANCE), name


def printed(out, prefix):
    return [line for line in out.splitlines() if line.startswith(prefix)]


def development_perplexities(out):
    return [float(line.split("=")[1].split(",")[0]) for line in printed(out, "development perplexity")]


def training_perplexities(out):
    return [line.split(",")[0] for line in printed(out, "epoch ") if "training perplexity" in line]


@pytest.fixture
def corpus(toy):
    skip_without_mpi()
    return toy


@pytest.mark.parametrize("wrapping", ["fixed", "concatenated", "stream"])
def test_two_ranks_print_and_save_what_one_process_does(corpus, wrapping):
    # no --learning-rate: the held-out search runs on the ranks too
    arguments = training("--word-wrapping", wrapping, "--max-epoch", 2)
    one = train_on_ranks(1, arguments + ["one-i8-m8"], corpus)
    two = train_on_ranks(2, arguments + ["--tensorboard", "tb", "--record", "exp", "two-i8-m8"], corpus)
    assert_same_model(corpus / "one-i8-m8", corpus / "two-i8-m8")
    assert printed(two.stdout, "initial learning rate") == printed(one.stdout, "initial learning rate")
    assert training_perplexities(two.stderr) == training_perplexities(one.stderr)
    assert len(training_perplexities(one.stderr)) == 2
    assert development_perplexities(two.stdout) == pytest.approx(development_perplexities(one.stdout), rel=TOLERANCE)
    # rank 0 alone prints, and writes the events and the run record
    assert two.stdout.count("Training ...") == 1 and "data-parallel training on 2 ranks" in two.stderr
    assert len(os.listdir(corpus / "tb")) == 1 and len(os.listdir(corpus / "exp" / "runs")) == 1
    assert not [name for name in os.listdir(corpus) if name.startswith(".") or name.endswith(".partial")]


def test_rwthlm_trains_on_ranks_with_its_learning_rate_search(corpus):
    (corpus / "train.txt").write_text((corpus / "train.txt").read_text() * 2)  # its search takes 30 batches
    arguments = ["--train", "train.txt", "--dev", "dev.txt", "--batch-size", 4, "--sequence-length", 20,
                 "--max-epoch", 1, "--dtype", "float64"]
    environment = {**os.environ, "PYTHONPATH": ROOT}
    rwthlm = RWTHLM[1:]
    single = subprocess.run([*RWTHLM, *map(str, arguments), "one-i8-m8"], cwd=corpus,
                            env=environment, capture_output=True, text=True, timeout=240)
    assert single.returncode == 0, single.stderr
    double = run_ranks(2, [*rwthlm, *map(str, arguments), "two-i8-m8"], cwd=corpus, env=environment)
    assert double.returncode == 0, double.stderr
    assert printed(double.stdout, "initial learning rate") == printed(single.stdout, "initial learning rate")
    assert_same_model(corpus / "one-i8-m8", corpus / "two-i8-m8")


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_model_trained_on_some_ranks_goes_on_with_others(corpus, first, then):
    arguments = training("--word-wrapping", "stream", "--learning-rate", 0.03)
    whole = train_on_ranks(1, arguments + ["--max-epoch", 2, "whole-i8-m8"], corpus)
    train_on_ranks(first, arguments + ["--max-epoch", 1, "split-i8-m8"], corpus)
    resumed = train_on_ranks(then, arguments + ["--max-epoch", 2, "split-i8-m8"], corpus)
    assert_same_model(corpus / "whole-i8-m8", corpus / "split-i8-m8")
    assert training_perplexities(resumed.stderr) == training_perplexities(whole.stderr)[1:]


def test_a_killed_rank_ends_the_job_and_the_run_resumes_its_epoch(corpus, children):
    """kill -9 of rank 1 mid-epoch: the job ends within seconds, the model file is whole,
    and a rerun on 2 ranks resumes the epoch from its last save and ends with
    the model of a run that was never interrupted."""
    # an epoch long enough that the kill lands inside one, however loaded the machine
    (corpus / "train.txt").write_text((corpus / "train.txt").read_text() * 6)
    arguments = training("--word-wrapping", "stream", "--learning-rate", 0.03, "--max-epoch", 2)
    train_on_ranks(2, arguments + ["whole-i8-m8"], corpus)
    # each rank writes its process id, then runs the command
    program = ("import os, sys; open(f'pid{os.environ[\"PMI_RANK\"]}', 'w').write(str(os.getpid())); "
               "from rwthlm_py.cli import main; sys.exit(main())")
    command = [launcher(), "-n", "2", sys.executable, "-c", program, "train", *arguments,
               "--checkpoint-every", "1e-6", "killed-i8-m8"]
    process = children.start(command, cwd=corpus, env={**os.environ, "PYTHONPATH": ROOT})
    wait_until(lambda: (corpus / "killed-i8-m8.partial").exists() or process.poll() is not None, process,
               "the first save of the epoch in progress")
    assert process.poll() is None, "the run ended before it saved its epoch in progress"
    killed = time.monotonic()
    os.kill(int((corpus / "pid1").read_text()), signal.SIGKILL)
    out, err = process.communicate(timeout=60)
    assert process.returncode != 0 and time.monotonic() - killed < 30
    # the launcher names the killed process; rank 0's first lines say which rank it was
    pid = (corpus / "pid1").read_text()
    assert f"1: {pid}@" in err
    assert f"PID {pid} " in out + err or "rank 1 " in out + err  # MPICH's Hydra names the process, Open MPI the rank
    read_model(corpus / "killed-i8-m8")  # whole: every save is a rename
    resumed = train_on_ranks(2, arguments + ["killed-i8-m8"], corpus)
    assert "Resuming epoch" in resumed.stdout
    assert_same_model(corpus / "whole-i8-m8", corpus / "killed-i8-m8")
    assert not (corpus / "killed-i8-m8.partial").exists()


def test_a_checkpoint_gathers_the_carried_state_of_every_rank(tmp_path):
    program = (
        "import numpy, pickle\n"
        "from rwthlm_py.runtime import distributed\n"
        "from rwthlm_py.training import data_parallel\n"
        "ranks = distributed.world()\n"
        "start, stop = data_parallel.column_block(5, ranks.rank, ranks.size)\n"
        "mine = (numpy.arange(start, stop, dtype=float)[:, None] * numpy.ones((1, 2)), None)\n"
        "whole = data_parallel.gather_state(mine, ranks, numpy.asarray)\n"
        "back = data_parallel.state_block(ranks.broadcast(whole), 5, ranks)\n"
        "open(f'state{ranks.rank}', 'wb').write(pickle.dumps((whole, back)))\n"
    )
    result = run_ranks(2, ["-c", program], cwd=tmp_path, env={"PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    import pickle

    whole, back = pickle.loads((tmp_path / "state0").read_bytes())
    assert whole[0][:, 0].tolist() == [0, 1, 2, 3, 4] and whole[1] is None
    assert back[0][:, 0].tolist() == [0, 1, 2]
    whole, back = pickle.loads((tmp_path / "state1").read_bytes())
    assert whole is None and back[0][:, 0].tolist() == [3, 4]  # each rank takes its own columns back


# -- GPU ranks, on the strict cupy double --------------------------------------------------------

class FakeNccl(types.SimpleNamespace):
    """cupy.cuda.nccl's calls that device_sum makes, summing through MPI underneath."""


def fake_nccl(ranks, calls):
    def communicator(size, unique_id, rank):
        calls.append(("communicator", size, unique_id, rank))

        def all_reduce(send, receive, count, datatype, operation, stream):
            calls.append(("allReduce", count, datatype, operation, stream))
            array = numpy.ctypeslib.as_array(ctypes_pointer(receive, datatype), (count,))
            ranks.sum_in_place(array)

        return types.SimpleNamespace(allReduce=all_reduce)

    return FakeNccl(NCCL_FLOAT32=7, NCCL_FLOAT64=8, NCCL_SUM=0, get_unique_id=lambda: b"id-of-rank-0",
                    NcclCommunicator=communicator)


def ctypes_pointer(address, datatype):
    import ctypes

    kind = ctypes.c_double if datatype == 8 else ctypes.c_float
    return ctypes.cast(address, ctypes.POINTER(kind))


def test_without_nccl_device_arrays_are_summed_through_the_host():
    from rwthlm_py.testing.strict_cupy import strict_backend

    backend = strict_backend("float64")

    class Broken:
        def get_unique_id(self):
            raise RuntimeError("libnccl.so.2: cannot open shared object file")

    class TwoRanks(distributed.World):
        size = 2

        def sum_in_place(self, array):
            array *= 2
            return array

    summer, note = distributed.device_sum(TwoRanks(), backend, nccl=Broken())
    assert note.startswith("NCCL is not available on rank 0 (RuntimeError: libnccl.so.2") and "host buffers" in note
    array = backend.xp.asarray(numpy.arange(3.0))
    summer.sum_in_place(array)
    assert backend.to_numpy(array).tolist() == [0.0, 2.0, 4.0]
    one, none = distributed.device_sum(distributed.World(), backend)
    assert none is None and isinstance(one, distributed.HostSum)


def test_where_one_rank_lacks_nccl_every_rank_sums_through_the_host():
    from rwthlm_py.testing.strict_cupy import strict_backend

    class RankZeroOfTwo(distributed.World):
        size = 2

        def all_gather(self, value):
            return [value, "ImportError: no cupy.cuda.nccl"]  # rank 1 could not import it

    class Working:
        def get_unique_id(self):
            return b"id"

        def NcclCommunicator(self, *arguments):  # noqa: N802 - cupy's name
            raise AssertionError("rank 0 must not start NCCL where rank 1 cannot join it")

    summer, note = distributed.device_sum(RankZeroOfTwo(), strict_backend("float64"), nccl=Working())
    assert isinstance(summer, distributed.HostSum)
    assert note.startswith("NCCL is not available on rank 1 (ImportError: no cupy.cuda.nccl)")


NCCL_PROGRAM = """
import json, sys
sys.path.insert(0, {tests!r})
import numpy
from rwthlm_py.runtime import distributed
from rwthlm_py.testing.strict_cupy import strict_backend
from test_data_parallel import fake_nccl
ranks = distributed.world()
backend = strict_backend("float64")
calls = []
summer, note = distributed.device_sum(ranks, backend, nccl=fake_nccl(ranks, calls),
                                      pointer=lambda array: array._a.ctypes.data, stream=lambda: 0)
array = backend.xp.asarray(numpy.full(4, ranks.rank + 1.0))
summer.sum_in_place(array)
if ranks.is_root:
    json.dump({{"note": note, "sum": backend.to_numpy(array).tolist(), "calls": calls}}, open("nccl.json", "w"),
              default=str)
"""


def test_device_arrays_are_summed_by_nccl_from_an_id_rank_0_broadcasts(tmp_path):
    program = NCCL_PROGRAM.format(tests=HERE)
    result = run_ranks(2, ["-c", program], cwd=tmp_path, env={"PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "nccl.json").read_text())
    assert report["note"] is None and report["sum"] == [3.0] * 4
    assert report["calls"][0] == ["communicator", 2, "b'id-of-rank-0'", 0]
    assert report["calls"][1] == ["allReduce", 4, 8, 0, 0]


def test_ranks_with_different_vocabularies_are_refused(class_vocab):
    from rwthlm_py.commands import same_vocabulary_on_every_rank
    from rwthlm_py.errors import InputError

    class RankZeroOfThree(distributed.World):
        size = 3

        def __init__(self, others):
            self.others = others

        def all_gather(self, value):
            return [value, *self.others]

    fingerprint = class_vocab.fingerprint()
    same_vocabulary_on_every_rank(RankZeroOfThree([fingerprint, fingerprint]), class_vocab)
    with pytest.raises(InputError, match="^rank 2 built another vocabulary than rank 0 .* give it with --vocab"):
        same_vocabulary_on_every_rank(RankZeroOfThree([fingerprint, "another"]), class_vocab)
