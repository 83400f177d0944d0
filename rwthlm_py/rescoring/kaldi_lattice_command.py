"""`rwthlm-py lattice --kaldi-words words.txt ARCHIVE... NETWORK`: Kaldi text archives
(`lattice-copy ... ark,t:`) rescored with rwthlm's search, utterance by utterance, and
written back as Kaldi archives.

Each utterance's lattice becomes the search's (kaldi_conversion), whose combination is
Kaldi's log-linear one: a word arc's new graph cost is its graph cost + lambda (-ln p_nn),
what `lattice-lmrescore-kaldi-rnnlm --lm-scale=lambda` adds (the old LM taken out before,
as Kaldi's scripts do, with `lattice-lmrescore --lm-scale=-lambda`); --acoustic-scale is
Kaldi's acwt, --dp-order N its --max-ngram-order N+1. Written, per archive x.ark or
x.ark.gz (next to it, or under --out; the suffix goes before `.gz`):

    x.ark.rescored   the context-expanded lattices (a state per surviving hypothesis), in
                     the form they were read (CompactLattice or Lattice), for
                     `lattice-copy ark,t:- ark:-`
    x.ark.1best      `key w1 w2 ...`, the rescored best paths' words (epsilon left out),
                     sorted by key in C-locale order: Kaldi's `text`, for compute-wer
    --nbest N:       x.ark.nbest, x.ark.nbest.ac_cost, x.ark.nbest.lm_cost: the N best
                     distinct word sequences as lattice-to-nbest and nbest-to-linear give
                     them, `<key>-<n> w1 w2 ...` and `<key>-<n> cost` (the unscaled
                     acoustic cost; the graph cost), for `rwthlm-py nbest --kaldi`

Printed (stdout): `Rescoring ...`, per archive `archive '<file>' ...`, per utterance
`lattice '<key>' ...`, the search's pruning lines, `single best: <cost>` and a line
`\\tW=<word>\\tl=<new ln p>` per link of the best path (the last one the final </s>);
with --refs (keyed by utterance) the word error rates of the lattices' own best paths,
the rescored ones and the oracles. An utterance that cannot be rescored (a cycle, an
unknown word, ...) is one error line and is left out of the outputs, as
lattice-lmrescore-kaldi-rnnlm leaves out those it fails on; an archive that cannot be read
is one error line and gets no outputs; the others go on and the exit status is then 1.

Split into jobs (--num-jobs J --job I, or the ranks of mpiexec; runtime/jobs.py), job I
rescores the I-th contiguous block of every archive's utterances, balanced by their
lines, and writes its parts under job names (x.ark.rescored.I, x.ark.1best.I, ...): the
parts in job order are the archive's outputs (x.ark.1best sorted by key again). Under
MPI rank 0 prints every rank's lines archive by archive, joins the parts into the
outputs of one process, and an archive that fails on one rank gets none.
"""

import contextlib
import dataclasses

from rwthlm_py.errors import InputError, WriteError
from rwthlm_py.model.scoring_step import scoring_step
from rwthlm_py.rescoring.kaldi_conversion import from_expanded, network_words, to_search_lattice
from rwthlm_py.rescoring.kaldi_lattice import (
    EPSILON_ID,
    Final,
    count_lattices,
    format_cost,
    lattice_lines,
    lattice_sizes,
    read_archive,
    read_symbols,
)
from rwthlm_py.rescoring.lattice_command import RescoringTimer, output_paths, staged_outputs
from rwthlm_py.rescoring.lattice_expansion import distinct_best_paths
from rwthlm_py.rescoring.lattice_oracle import oracle_words, viterbi_links
from rwthlm_py.rescoring.lattice_search import Search
from rwthlm_py.rescoring.lattice_topology import lattice_topology
from rwthlm_py.rescoring.scores import link_cost
from rwthlm_py.rescoring.wer import WordErrorTally, align_counts, read_noise_words, read_references
from rwthlm_py.runtime.jobs import ONE_JOB
from rwthlm_py.text.textio import atomic_output, refuse_overwriting_inputs

DEFAULT_FRAME_SHIFT = 0.01
HTK_ONLY = ("clear_initial_links", "set_sb_last", "set_sb_next_to_last")
OUTPUT_SUFFIXES = {"lattices": "rescored", "best": "1best", "nbest": "nbest", "nbest_acoustic": "nbest.ac_cost",
                   "nbest_lm": "nbest.lm_cost"}


@dataclasses.dataclass(frozen=True)
class KaldiRescoring:
    """The LatticeRescoring (its search log-linear) and what Kaldi archives add: the symbol
    table (--kaldi-words) and the frame shift in seconds (--frame-shift)."""

    rescoring: object
    words: str
    frame_shift: float = DEFAULT_FRAME_SHIFT


def kaldi_rescoring(options, rescoring):
    """The KaldiRescoring of the options where --kaldi-words is given (the LatticeRescoring
    `rescoring` with Kaldi's combination), else None; the options that only HTK lattices
    take are refused with it, --frame-shift without it."""
    if options.kaldi_words is None:
        if options.frame_shift is not None:
            raise InputError("--frame-shift: only with --kaldi-words (HTK lattices give their times)")
        return None
    for name in HTK_ONLY:
        if getattr(options, name):
            raise InputError(f"--{name.replace('_', '-')}: only for HTK lattices, not with --kaldi-words")
    if options.output != "lattice":
        raise InputError("--output: only for HTK lattices; Kaldi archives are written back as Kaldi archives "
                         "(and their 1-best as Kaldi text)")
    search_options = dataclasses.replace(rescoring.search, combination="loglinear")
    frame_shift = DEFAULT_FRAME_SHIFT if options.frame_shift is None else options.frame_shift
    return KaldiRescoring(dataclasses.replace(rescoring, search=search_options), options.kaldi_words, frame_shift)


@dataclasses.dataclass
class ArchiveOutputs:
    """Where an archive's outputs go (the n-best files None without --nbest)."""

    lattices: str
    best: str
    nbest: str = None
    nbest_acoustic: str = None
    nbest_lm: str = None


def archive_outputs(paths, kaldi, share=ONE_JOB):
    """The ArchiveOutputs of every archive; none may be an input or another output, nor may
    the part of it that this job (runtime.jobs.Share `share`) writes."""
    outputs = kaldi.rescoring.outputs
    names = [name for name in OUTPUT_SUFFIXES if outputs.nbest_size or not name.startswith("nbest")]
    targets = {name: output_paths(paths, OUTPUT_SUFFIXES[name], outputs.out) for name in names}
    rescoring = kaldi.rescoring
    inputs = [("LATTICE", path) for path in paths] + [("--kaldi-words", kaldi.words), ("--refs", rescoring.refs),
                                                      ("--noise-vocab", rescoring.noise_vocab)]
    written = [(f"the {OUTPUT_SUFFIXES[name]} output of LATTICE {path}", target)
               for name in names for path, target in zip(paths, targets[name], strict=True)]
    parts = [(f"{role} (this job's part)", share.output_name(target)) for role, target in written
             if target is not None and share.output_name(target) != target]
    refuse_overwriting_inputs(written + parts, inputs)
    return [ArchiveOutputs(**{name: targets[name][k] for name in names}) for k in range(len(paths))]


def rescore_kaldi_archives(network, paths, kaldi, console, program="rwthlm-py", share=ONE_JOB):
    """Rescores every utterance of the archives `paths` as the KaldiRescoring says, or this
    job's part of them (runtime.jobs.Share): a contiguous block of every archive's
    utterances, balanced by their lines, written under the job's names of the outputs
    (x.ark.rescored.3); under MPI rank 0 prints every rank's lines, archive by archive,
    and the totals, and joins the parts into the outputs one process writes. Returns the
    exit status."""
    rescoring = kaldi.rescoring
    symbols = read_symbols(kaldi.words, rescoring.encoding)
    targets = archive_outputs(paths, kaldi, share)
    errors = WordErrorTally(rescoring.refs, read_references(rescoring.refs, rescoring.encoding),
                            read_noise_words(rescoring.noise_vocab, rescoring.encoding)) if rescoring.refs else None
    console.say("Rescoring ...")
    parts = [_utterances_of_job(path, share) for path in paths]
    progress = console.progress("rescoring", sum(len(part) if part is not None else count_lattices(path)
                                                 for path, part in zip(paths, parts, strict=True)), unit="lattices")
    run = _Run(network, symbols, kaldi, errors, share.console(console), program, progress, share)
    with staged_outputs(rescoring.outputs.out, console.note) as stage:
        for path, outputs, part in zip(paths, targets, parts, strict=True):
            console.say(f"archive '{path}' ...")
            staged = ArchiveOutputs(**{name: stage(None if target is None else share.output_name(target))
                                       for name, target in dataclasses.asdict(outputs).items()})
            run.archive(path, staged, part)
            share.print_gathered(run.console, console)
    share.join_parts([target for outputs in targets for target in dataclasses.astuple(outputs) if target is not None],
                     keyed=[outputs.best for outputs in targets])
    return run.finish(len(paths), console)


def _utterances_of_job(path, share):
    """The places (a range) of the utterances of the archive `path` that this job rescores,
    or None for all of them (a run of one)."""
    if share.count == 1:
        return None
    return range(*share.block(lattice_sizes(path)))


@dataclasses.dataclass
class _Rescored:
    """One utterance's results: its outputs' lines, and its word error counts (or None)."""

    lattice_lines: list
    best_line: str
    nbest: list  # (key, words, acoustic cost, graph cost)
    error_counts: list
    audio_seconds: float
    final_state: object


@dataclasses.dataclass
class _Utterance:
    """One utterance on its way: its conversion, its Search and result, or its error."""

    kaldi_lattice: object
    converted: object = None
    topology: object = None
    words: list = None
    reference: list = None
    search: object = None
    result: object = None
    error: InputError = None


class _Run:
    """The archives of one run, one after the other, and the totals."""

    def __init__(self, network, symbols, kaldi, errors, console, program, progress, share=ONE_JOB):
        self.network, self.symbols, self.kaldi, self.share = network, symbols, kaldi, share
        self.rescoring = kaldi.rescoring
        self.errors, self.console, self.program = errors, console, program
        self.failed = self.unreadable = self.done = 0
        self.audio_seconds = 0.0
        self.state = None  # --dependent: the state after the previous best path
        self.timer = RescoringTimer(scoring_step(network))  # also steps the network, one scorer for the run
        self.progress = progress

    def archive(self, path, outputs, wanted=None):
        """Rescores the utterances of one archive (those whose places are `wanted`, or all)
        and writes its outputs, all or none; an archive that fails on any rank of an MPI
        job counts once, and its counts on no rank."""
        encoding = self.rescoring.encoding
        best_lines, counts, audio, done, state = [], [], 0.0, 0, self.state
        try:
            with contextlib.ExitStack() as stack:
                lattices = stack.enter_context(atomic_output(outputs.lattices, encoding=encoding))
                nbest = None
                if outputs.nbest is not None:
                    nbest = [stack.enter_context(atomic_output(target, encoding=encoding))
                             for target in (outputs.nbest, outputs.nbest_acoustic, outputs.nbest_lm)]
                for kaldi_lattice, rescored in self.utterances(read_archive(path, encoding, wanted), state):
                    self.progress.update(1)
                    if rescored is None:
                        continue
                    with self.timer.timing("writing"):
                        lattices.write("".join(line + "\n" for line in rescored.lattice_lines))
                        if nbest is not None:
                            _write_nbest(nbest, rescored.nbest)
                    best_lines.append((kaldi_lattice.key.encode(encoding), rescored.best_line))
                    counts.append(rescored.error_counts)
                    audio, done = audio + rescored.audio_seconds, done + 1
                    state = rescored.final_state
                with atomic_output(outputs.best, encoding=encoding) as handle:
                    for _, line in sorted(best_lines, key=lambda item: item[0]):  # C locale: by bytes
                        handle.write(line + "\n")
        except WriteError:
            raise  # a full disk fails every archive after this one: stop here
        except InputError as error:
            self.console.note(f"{self.program}: error: {error} (no outputs written for this archive)")
            self.share.any(True)
            self.unreadable += 1
            return
        if self.share.any(False):  # another rank's part of the archive failed
            self.unreadable += 1
            return
        if self.errors is not None:
            for original, rescored, oracle in counts:
                self.errors.add(original, rescored, oracle)
        self.audio_seconds, self.done, self.state = self.audio_seconds + audio, self.done + done, state

    def utterances(self, kaldi_lattices, state):
        """(Kaldi lattice, _Rescored or None where it failed) of every utterance, each
        searched beside up to LATTICES_TOGETHER - 1 others (RescoringTimer.searched); each
        utterance's lines are printed together, in the archive's order. `state` starts the
        first one with --dependent (the utterances then go one at a time)."""

        def prepared():  # each when the search takes it: with --dependent after the one before is finished
            for kaldi_lattice in kaldi_lattices:
                yield self._prepare(kaldi_lattice, state)

        for utterance in self.timer.searched(prepared(), self.rescoring):
            rescored = self._finish(utterance)
            if rescored is not None:
                state = rescored.final_state
            yield utterance.kaldi_lattice, rescored

    def _prepare(self, kaldi_lattice, state):
        """An utterance converted and its Search set up (or the InputError that stopped it)."""
        utterance = _Utterance(kaldi_lattice)
        try:
            with self.timer.timing("reading"):
                utterance.converted = to_search_lattice(kaldi_lattice, self.symbols, self.kaldi.frame_shift)
                lattice = utterance.converted.lattice
                utterance.topology = lattice_topology(lattice)
                utterance.words = network_words(utterance.converted, self.network.vocab, self.rescoring.unk,
                                                self.rescoring.map_unk)
            if self.errors is not None:  # before the search: an utterance without one fails at once
                utterance.reference = self.errors.reference(kaldi_lattice.key,
                                                            naming="a lattice's key in its archive")
            utterance.search = Search(self.network, lattice, utterance.topology, utterance.words,
                                      self.rescoring.search, state if self.rescoring.dependent else None)
        except InputError as error:
            utterance.error = error
        return utterance

    def _finish(self, utterance):
        """The utterance's lines printed, its results made (a _Rescored), or None where it failed."""
        self.console.say(f"lattice '{utterance.kaldi_lattice.key}' ...")
        try:
            if utterance.error is not None:
                raise utterance.error
            return self._rescored(utterance)
        except WriteError:
            raise
        except InputError as error:
            self.console.note(f"{self.program}: error: {error}")
            self.failed += 1
            return None

    def _rescored(self, utterance):
        options, console, result = self.rescoring.search, self.console, utterance.result
        converted, topology, words = utterance.converted, utterance.topology, utterance.words
        lattice, kaldi_lattice = converted.lattice, utterance.kaldi_lattice
        for line in result.pruning_lines:
            console.say(line)
        console.say(f"single best: {result.cost:g}")
        for link_id in result.best_links:
            console.say(f"\tW={lattice.links[link_id].word}\tl={result.link_lm[link_id] + 0.0:g}")  # no -0
        arcs, finals, (times, links) = from_expanded(converted, result, topology)
        counts = None
        if utterance.reference is not None:
            counts = self._error_counts(converted, topology, result.best_links, utterance.reference)
        best_words = _words(converted, result.best_links)
        nbest = []
        if self.rescoring.outputs.nbest_size:
            nbest = _nbest(converted, words, times, links, options, self.rescoring.outputs.nbest_size)
        return _Rescored(lattice_lines(kaldi_lattice.key, kaldi_lattice.compact, arcs, finals),
                         " ".join([kaldi_lattice.key] + best_words), nbest, counts, lattice.nodes[-1].time,
                         result.final_state)

    def _error_counts(self, converted, topology, best_links, reference):
        """The ErrorCounts of the lattice's own best path, the rescored one (`best_links`)
        and the oracle against `reference` (the words of the arcs, noise left out)."""
        options, noise = self.rescoring.search, self.errors.noise

        def word_of(link):
            origin = converted.origins[link.id]
            if isinstance(origin, Final) or origin.word == EPSILON_ID or link.word in noise:
                return None
            return link.word

        lattice = converted.lattice
        own = viterbi_links(lattice, topology, options.lm_scale, options.acoustic_scale, options.word_penalty)
        hypotheses = [[word for word in map(word_of, (lattice.links[k] for k in links)) if word is not None]
                      for links in (own, best_links)]
        hypotheses.append(oracle_words(lattice, topology, reference, word_of))
        return align_counts(reference, hypotheses)

    def finish(self, archives, console):
        """The totals on `console` (under MPI: of every rank, on rank 0); the exit status."""
        self.progress.close()
        share = self.share
        self.failed, self.done = share.sum([self.failed, self.done])
        self.audio_seconds = self.timer.add_ranks(share, self.audio_seconds)
        if self.errors is not None:
            self.errors.merge_ranks(share)
            for line in self.errors.lines():
                console.say(line)
        console.note(self.timer.summary(self.done, self.audio_seconds))
        if self.failed:
            console.note(f"{self.program}: {self.failed} lattice{'' if self.failed == 1 else 's'} failed")
        if self.unreadable:
            console.note(f"{self.program}: {self.unreadable} of {archives} archives could not be read")
        return 1 if self.failed or self.unreadable else 0


def _words(converted, link_ids):
    """The words of the arcs among `link_ids`, epsilon left out (as lattice-best-path gives them)."""
    return [converted.lattice.links[k].word for k in link_ids
            if not converted.is_final_link(k) and converted.origins[k].word != EPSILON_ID]


def _nbest(converted, words, times, links, options, count):
    """The `count` best distinct word sequences of the expanded lattice (each link with the
    LM score of its own history): (key, words, acoustic cost, graph cost)."""
    lattice = converted.lattice
    costs = [0.0 if link.link is None else
             link_cost(lattice.links[link.link].acoustic, link.lm_log_prob, words[link.link] >= 0,
                       options.acoustic_scale, options.lm_scale, options.word_penalty) for link in links]

    def copied(path):
        return [links[k] for k in path if links[k].link is not None]

    def words_of(path):
        return _words(converted, [link.link for link in copied(path)])

    found = distinct_best_paths(len(times), [(link.start, link.end) for link in links], costs, words_of, count)
    key = converted.kaldi.key
    return [(f"{key}-{rank}", words_of(path), sum(converted.origins[link.link].acoustic for link in copied(path)),
             sum(0.0 - link.lm_log_prob for link in copied(path))) for rank, (_, path) in enumerate(found, start=1)]


def _write_nbest(handles, entries):
    """n-best entries into the text, acoustic cost and graph cost files."""
    text, acoustic, graph = handles
    for key, words, acoustic_cost, graph_cost in entries:
        text.write(" ".join([key] + words) + "\n")
        acoustic.write(f"{key} {format_cost(acoustic_cost)}\n")
        graph.write(f"{key} {format_cost(graph_cost)}\n")
