"""--threads and the default thread count: parsed and refused as every option is, the rule
of runtime/threads.py, the BLAS pools as a command really runs with them, and results
that do not depend on the count.

The pools are observed inside the commands' own processes: SPY runs a command line with
Network's computing methods wrapped so that each call notes the BLAS pools' sizes at that
moment (threadpoolctl's threadpool_info, which asks the libraries themselves).
"""

import json
import os
import sys

import numpy
import pytest
import threadpoolctl
from conftest import HAND_LATTICE, RWTHLM, RWTHLM_PY, assert_one_line_error, run_cli, toy_sentences

import rwthlm_py
from rwthlm_py.cli import SUBCOMMANDS, main_parser, rwthlm_parser
from rwthlm_py.model.checkpoint import read_model
from rwthlm_py.runtime import threads
from rwthlm_py.runtime.parallel import available_cores

# The variables the rule reads: a child process starts without any of them, then gets those
# a test gives it.
RULE_VARIABLES = (*threads.ENVIRONMENT_THREADS, *threads.LOCAL_RANKS, threads.SLURM_CPUS)

SPY = """
import json, os, sys, threadpoolctl
from rwthlm_py.model.network import Network
from rwthlm_py.model.scoring_step import LeanStep

seen = {}

def spied(name, method):
    def call(self, *args, **kwargs):
        sizes = {pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"}
        seen.setdefault(name, set()).update(sizes)
        return method(self, *args, **kwargs)
    return call

for name in ("log_probs", "next_word_log_probs", "step", "accumulate_gradients"):
    setattr(Network, name, spied(name, getattr(Network, name)))
for name in ("next_word_log_probs", "step"):  # the lattice search's lean step
    setattr(LeanStep, name, spied(name, getattr(LeanStep, name)))
from rwthlm_py.cli import main, rwthlm_main

status = (rwthlm_main if sys.argv[1] == "rwthlm" else main)(sys.argv[2:])
with open(os.environ["POOLS_SEEN"], "w") as handle:
    json.dump({name: sorted(sizes) for name, sizes in seen.items()}, handle)
sys.exit(status)
"""


def child_environment(**variables):
    """This process's environment without the rule's variables, plus `variables`."""
    environment = {name: value for name, value in os.environ.items() if name not in RULE_VARIABLES}
    return {**environment, **{name: str(value) for name, value in variables.items()}}


def spy(program, *args, cwd, **variables):
    """(status, stdout, stderr, {Network method: the BLAS pool sizes seen at its calls}) of
    PROGRAM ("rwthlm" or "rwthlm-py") run with `args`, the rule's variables set to `variables`."""
    seen = cwd / "pools-seen.json"
    environment = child_environment(POOLS_SEEN=seen, **variables)
    status, out, err = run_cli([sys.executable, "-c", SPY, program], *args, cwd=cwd, env=environment)
    pools = json.loads(seen.read_text()) if seen.exists() else {}
    seen.unlink(missing_ok=True)
    return status, out, err, pools


def blas_sizes():
    return sorted({pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"})


# -- the option ------------------------------------------------------------------------------

def test_every_computing_command_has_the_option():
    assert "--threads" in rwthlm_parser().flags
    commands = main_parser().commands.choices
    for name in [*SUBCOMMANDS, "sample"]:
        assert "--threads" in commands[name].flags, name
    assert "--threads" not in commands["vocab"].flags  # the exchange algorithm uses no matrix products


BAD_VALUES = [("0", "--threads must be at least 1"), ("-2", "--threads must be at least 1"),
              ("two", "--threads takes an integer, not 'two'"), ("1.5", "--threads takes an integer, not '1.5'")]
COMMANDS = [("rwthlm", RWTHLM, ["--ppl", "test.txt"]),
            ("rwthlm-py", RWTHLM_PY + ["train"], ["--train", "train.txt", "--dev", "dev.txt"]),
            ("rwthlm-py", RWTHLM_PY + ["ppl"], ["--ppl", "test.txt"]),
            ("rwthlm-py", RWTHLM_PY + ["nbest"], ["--nbest", "test.txt"]),
            ("rwthlm-py", RWTHLM_PY + ["lattice"], ["--lambda", "0.5", "--pruning-threshold", "0", "x.lat"]),
            ("rwthlm-py", RWTHLM_PY + ["selftest"], []),
            ("rwthlm-py", RWTHLM_PY + ["sample"], [])]


@pytest.mark.parametrize("command", COMMANDS, ids=["rwthlm", "train", "ppl", "nbest", "lattice", "selftest", "sample"])
def test_bad_values_are_one_line_each(command, toy):
    program, prefix, args = command
    for value, message in BAD_VALUES:
        result = run_cli(prefix, *args, "--threads", value, "model", cwd=toy)
        assert_one_line_error(result, program, message)


def test_a_bad_value_in_a_config_file_names_its_line(toy):
    (toy / "conf").write_text("# threads\nthreads = many\n")
    assert_one_line_error(run_cli(RWTHLM_PY, "ppl", "--config", "conf", "--ppl", "test.txt", "model", cwd=toy),
                          "rwthlm-py", "conf:2: --threads takes an integer, not 'many'")


# -- the default rule ------------------------------------------------------------------------

@pytest.mark.parametrize("variables, count, source", [
    ({}, 8, "8 cores"),  # not given: the only case that runs rescoring steps on one thread
    ({"OMPI_COMM_WORLD_LOCAL_SIZE": "3"}, 2, "8 cores / 3 ranks (OMPI_COMM_WORLD_LOCAL_SIZE)"),
    ({"MPI_LOCALNRANKS": "16"}, 1, "8 cores / 16 ranks (MPI_LOCALNRANKS)"),
    ({"MV2_COMM_WORLD_LOCAL_SIZE": "4"}, 2, "8 cores / 4 ranks (MV2_COMM_WORLD_LOCAL_SIZE)"),
    ({"PMI_LOCAL_SIZE": "2"}, 4, "8 cores / 2 ranks (PMI_LOCAL_SIZE)"),
    ({"SLURM_CPUS_PER_TASK": "3"}, 3, "8 cores, SLURM_CPUS_PER_TASK=3"),
    ({"SLURM_CPUS_PER_TASK": "16"}, 8, "8 cores, SLURM_CPUS_PER_TASK=16"),
    # Slurm's count is per task already: the ranks do not divide it again
    ({"SLURM_CPUS_PER_TASK": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}, 4, "8 cores, SLURM_CPUS_PER_TASK=4"),
    # the user's own setting wins over the launchers'; OpenBLAS's own variable over OpenMP's
    ({"OPENBLAS_NUM_THREADS": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "8"}, 3, "OPENBLAS_NUM_THREADS"),
    ({"OMP_NUM_THREADS": "4,2", "SLURM_CPUS_PER_TASK": "1"}, 4, "OMP_NUM_THREADS"),
    ({"OPENBLAS_NUM_THREADS": "5", "OMP_NUM_THREADS": "1"}, 5, "OPENBLAS_NUM_THREADS"),
    # values that are no count are not there (as OpenBLAS ignores them)
    ({"OPENBLAS_NUM_THREADS": "0", "OMP_NUM_THREADS": "", "OMPI_COMM_WORLD_LOCAL_SIZE": "x"}, 8, "8 cores"),
])
def test_the_default_rule(variables, count, source):
    given = source != "8 cores"
    assert threads.default_threads(variables, cores=8) == threads.Threads(count, source, given)
    assert threads.default_threads(variables, cores=8).rescoring_count == (count if given else 1)


SETTLE = ("import json, sys, threadpoolctl; from rwthlm_py.runtime import threads; "
          "settled = threads.settle(None if sys.argv[1] == '-' else int(sys.argv[1])); "
          "print(json.dumps([settled.count, settled.source, sorted({pool['num_threads'] for pool in "
          "threadpoolctl.threadpool_info() if pool['user_api'] == 'blas'})]))")


def settled_in_a_child(requested="-", cpus=None, **variables):
    """[count, source, BLAS pool sizes] that `threads.settle` gives in a fresh process with
    the rule's variables set to `variables` (and its CPU affinity `cpus`)."""
    def restrict():
        os.sched_setaffinity(0, cpus)

    status, out, err = run_cli([sys.executable, "-c", SETTLE, requested], cwd=os.getcwd(),
                               env=child_environment(**variables), preexec_fn=restrict if cpus else None)
    assert status == 0, err
    return json.loads(out)


needs_two_cores = pytest.mark.skipif(available_cores() < 2, reason="needs two cores to tell one thread from all")


@needs_two_cores
def test_the_default_is_the_cores_this_process_may_use():
    cores = available_cores()
    assert settled_in_a_child() == [cores, f"{cores} cores", [cores]]
    first = min(os.sched_getaffinity(0))
    assert settled_in_a_child(cpus={first}) == [1, "1 core", [1]]


@needs_two_cores
def test_the_launchers_variables_lower_the_pools():
    cores = available_cores()
    assert settled_in_a_child(OMPI_COMM_WORLD_LOCAL_SIZE=cores)[::2] == [1, [1]]
    assert settled_in_a_child(MPI_LOCALNRANKS=cores)[::2] == [1, [1]]
    assert settled_in_a_child(SLURM_CPUS_PER_TASK=1)[::2] == [1, [1]]


def test_the_users_variables_are_left_to_the_blas_and_the_option_wins_over_them():
    assert settled_in_a_child(OPENBLAS_NUM_THREADS=1) == [1, "OPENBLAS_NUM_THREADS", [1]]
    assert settled_in_a_child(OMP_NUM_THREADS=1) == [1, "OMP_NUM_THREADS", [1]]
    assert settled_in_a_child("2", OPENBLAS_NUM_THREADS=1) == [2, "--threads", [2]]
    assert settled_in_a_child("1", OPENBLAS_NUM_THREADS=2) == [1, "--threads", [1]]


# -- limiting the pools around a block -------------------------------------------------------

def test_limited_lowers_the_pools_inside_the_block_only():
    with threadpoolctl.threadpool_limits(limits=3):  # restores this process's pools at the end
        assert blas_sizes() == [3]
        with threads.limited(1):
            assert blas_sizes() == [1]
            with threads.limited(2):  # at most 2: a pool of 1 stays 1
                assert blas_sizes() == [1]
            assert blas_sizes() == [1]
        assert blas_sizes() == [3]
        with pytest.raises(KeyError), threads.limited(2):
            assert blas_sizes() == [2]
            raise KeyError("an error inside the block")
        assert blas_sizes() == [3]


@pytest.mark.parametrize("settled, inside", [(threads.Threads(2, "2 cores", given=False), [1]),
                                             (threads.Threads(2, "--threads"), [2]),
                                             (threads.Threads(2, "OMP_NUM_THREADS"), [2]),
                                             (threads.Threads(2, "2 cores, SLURM_CPUS_PER_TASK=2"), [2])])
def test_rescoring_takes_one_thread_unless_a_count_was_given(settled, inside, monkeypatch):
    monkeypatch.setattr(threads, "_settled", settled)
    with threadpoolctl.threadpool_limits(limits=2):
        with threads.for_rescoring():
            assert blas_sizes() == inside
        assert blas_sizes() == [2]


def test_without_a_settled_count_rescoring_leaves_the_pools_as_they_are(monkeypatch):
    """The Python API settles nothing: its rescoring steps keep the pools the user has."""
    monkeypatch.setattr(threads, "_settled", None)
    with threadpoolctl.threadpool_limits(limits=2):
        with threads.for_rescoring():
            assert blas_sizes() == [2]


def test_the_api_sets_the_pools_only_when_asked(trained, monkeypatch):
    monkeypatch.setattr(threads, "_settled", None)  # this process's: restored after the test
    with threadpoolctl.threadpool_limits(limits=2):  # so are its pools, at the end of the block
        rwthlm_py.load(str(trained / "toy-i8-m8"), backend="numpy")
        assert blas_sizes() == [2] and threads.settled() is None
        lm = rwthlm_py.load(str(trained / "toy-i8-m8"), backend="numpy", threads=1)
        assert blas_sizes() == [1] and threads.settled() == threads.Threads(1, "--threads")
        assert lm.network.backend.threads == 1


# -- the pools while the commands run --------------------------------------------------------

def test_the_option_sets_the_pools_the_network_runs_with(trained):
    for count in (1, 2):
        status, out, err, pools = spy("rwthlm-py", "ppl", "--ppl", "test.txt", "--threads", count, "--record",
                                      f"record{count}", "toy-i8-m8", cwd=trained)
        assert status == 0, err
        assert pools == {"log_probs": [count]}
        described = f"{count} thread{'s' if count > 1 else ''}: --threads"
        assert f"on the CPU ({described})" in err
        [machine] = (trained / f"record{count}" / "runs").glob("*/machine.json")
        facts = json.loads(machine.read_text())
        assert facts["threads"] == described and set(facts["thread_pools"].values()) == {count}
        status, out, err, pools = spy("rwthlm", "--ppl", "test.txt", "--threads", count, "toy-i8-m8", cwd=trained)
        assert status == 0, err
        assert pools == {"log_probs": [count]}
    status, _, err, pools = spy("rwthlm-py", "train", "--train", "train.txt", "--dev", "dev.txt", "--max-epoch", 1,
                                "--learning-rate", 0.05, "--threads", 2, "new-i8-m8", cwd=trained)
    assert status == 0, err
    assert pools == {"accumulate_gradients": [2], "log_probs": [2]}
    status, out, err, pools = spy("rwthlm-py", "sample", "--num", 2, "--threads", 2, "toy-i8-m8", cwd=trained)
    assert status == 0, err
    assert pools == {"step": [2]} and len(out.splitlines()) == 2
    status, out, err, pools = spy("rwthlm-py", "selftest", "--threads", 2, "toy-i8-m8", cwd=trained)
    assert status == 0, err
    assert set(pools) == {"log_probs", "accumulate_gradients"} and set(map(tuple, pools.values())) == {(2,)}


def test_without_the_option_the_rule_decides(trained):
    status, _, err, pools = spy("rwthlm-py", "ppl", "--ppl", "test.txt", "toy-i8-m8", cwd=trained,
                                OMPI_COMM_WORLD_LOCAL_SIZE=available_cores())
    assert status == 0, err
    assert pools == {"log_probs": [1]}
    assert f"(1 thread: {available_cores()} cores / {available_cores()} ranks (OMPI_COMM_WORLD_LOCAL_SIZE))" in err
    status, _, err, pools = spy("rwthlm-py", "ppl", "--ppl", "test.txt", "toy-i8-m8", cwd=trained,
                                OPENBLAS_NUM_THREADS=1)
    assert status == 0, err
    assert pools == {"log_probs": [1]} and "(1 thread: OPENBLAS_NUM_THREADS)" in err
    status, _, err, pools = spy("rwthlm-py", "ppl", "--ppl", "test.txt", "--threads", 2, "toy-i8-m8", cwd=trained,
                                OPENBLAS_NUM_THREADS=1)
    assert status == 0, err
    assert pools == {"log_probs": [2]}


def toy_lists(folder):
    """Two SRILM n-best lists of toy sentences."""
    sentences = toy_sentences(8, seed=5)
    for utterance in (0, 1):
        lines = [f"-{100 + k} -{10 + k} {len(s.split())} {s}" for k, s in enumerate(sentences[utterance::2])]
        (folder / f"utt{utterance}.nbest").write_text("\n".join(lines) + "\n")
    return [folder / "utt0.nbest", folder / "utt1.nbest"]


def rescoring_pools(folder, *args, **variables):
    """{Network method: BLAS pool sizes} of n-best and of lattice rescoring run with `args`
    and the rule's variables `variables`; and the backend's line of each."""
    lists = toy_lists(folder)
    (folder / "x.lat").write_text(HAND_LATTICE)
    status, _, err, nbest = spy("rwthlm-py", "nbest", "--nbest", lists[0], "--nbest", lists[1], *args, "toy-i8-m8",
                                cwd=folder, **variables)
    assert status == 0, err
    lines = [line for line in err.splitlines() if "backend: " in line]
    status, _, err, lattice = spy("rwthlm-py", "lattice", "--lambda", 0.5, "--pruning-threshold", 0, "--set-sb-last",
                                  "--out", "out", *args, "x.lat", "toy-i8-m8", cwd=folder, **variables)
    assert status == 0, err
    lines += [line for line in err.splitlines() if "backend: " in line]
    return nbest, lattice, lines


@needs_two_cores
def test_rescoring_steps_run_on_one_thread_unless_a_count_is_given(trained):
    cores = available_cores()
    nbest, lattice, lines = rescoring_pools(trained)
    assert nbest == {"log_probs": [1]} and lattice == {"next_word_log_probs": [1], "step": [1]}
    assert len(lines) == 2 and all(f"({cores} threads: {cores} cores; rescoring steps on 1)" in line
                                   for line in lines)
    nbest, lattice, lines = rescoring_pools(trained, "--threads", 2)
    assert nbest == {"log_probs": [2]} and lattice == {"next_word_log_probs": [2], "step": [2]}
    assert all("(2 threads: --threads)" in line for line in lines)
    nbest, lattice, _ = rescoring_pools(trained, OMPI_COMM_WORLD_LOCAL_SIZE=1)  # a launcher: one rank here
    assert nbest == {"log_probs": [cores]} and lattice == {"next_word_log_probs": [cores], "step": [cores]}


# -- results do not depend on the count ------------------------------------------------------

def test_training_and_scoring_agree_with_one_thread_or_two(toy):
    """float64, with products large enough for OpenBLAS to split them between two threads
    (B = 20, H = 128: the recurrent product alone is 20 x 128 x 512 multiply-adds). Agree,
    not to the bit: where two threads split a product, OpenBLAS's kernels meet the blocks'
    edges elsewhere and sum some elements in another order (a difference in the last bit of
    a few, here about 1e-16), which two epochs of training carry to about 1e-13. The n-best
    lists rescored by one model with one thread and with two are the same files."""
    perplexities, weights, scores = {}, {}, {}
    lists = toy_lists(toy)
    for count in (1, 2):
        model = f"t{count}-i128-m128"
        status, out, err, pools = spy("rwthlm-py", "train", "--train", "train.txt", "--dev", "dev.txt", "--dtype",
                                      "float64", "--batch-size", 20, "--sequence-length", 12, "--learning-rate", 0.1,
                                      "--max-epoch", 2, "--vocab", "vocab", "--threads", count, model, cwd=toy)
        assert status == 0, err
        assert pools == {"accumulate_gradients": [count], "log_probs": [count]}
        perplexities[count] = [float(line.split()[3].rstrip(",")) for line in out.splitlines()
                               if line.startswith("development perplexity")]
        status, out, err, pools = spy("rwthlm-py", "ppl", "--ppl", "test.txt", "--dtype", "float64", "--threads",
                                      count, model, cwd=toy)
        assert status == 0, err
        assert pools == {"log_probs": [count]}
        perplexities[count].append(float(out.splitlines()[-1]))
        weights[count] = read_model(str(toy / model)).params
        status, out, err = run_cli(RWTHLM_PY, "nbest", "--dtype", "float64", "--nbest", lists[0], "--nbest", lists[1],
                                   "--out", f"rescored{count}", "--threads", count, "t1-i128-m128", cwd=toy)
        assert status == 0, err
        scores[count] = {path.name: path.read_text() for path in (toy / f"rescored{count}").iterdir()}
    assert len(perplexities[1]) == 3
    numpy.testing.assert_allclose(perplexities[2], perplexities[1], rtol=1e-12)
    assert weights[1].keys() == weights[2].keys()
    for name, value in weights[1].items():
        numpy.testing.assert_allclose(weights[2][name], value, rtol=0, atol=1e-10, err_msg=name)
    assert len(scores[1]) == 3 and scores[1] == scores[2]


