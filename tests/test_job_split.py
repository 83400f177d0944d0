"""Rescoring and scoring split into jobs (runtime/jobs.py): `--num-jobs J --job I` parts
joined in job order equal one run's outputs, `wer-totals` sums the jobs' WER lines into
one run's, and under mpiexec the ranks' printed lines and files are one process's, byte
for byte."""

import gzip
import pathlib
import shutil
import subprocess

import numpy
import pytest
from conftest import (
    HAND_LATTICE,
    LATTICE_MODEL,
    RWTHLM,
    RWTHLM_PY,
    assert_one_line_error,
    run_cli,
    toy_sentences,
    write_lattice_model,
)
from mpi import run_ranks

from rwthlm_py.errors import InputError
from rwthlm_py.model.network import Network
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.rescoring.wer import sum_error_lines
from rwthlm_py.runtime.backend import get_backend
from rwthlm_py.runtime.distributed import World
from rwthlm_py.runtime.jobs import Share, blocks, job_file_name
from rwthlm_py.scoring.evaluate import score_corpus
from rwthlm_py.text import data
from rwthlm_py.text.vocabulary import remap

DATA = pathlib.Path(__file__).parent / "data"
KALDI_DATA = DATA / "kaldi_lattice"
ARPA_ONLY = ["--arpa", DATA / "toy.arpa", "--lambda", 0]
MODEL = LATTICE_MODEL
KALDI_RESCORING = ["lattice", "--kaldi-words", "words.txt", "--lambda", 0.5, "--pruning-threshold", 0, "--dtype",
                   "float64", "--refs", "refs", "--nbest", 2]
HTK_RESCORING = ["lattice", "--lambda", 0.5, "--pruning-threshold", 0, "--dtype", "float64", "--refs", "refs",
                 "--nbest", 2]


@pytest.mark.parametrize("sizes, count, expected", [
    ([1] * 5, 2, [(0, 2), (2, 5)]),
    ([1] * 6, 3, [(0, 2), (2, 4), (4, 6)]),
    ([10, 1, 1, 1, 1, 1, 1], 2, [(0, 1), (1, 7)]),  # by size: the big item alone
    ([1, 1, 1, 1, 1, 1, 10], 2, [(0, 6), (6, 7)]),
    ([0, 0, 0], 3, [(0, 1), (1, 2), (2, 3)]),  # no sizes known: by count
    ([1, 1], 4, [(0, 0), (0, 1), (1, 1), (1, 2)]),  # more jobs than items: some get none
    ([], 2, [(0, 0), (0, 0)]),
])
def test_blocks_are_contiguous_balanced_and_cover_every_item(sizes, count, expected):
    assert blocks(sizes, count) == expected


def test_a_jobs_part_of_a_shared_output_has_its_number_before_gz():
    assert job_file_name("out/1best.txt", 3) == "out/1best.txt.3"
    assert job_file_name("x.ark.rescored.gz", 12) == "x.ark.rescored.12.gz"


@pytest.mark.parametrize("options, message", [
    (["--num-jobs", 2, "--job", 0], "--job must lie in [1, 2] (jobs count from 1"),
    (["--num-jobs", 2, "--job", 3], "--job must lie in [1, 2]"),
    (["--job", 1], "--job needs --num-jobs"),
    (["--num-jobs", 2], "--num-jobs needs --job I"),
    (["--num-jobs", 0, "--job", 1], "--num-jobs must be at least 1"),
])
def test_bad_job_options_are_one_line(tmp_path, options, message):
    result = run_cli(RWTHLM_PY, "nbest", "--nbest", DATA / "nbest", *ARPA_ONLY, *options, cwd=tmp_path)
    assert result[0] == 1
    assert_one_line_error(result, "rwthlm-py", message)


def run_jobs(count, arguments, cwd):
    """Runs the `count` jobs of a split run side by side (as a batch system does); their
    stdout and stderr."""
    processes = [subprocess.Popen([str(a) for a in [*RWTHLM_PY, *arguments, "--num-jobs", count, "--job", job]],
                                  cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for job in range(1, count + 1)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    return outputs


def joined(directory, name, count, keyed=False):
    """The parts name.1 ... name.J of the jobs, joined in job order (Kaldi's 1-best text
    sorted by key again, as `sort -s -k1,1` in the C locale does)."""
    lines = [line for job in range(1, count + 1) for line in content(directory / job_file_name(name, job))
             .splitlines(keepends=True)]
    return b"".join(sorted(lines, key=lambda line: line.split(b" ", 1)[0].strip()) if keyed else lines)


def content(path):
    """A file's bytes, decompressed where it is gzip'ed."""
    return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()


def wer_lines(text):
    return [line for line in text.splitlines() if "WER" in line]


def wer_totals(cwd, *logs):
    paths = []
    for k, log in enumerate(logs):
        (cwd / f"job{k}.log").write_text(log)
        paths.append(f"job{k}.log")
    status, out, err = run_cli(RWTHLM_PY, "wer-totals", *paths, cwd=cwd)
    assert status == 0, err
    return out.splitlines()


# -- n-best lists ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lists", [["--nbest", DATA / "nbest"],
                                   ["--kaldi", DATA / "kaldi" / "text", DATA / "kaldi" / "ac_cost",
                                    DATA / "kaldi" / "lm_cost"]])
def test_nbest_jobs_joined_are_one_run(tmp_path, lists):
    common = ["nbest", *lists, *ARPA_ONLY, "--lm-weight", 2, "--refs", DATA / "refs", "--noise-vocab",
              DATA / "noise"]
    status, one_out, err = run_cli(RWTHLM_PY, *common, "--out", "one", cwd=tmp_path)
    assert status == 0, err
    logs = run_jobs(2, [*common, "--out", "jobs"], tmp_path)
    shared = ["1best.txt"] + (["text", "ac_cost", "lm_cost"] if "--kaldi" in lists else [])
    for path in (tmp_path / "one").iterdir():
        if path.name in shared:
            assert joined(tmp_path / "jobs", path.name, 2) == path.read_bytes(), path.name
        else:
            assert (tmp_path / "jobs" / path.name).read_bytes() == path.read_bytes(), path.name
    assert sorted(path.name for path in (tmp_path / "jobs").iterdir()) == sorted(
        [f"{name}.{job}" for name in shared for job in (1, 2)]
        + [path.name for path in (tmp_path / "one").iterdir() if path.name not in shared])
    parts = [wer_lines(out) for out, _ in logs]
    assert all(parts) and parts[0] != parts[1]  # each job counted its own utterances
    assert wer_totals(tmp_path, *(out + err for out, err in logs)) == wer_lines(one_out)


# -- lattices ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_lattice_model(tmp_path_factory.mktemp("model"))


def htk_lattices(folder, model):
    """Five hand lattices of different acoustic scores (utt0 ... utt4, utt2 gzip'ed) and
    their references; returns their file names."""
    shutil.copy(model, folder / MODEL)
    names, references = [], []
    for k in range(5):
        text = HAND_LATTICE.replace("W=</s>", "W=<sb>").replace("a=-30.0", f"a=-{27 + 2 * k}.0")
        name = f"utt{k}.lat" + (".gz" if k == 2 else "")
        if k == 2:
            (folder / name).write_bytes(gzip.compress(text.encode()))
        else:
            (folder / name).write_text(text + "\n" * (k * 40))  # sizes differ
        names.append(name)
        references.append(f"utt{k} the {'cat' if k % 2 else 'dog'} sees")
    (folder / "refs").write_text("\n".join(references) + "\n")
    return names


def kaldi_archives(folder, model):
    """big.ark.gz (seven utterances, keys in no sorted order) and compact.ark, words.txt
    and the references."""
    shutil.copy(model, folder / MODEL)
    for name in ("words.txt", "compact.ark"):
        shutil.copy(KALDI_DATA / name, folder / name)
    lattices = [block for block in (KALDI_DATA / "compact.ark").read_text().split("\n\n") if block.strip()]
    archive, references = [], ["utt1 the dog sees", "spk-b dog"]
    for k, key in enumerate(["zed-1", "alpha", "mid", "beta-2", "omega", "kappa", "delta"]):
        lines = lattices[k % 2].splitlines()
        lines = [f"{key} "] + [with_acoustic_cost_added(line, k) for line in lines[1:]]
        archive.append("\n".join(lines))
        references.append(f"{key} the cat sees" if k % 3 else f"{key} dog")
    (folder / "big.ark.gz").write_bytes(gzip.compress(("\n\n".join(archive) + "\n\n").encode()))
    (folder / "refs").write_text("\n".join(references) + "\n")
    return ["big.ark.gz", "compact.ark"]


def with_acoustic_cost_added(line, cost):
    """An arc or final line of a CompactLattice with `cost` added to its acoustic cost."""
    fields = line.split("\t")
    weight = fields[-1].split(",")
    weight[1] = f"{float(weight[1]) + cost:g}"
    return "\t".join(fields[:-1] + [",".join(weight)])


KALDI_SHARED = ["rescored", "1best", "nbest", "nbest.ac_cost", "nbest.lm_cost"]


def test_htk_lattice_jobs_into_one_directory_are_one_run(tmp_path, model):
    names = htk_lattices(tmp_path, model)
    status, one_out, err = run_cli(RWTHLM_PY, *HTK_RESCORING, "--out", "one", *names, MODEL, cwd=tmp_path)
    assert status == 0, err
    logs = run_jobs(2, [*HTK_RESCORING, "--out", "jobs", *names, MODEL], tmp_path)
    files = sorted(path.name for path in (tmp_path / "one").iterdir())
    assert sorted(path.name for path in (tmp_path / "jobs").iterdir()) == files  # an HTK lattice's outputs are its own
    for name in files:
        assert (tmp_path / "jobs" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    printed = [rescoring_lines(out) for out, _ in logs]
    assert "lattice 'utt0.lat' ..." in printed[0] and "lattice 'utt4.lat' ..." in printed[1]
    assert printed[0] + printed[1] == rescoring_lines(one_out)
    assert wer_totals(tmp_path, *(out for out, _ in logs)) == wer_lines(one_out)


def rescoring_lines(out):
    """The lines of the lattices: after `Rescoring ...`, before the WER lines."""
    lines = out.splitlines()
    return [line for line in lines[lines.index("Rescoring ...") + 1:] if "WER" not in line]


def test_kaldi_archive_jobs_share_every_archive(tmp_path, model):
    """Three jobs, each a block of every archive's utterances (compact.ark's two: one job
    gets none and writes empty parts)."""
    archives = kaldi_archives(tmp_path, model)
    status, one_out, err = run_cli(RWTHLM_PY, *KALDI_RESCORING, "--out", "one", *archives, MODEL, cwd=tmp_path)
    assert status == 0, err
    logs = run_jobs(3, [*KALDI_RESCORING, "--out", "jobs", *archives, MODEL], tmp_path)
    for archive in archives:
        for suffix in KALDI_SHARED:
            name = f"{archive[:-3]}.{suffix}.gz" if archive.endswith(".gz") else f"{archive}.{suffix}"
            assert joined(tmp_path / "jobs", name, 3, keyed=suffix == "1best") == content(tmp_path / "one" / name), \
                name
    assert all(out.count("lattice '") for out, _ in logs)
    assert wer_totals(tmp_path, *(out for out, _ in logs)) == wer_lines(one_out)


def test_wer_totals_names_files_without_lines_and_refuses_broken_ones(tmp_path):
    one = "x\noriginal 1-best:  WER 50.00% [ 1 / 2, 0 ins, 1 del, 0 sub ]\nrescored 1-best:  WER 0.00% [ 0 / 2, 0 " \
          "ins, 0 del, 0 sub ]\noracle:           WER 0.00% [ 0 / 2, 0 ins, 0 del, 0 sub ]\n"
    other = one.replace("[ 1 / 2, 0 ins, 1 del", "[ 2 / 3, 1 ins, 1 del").replace("/ 2", "/ 3")
    (tmp_path / "a.log").write_text(one)
    (tmp_path / "b.log").write_text(other)
    (tmp_path / "empty.log").write_text("rescored 0 lattices\n")
    status, out, err = run_cli(RWTHLM_PY, "wer-totals", "a.log", "empty.log", "b.log", cwd=tmp_path)
    assert status == 0, err
    assert out.splitlines() == ["original 1-best:  WER 60.00% [ 3 / 5, 1 ins, 2 del, 0 sub ]",
                                "rescored 1-best:  WER 0.00% [ 0 / 5, 0 ins, 0 del, 0 sub ]",
                                "oracle:           WER 0.00% [ 0 / 5, 0 ins, 0 del, 0 sub ]"]
    assert err == "empty.log: no WER lines (a job run without --refs, or one that counted no utterance)\n"
    (tmp_path / "twice.log").write_text(one + one)
    assert_one_line_error(run_cli(RWTHLM_PY, "wer-totals", "a.log", "twice.log", cwd=tmp_path), "rwthlm-py",
                          "twice.log:6: a second 'original 1-best:' WER line")
    assert_one_line_error(run_cli(RWTHLM_PY, "wer-totals", "empty.log", cwd=tmp_path), "rwthlm-py",
                          "empty.log: no WER lines")
    with pytest.raises(InputError, match="no 'oracle:' WER line"):
        (tmp_path / "cut.log").write_text("\n".join(one.splitlines()[:3]))
        sum_error_lines([tmp_path / "cut.log"])


# -- MPI: rank 0 prints and writes what one process does ----------------------------------------------

def ranks_and_one(tmp_path, arguments, out_option=True, ranks=2):
    """(one process's stdout, `ranks` ranks' stdout), each run writing into its own --out."""
    one = run_cli(RWTHLM_PY, *arguments(["--out", "one"] if out_option else []), cwd=tmp_path)
    assert one[0] == 0, one[2]
    ranks = run_ranks(ranks, ["-m", "rwthlm_py", *map(str, arguments(["--out", "mpi"] if out_option else []))],
                      cwd=tmp_path)
    assert ranks.returncode == 0, ranks.stderr
    return one[1], ranks.stdout


def assert_same_folders(first, second):
    names = sorted(path.name for path in first.iterdir())
    assert sorted(path.name for path in second.iterdir()) == names and names
    for name in names:
        assert (second / name).read_bytes() == (first / name).read_bytes(), name


def test_mpi_ranks_rescore_kaldi_archives_as_one_process(tmp_path, model):
    archives = kaldi_archives(tmp_path, model)
    one, ranks = ranks_and_one(tmp_path, lambda out: [*KALDI_RESCORING, *out, *archives, MODEL])
    assert ranks == one and one.count("lattice '") == 9
    assert_same_folders(tmp_path / "one", tmp_path / "mpi")


def test_mpi_ranks_rescore_htk_lattices_and_nbest_lists_as_one_process(tmp_path, model):
    names = htk_lattices(tmp_path, model)
    one, ranks = ranks_and_one(tmp_path, lambda out: [*HTK_RESCORING, *out, *names, MODEL], ranks=3)
    assert ranks == one and "WER" in one  # 5 lattices on 3 ranks: rank 0 prints the others' lines in rank order
    assert_same_folders(tmp_path / "one", tmp_path / "mpi")
    lists = ["--kaldi", DATA / "kaldi" / "text", DATA / "kaldi" / "ac_cost", DATA / "kaldi" / "lm_cost"]
    one, ranks = ranks_and_one(tmp_path, lambda out: ["nbest", *lists, *ARPA_ONLY, "--lm-weight", 2], False)
    assert ranks == one and len(one.splitlines()) == 2  # the 1-best lines, in order
    shutil.rmtree(tmp_path / "one")
    shutil.rmtree(tmp_path / "mpi")
    one, ranks = ranks_and_one(tmp_path, lambda out: ["nbest", "--nbest", DATA / "nbest", *ARPA_ONLY, "--refs",
                                                      DATA / "refs", *out])
    assert ranks == one and len(wer_lines(one)) == 3
    assert_same_folders(tmp_path / "one", tmp_path / "mpi")


def test_mpi_ranks_compute_one_processs_perplexity(tmp_path):
    (tmp_path / "train.txt").write_text("\n".join(toy_sentences(200, 1)) + "\n")
    (tmp_path / "test.txt").write_text("\n".join(toy_sentences(41, 3)) + "\n")
    status, _, err = run_cli(RWTHLM_PY, "train", "--train", "train.txt", "--dev", "train.txt", "--batch-size", 8,
                             "--sequence-length", 12, "--learning-rate", 0.05, "--max-epoch", 1, "toy-i8-m8",
                             cwd=tmp_path)
    assert status == 0, err
    for wrapping in ("verbatim", "stream"):  # stream: each batch goes on from the one before
        command = ["ppl", "--ppl", "test.txt", "--word-wrapping", wrapping, "--batch-size", 3, "--verbose",
                   "toy-i8-m8"]
        one, ranks = ranks_and_one(tmp_path, lambda out, command=command: command, False)
        assert ranks == one and one.count("\tp( ") > 200 and "perplexity:" in one


class TwoRanks(World):
    """Rank 0 of two, the other rank's part given: what a gather on rank 0 returns."""

    size = 2

    def __init__(self, other_part):
        self.other_part = other_part

    def gather(self, value):
        return [value, self.other_part]


def test_rank_0_adds_the_batch_sums_in_batch_order():
    """Rank 0's own batches first, then rank 1's, each added in turn as one process adds
    them: here rank 1's two sums, 1e16 and -1e16, take rank 0's fraction with them (a sum
    in any other order keeps it)."""
    vocab = remap([(word, k) for k, word in enumerate(["the", "cat", "dog", "sees", "feeds", "<unk>"])], "<sb>")
    network = Network.build(parse_network(MODEL), vocab, get_backend("numpy", "float64"), seed=4)
    lines = ["the cat sees the dog", "the dog feeds", "feeds cat", "the cat sees", "dog", "the dog", "cat", "sees"]
    corpus = data.corpus_from_lines(enumerate(lines, start=1), "text", vocab)
    sequences = data.wrap(corpus, "verbatim", 2, 10)
    share = Share(1, 2, TwoRanks(([(1e16, 1, 0), (-1e16, 1, 1)], None)))
    first_half = sequences.take(numpy.arange(4))  # batches 1 and 2 of 4 (of two lines each)
    own = score_corpus(network, corpus, first_half, 2)
    scores = score_corpus(network, corpus, sequences, 2, share=share)
    assert own.log_prob % 1 != 0 and scores.log_prob == (own.log_prob + 1e16) + -1e16 != own.log_prob
    assert (scores.num_targets, scores.num_sb) == (own.num_targets + 2, own.num_sb + 1)


def test_dependent_lattices_are_not_split(tmp_path, model):
    names = htk_lattices(tmp_path, model)
    result = run_cli(RWTHLM_PY, *HTK_RESCORING, "--dependent", "--num-jobs", 2, "--job", 1, *names, MODEL,
                     cwd=tmp_path)
    assert result[0] == 1
    assert_one_line_error(result, "rwthlm-py", "--dependent: each lattice starts from the state the one before it "
                                               "ended in, so its lattices cannot be split into jobs")


def test_num_jobs_under_mpi_is_one_error_line(tmp_path):
    result = run_ranks(2, ["-m", "rwthlm_py", "nbest", "--nbest", str(DATA / "nbest"), *map(str, ARPA_ONLY),
                           "--num-jobs", "2", "--job", "1"], cwd=tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("rwthlm-py")]
    assert errors == ["rwthlm-py (rank 0 of 2): error: --num-jobs: under MPI the 2 ranks split the work "
                      "themselves; give either --num-jobs with --job (separate jobs) or mpiexec, not both"]


def test_mpi_ranks_run_rwthlms_perplexity_and_lattices_as_one_process(tmp_path, model):
    """The `rwthlm` command splits --ppl and lattice rescoring among the ranks as rwthlm-py
    does: what rank 0 prints and the files the ranks write are one process's."""
    runs = {}
    (tmp_path / "one").mkdir()
    names = htk_lattices(tmp_path / "one", model)
    (tmp_path / "one" / "test.txt").write_text("the cat sees the dog\nthe dog feeds\n" * 7)
    shutil.copytree(tmp_path / "one", tmp_path / "mpi")
    for way in ("one", "mpi"):
        folder = tmp_path / way
        ppl = ["--ppl", "test.txt", "--word-wrapping", "verbatim", "--batch-size", 3, "--verbose", "--unk", MODEL]
        lattices = ["--lambda", 0.5, "--pruning-threshold", 0, "--dtype", "float64", *names, MODEL]
        if way == "one":
            results = [run_cli(RWTHLM, *arguments, cwd=folder) for arguments in (ppl, lattices)]
            assert all(status == 0 for status, _, _ in results), [err for _, _, err in results]
            runs[way] = [out for _, out, _ in results]
        else:
            program = RWTHLM_NOTING_WHAT_EACH_RANK_READS
            results = [run_ranks(2, ["-c", program, *map(str, arguments)], cwd=folder) for arguments in (ppl, lattices)]
            assert all(result.returncode == 0 for result in results), [result.stderr for result in results]
            runs[way] = [result.stdout for result in results]
    assert runs["mpi"] == runs["one"]
    assert runs["one"][0].count("\tp( ") >= 40 and "perplexity:" in runs["one"][0]
    read = {rank: (tmp_path / "mpi" / f"read.{rank}").read_text().split() for rank in (0, 1)}
    for rank in (0, 1):
        (tmp_path / "mpi" / f"read.{rank}").unlink()
    assert_same_folders(tmp_path / "one", tmp_path / "mpi")
    assert len(list((tmp_path / "one").glob("*.rescored*"))) == 5
    assert read[0] and read[1] and sorted(read[0] + read[1]) == sorted(names)  # each lattice read by one rank


RWTHLM_NOTING_WHAT_EACH_RANK_READS = """
import sys
from rwthlm_py.cli import rwthlm_main
from rwthlm_py.rescoring import lattice_command
from rwthlm_py.runtime import distributed
read_lattice = lattice_command.read_lattice

def noted(path, *rest):
    with open(f"read.{distributed.world().rank}", "a") as out:
        out.write(f"{path}\\n")
    return read_lattice(path, *rest)

lattice_command.read_lattice = noted
sys.exit(rwthlm_main())
"""


def test_a_jobs_part_of_an_archives_output_never_overwrites_an_input(tmp_path, model):
    """Job 1's part of a.ark's rescored archive is a.ark.rescored.1: given as an input too,
    it is refused before anything is written."""
    shutil.copy(model, tmp_path / MODEL)
    for name in ("words.txt", "compact.ark"):
        shutil.copy(KALDI_DATA / name, tmp_path / name)
    shutil.copy(KALDI_DATA / "compact.ark", tmp_path / "compact.ark.rescored.1")
    before = (tmp_path / "compact.ark.rescored.1").read_bytes()
    result = run_cli(RWTHLM_PY, "lattice", "--kaldi-words", "words.txt", "--lambda", 0.5, "--pruning-threshold", 0,
                     "--num-jobs", 2, "--job", 1, "compact.ark", "compact.ark.rescored.1", MODEL, cwd=tmp_path)
    assert_one_line_error(result, "rwthlm-py", "compact.ark.rescored.1: the rescored output of LATTICE compact.ark "
                                               "(this job's part) would overwrite LATTICE")
    assert (tmp_path / "compact.ark.rescored.1").read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["words.txt", "compact.ark", "compact.ark.rescored.1", MODEL])
