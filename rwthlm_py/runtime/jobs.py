"""Which part of the inputs a process takes when a run is split into jobs, and how the
parts come together again.

A rescoring run (`rwthlm-py nbest`, `rwthlm-py lattice`) splits two ways:

- `--num-jobs J --job I`, I from 1 to J as Kaldi's `JOB=1:J` and Slurm's `--array=1-J`
  count: J processes that a batch system starts, each taking part I of the inputs. Each
  writes its own outputs; an output that the whole run shares (a 1best.txt, a Kaldi
  archive's rescored lattices) gets the job number in its name, `.I` appended before a
  trailing `.gz` (`job_file_name`), so that jobs writing into one place never collide.
- Under an MPI launcher (`mpiexec -n N`), rank R takes part R + 1 of N and rank 0 speaks
  for the job: the other ranks' printed lines are gathered and printed by rank 0 in rank
  order (`Share.console`, `Share.print_gathered`), totals are summed (`Share.sum`), and
  the parts of a shared output are joined into the one file a single process writes
  (`Share.join_parts`).

The parts are contiguous blocks of the inputs in their given order (`blocks`), so that
the parts joined in job order are the inputs' order: the outputs of J jobs, or of N
ranks, joined are those of one process (byte for byte in float64; in float32 a part
batches its hypotheses otherwise than the whole run, which can move a score's last
printed digit). A block is balanced by a size of
each input that costs nothing to know (a file's bytes, an utterance's lines or
hypotheses) rather than by count, so that the jobs take about equally long; with equal
sizes it is Kaldi's split into contiguous blocks by count. Every job computes the same
blocks from the same inputs, so the split needs no coordination.
"""

import contextlib
import dataclasses
import os
import shutil

from rwthlm_py.errors import InputError
from rwthlm_py.output.reporting import Console
from rwthlm_py.runtime.distributed import World
from rwthlm_py.text.textio import atomic_output, open_binary


def blocks(sizes, count):
    """The `count` contiguous blocks of items of the given sizes, as (start, end) index
    pairs, block k holding the items whose middle lies in the k-th `count`-th of the
    total size (integers, so that every process gets the same answer); sizes all zero
    count as equal. A block may be empty where there are fewer items than blocks."""
    sizes = [max(int(size), 0) for size in sizes]
    if not any(sizes):
        sizes = [1] * len(sizes)
    total = sum(sizes)
    starts, before = [0] * (count + 1), 0
    owner = 0
    for index, size in enumerate(sizes):
        block = min(count * (2 * before + size) // (2 * total), count - 1)
        while owner < block:
            owner += 1
            starts[owner] = index
        before += size
    for block in range(owner + 1, count + 1):
        starts[block] = len(sizes)
    return [(starts[k], starts[k + 1]) for k in range(count)]


def file_sizes(paths):
    """The bytes of each file, the measure of its work (0 for one that cannot be read: its
    error comes when its turn comes)."""
    sizes = []
    for path in paths:
        try:
            sizes.append(os.path.getsize(path))
        except OSError:
            sizes.append(0)
    return sizes


def job_file_name(path, number):
    """x.ark.1best -> x.ark.1best.3, x.ark.rescored.gz -> x.ark.rescored.3.gz: the name of
    job `number`'s part of a shared output."""
    path = os.fspath(path)
    if path.endswith(".gz"):
        return f"{path[:-3]}.{number}.gz"
    return f"{path}.{number}"


@dataclasses.dataclass(frozen=True)
class Share:
    """This process's part of a run: job `number` (from 1) of `count`, and the MPI ranks
    that run it together (`ranks`, a World of more than one) or None for separate jobs
    (or a run of one)."""

    number: int = 1
    count: int = 1
    ranks: World | None = None
    named: bool = False  # --num-jobs given: shared outputs carry the job number

    @property
    def merges(self):
        """Whether this is one of several MPI ranks, rank 0 merging their results."""
        return self.ranks is not None

    @property
    def is_root(self):
        """Whether this process prints the run's lines and totals (rank 0, or any separate job)."""
        return self.ranks is None or self.ranks.is_root

    def block(self, sizes):
        """(start, end) of this job's block of items of the given sizes."""
        return blocks(sizes, self.count)[self.number - 1]

    def take(self, items, sizes=None):
        """This job's block of `items` (all of them for a run of one)."""
        items = list(items)
        if self.count == 1:
            return items
        start, end = self.block([1] * len(items) if sizes is None else sizes)
        return items[start:end]

    def output_name(self, path):
        """Where this job writes its part of the shared output `path`: `path` itself for a
        run of one, else job_file_name."""
        return job_file_name(path, self.number) if self.named or self.merges else path

    # -- MPI: rank 0 merges ----------------------------------------------------------------

    def console(self, console):
        """The console this process's lines of the work go to: `console` on rank 0 (and in
        a separate job); on the other ranks a LineRecorder, whose lines print_gathered
        hands to rank 0."""
        return console if self.is_root else LineRecorder()

    def print_gathered(self, worker, console):
        """Rank 0 prints the lines the other ranks' LineRecorders (`worker`) kept, rank by
        rank, on `console`; nothing to do without MPI."""
        if not self.merges:
            return
        gathered = self.ranks.gather(worker.take_lines() if isinstance(worker, LineRecorder) else [])
        for lines in (gathered or [])[1:]:
            for stream, line in lines:
                (console.say if stream == "out" else console.note)(line)

    def sum(self, values):
        """The sums over the ranks of a list of integers (counts), on every rank."""
        if not self.merges:
            return list(values)
        return [int(total) for total in self.ranks.sum([float(value) for value in values])]

    def sum_floats(self, values):
        """The sums over the ranks of a list of numbers, in float64, on every rank."""
        if not self.merges:
            return list(values)
        return list(self.ranks.sum(list(values)))

    def any(self, flag):
        """Whether `flag` is true on any rank."""
        return bool(flag) if not self.merges else any(self.ranks.all_gather(bool(flag)))

    def join_parts(self, targets, keyed=()):
        """Rank 0 joins every rank's part of each shared output in `targets` into the
        target, once every rank has written its parts, and removes the parts: one after
        the other in rank order, or for the `keyed` ones (`key words` lines, each part
        sorted by key in C-locale order) sorted by key again, the parts' order kept among
        equal keys. `.gz` names are decompressed and compressed again, as one process
        writes them. A target that a rank wrote no part of (its input failed there) is
        left unwritten, as one process leaves it, and its parts are removed."""
        if not self.merges:
            return
        self.ranks.barrier()
        if self.ranks.is_root:
            for target in targets:
                _join(target, [job_file_name(target, number) for number in range(1, self.count + 1)],
                      target in keyed)
        self.ranks.barrier()


def _join(target, parts, keyed):
    present = [os.path.exists(part) for part in parts]
    if all(present):
        with atomic_output(target, binary=True) as joined:
            if keyed:
                lines = [line for part in parts for line in _raw_lines(part)]
                joined.writelines(sorted(lines, key=lambda line: line.rstrip(b"\n").split(b" ", 1)[0]))
            else:
                for part in parts:
                    with open_binary(part) as handle:
                        shutil.copyfileobj(handle, joined)
            joined.flush()  # as the last flush of a text output: a .gz ends in the same bytes
    for part, exists in zip(parts, present, strict=True):
        if exists:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)


def _raw_lines(path):
    with open_binary(path) as handle:
        return handle.readlines()


class LineRecorder(Console):
    """A Console that keeps its lines, stdout's and stderr's in their order, instead of
    printing them; its progress lines go nowhere."""

    def __init__(self):
        super().__init__()
        self.silence()
        self.lines = []

    def say(self, line=""):
        self.lines.append(("out", line))

    def note(self, line):
        self.lines.append(("err", line))

    def take_lines(self):
        """The lines kept so far, which are then forgotten."""
        lines, self.lines = self.lines, []
        return lines


def share_of(num_jobs, job, ranks):
    """The Share of a process from --num-jobs and --job (None where not given; checked by
    config.validate) and the MPI World `ranks`; --num-jobs under several MPI ranks is an
    error."""
    if ranks.size > 1:
        if num_jobs is not None:
            refuse(ranks, InputError(f"--num-jobs: under MPI the {ranks.size} ranks split the work themselves; "
                                     "give either --num-jobs with --job (separate jobs) or mpiexec, not both"))
        return Share(ranks.rank + 1, ranks.size, ranks)
    if num_jobs is None:
        return Share()
    return Share(job, num_jobs, named=True)


def refuse(ranks, error):
    """Raises `error` on rank 0, whose one error line ends the job; the other ranks, which
    found the same, wait to be ended with it rather than print it once more each."""
    if not ranks.is_root:
        ranks.barrier()  # never passes: rank 0 does not come here
    raise error


ONE_JOB = Share()
