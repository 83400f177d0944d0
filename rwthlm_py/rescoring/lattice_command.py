"""rwthlm's lattice mode, `rwthlm [OPTION]... LATTICE... NETWORK` (§7): each lattice in
command-line order is read, prepared as the options say, searched, reported with rwthlm's
lines and written next to its input.

Printed (stdout): `Rescoring ...` once; per lattice `lattice '<file>' ...`, the lines of
--clear-initial-links and --set-sb-last/--set-sb-next-to-last, one pruning line per time
frame, `single best: <cost>` and a line `\\tW=<word>\\tJ=<link>\\tl=<new ln p>` per link of
the best path, from its first link to its last. Written (§7.8), a suffix inserted before a
trailing `.gz`:

    --output lattice   x.lat.gz -> x.lat.rescored.gz: the input with every l= the new LM
                       log-probability (links no hypothesis reached keep theirs)
    --output ctm       x.lat.gz -> x.lat.ctm.gz: `<x.lat> 1 <start> <duration> <word>` per
                       word of the best path, without the final sentence boundary and the
                       links without an LM score (new ln p above -1e-8), original spellings
    --output expanded-lattice
                       x.lat.gz -> x.lat.rescored.gz: a new lattice with a node per
                       surviving hypothesis, whose links carry the LM log-probability of
                       their own history (lattice_expansion.expand, htk_lattice.slf_lines)

Words of LM-scored links map to the network's words (the sentence boundary is --map-sb;
unknown words need --unk); the words of links without an LM score are never looked up.
A lattice that cannot be rescored (a broken file, a shape rwthlm would assert on, an
unknown word, a best path that does not end in the sentence boundary) is one error line
on stderr; the other lattices still go on, a last line counts the failures, and the exit
status is then 1. An output that cannot be written (a full disk) ends the run. With
--dependent each lattice starts from the state of the previous successful lattice's best
path.

`rwthlm-py lattice` is the same with outputs under --out DIR (created if need be; never
over an input; moved there from a temporary folder at the end, so that they appear
together or not at all), a word penalty (--word-penalty, log10 per LM-scored word, as SRILM counts it), an
acoustic scale, --nbest N (x.lat.gz -> x.lat.nbest.gz: the N best distinct word
sequences as an SRILM list, for `rwthlm-py nbest`) and --refs/--noise-vocab (word error
rates); both print progress (lattices/s, ETA) on stderr and, at the end, the real-time
factor (processing seconds over the audio seconds the lattices span) and where the time
went: reading, network steps (histories and calls), the rest of the search, writing.

Up to LATTICES_TOGETHER lattices (one with --dependent) are searched side by side, their
network steps shared, a lattice joining as soon as another one ends (lattice_rolling), and
printed and written in command-line order, each lattice's lines together: what is printed
and written is the same as rescoring one after the other.

Split into jobs (`rwthlm-py lattice --num-jobs J --job I`, or the ranks of mpiexec;
runtime/jobs.py), a job rescores a contiguous block of the lattice files, balanced by
their bytes; each lattice's outputs keep their names. Under MPI rank 0 prints every
rank's lines after its own, then the totals (word error rates, the summary).
"""

import contextlib
import dataclasses
import os
import time

from rwthlm_py.errors import InputError, WriteError
from rwthlm_py.log_probs import LN10
from rwthlm_py.model.scoring_step import scoring_step
from rwthlm_py.rescoring.htk_lattice import EPSILON, read_lattice, rescored_lines, slf_lines
from rwthlm_py.rescoring.lattice_expansion import distinct_best_paths, expand
from rwthlm_py.rescoring.lattice_oracle import oracle_words, viterbi_links
from rwthlm_py.rescoring.lattice_rolling import RollingSearch
from rwthlm_py.rescoring.lattice_search import Search, SearchOptions
from rwthlm_py.rescoring.lattice_topology import lattice_topology
from rwthlm_py.rescoring.nbest import Hypothesis, format_hypothesis
from rwthlm_py.rescoring.scores import link_cost
from rwthlm_py.rescoring.utterances import ctm_name, slf_utterance, utterance_id
from rwthlm_py.rescoring.wer import WordErrorTally, align_counts, read_noise_words, read_references
from rwthlm_py.runtime.jobs import ONE_JOB, file_sizes
from rwthlm_py.text.textio import DEFAULT_ENCODING, atomic_directory, atomic_output, refuse_overwriting_inputs

SENTENCE_END_SPELLINGS = ("</s>", "!SENT_END")  # other tools' sentence end, never mapped to <unk>
NON_SPEECH = 1e-8  # links whose new LM cost is below this are left out of a CTM (rwthlm)
OUTPUT_SUFFIX = {"lattice": "rescored", "expanded-lattice": "rescored", "ctm": "ctm"}


@dataclasses.dataclass(frozen=True)
class LatticeOutputs:
    """What is written of each lattice, by the options' names: --output, --nbest N (None:
    no n-best list) and --out DIR (None: next to each lattice)."""

    output: str = "lattice"
    nbest_size: int = None
    out: str = None


@dataclasses.dataclass(frozen=True)
class LatticeRescoring:
    """What lattices are rescored with, by the options' names: the search (its scales,
    beam, recombination and histories per network step), the LatticeOutputs, how the
    lattices are read and prepared (--encoding, --unk with --map-unk, --clear-initial-links,
    --set-sb-last, --set-sb-next-to-last), --dependent, and --refs with --noise-vocab."""

    search: SearchOptions
    outputs: LatticeOutputs = LatticeOutputs()
    encoding: str = DEFAULT_ENCODING
    unk: bool = False
    map_unk: str = "<unk>"
    clear_initial_links: bool = False
    set_sb_last: bool = False
    set_sb_next_to_last: bool = False
    dependent: bool = False
    refs: str = None
    noise_vocab: str = None


def rescore_lattices(network, paths, rescoring, console, program="rwthlm", share=ONE_JOB):
    """Rescores every lattice of `paths` with the LatticeRescoring, or this job's block of
    them (runtime.jobs.Share, balanced by the files' bytes); returns the exit status. With
    an --out directory the outputs go there instead of next to their inputs, all at the
    end."""
    targets, nbest_targets = lattice_outputs(paths, rescoring.outputs)  # every lattice's: no job's may collide
    start, end = share.block(file_sizes(paths)) if share.count > 1 else (0, len(paths))
    paths, targets, nbest_targets = paths[start:end], targets[start:end], nbest_targets[start:end]
    errors = WordErrorTally(rescoring.refs, read_references(rescoring.refs, rescoring.encoding),
                            read_noise_words(rescoring.noise_vocab, rescoring.encoding)) if rescoring.refs else None
    with staged_outputs(rescoring.outputs.out, console.note) as stage:
        return _rescore_each(network, paths, [stage(target) for target in targets],
                             [stage(target) for target in nbest_targets], rescoring, errors, console, program, share)


@contextlib.contextmanager
def staged_outputs(directory, note=None):
    """Yields where an output goes for now: with --out, into a temporary folder that is moved
    into the directory at the end (every output or none); else where it belongs. `note` is
    told of temporary folders that killed runs left there (textio.atomic_directory)."""
    if directory is None:
        yield lambda target: target
        return
    with atomic_directory(directory, note) as staging:
        yield lambda target: None if target is None else os.path.join(staging, os.path.basename(target))


def _rescore_each(network, paths, targets, nbest_targets, rescoring, errors, console, program, share=ONE_JOB):
    """The loop over the lattices, each written to its target (and n-best target): each
    lattice is prepared, searched beside up to LATTICES_TOGETHER - 1 others (their network
    steps shared; RescoringTimer.searched) and finished in command-line order, its lines
    printed together, as if one ran after the other. Under MPI (`share`) rank 0 then
    prints the other ranks' lines, and the totals of all."""
    console.say("Rescoring ...")
    console, shown = share.console(console), console
    failed, state, audio_seconds = 0, None, 0.0
    progress = console.progress("rescoring", len(paths), unit="lattices")
    timer = RescoringTimer(scoring_step(network))

    def prepared():  # each when the search takes it: with --dependent after the one before is finished
        for job in zip(paths, targets, nbest_targets, strict=True):
            lattice = _Lattice(*job, console)
            lattice.prepare(network, rescoring, timer, state if rescoring.dependent else None)
            yield lattice

    for lattice in timer.searched(prepared(), rescoring):
        if lattice.finish(network, rescoring, errors, program, timer):
            state = lattice.rescored.result.final_state
            audio_seconds += lattice.audio_seconds()
        else:
            failed += 1
        progress.update(1)
    progress.close()
    share.print_gathered(console, shown)
    console = shown
    count, failed = share.sum([len(paths), failed])
    audio_seconds = timer.add_ranks(share, audio_seconds)
    if errors is not None:
        errors.merge_ranks(share)
        for line in errors.lines():
            console.say(line)
    console.note(timer.summary(count - failed, audio_seconds))
    if failed:
        console.note(f"{program}: {failed} of {count} lattices failed")
    return 1 if failed else 0


LATTICES_TOGETHER = 16  # lattices searched side by side (memory: each keeps its network states)


class RescoringTimer:
    """Where a run's time goes (reading and preparing, network steps, the rest of the
    search, writing), for the summary line; also runs the searches of a run's lattices
    (`searched`) and steps the network for them, counting calls and histories."""

    def __init__(self, scorer):
        self.scorer, self.start = scorer, time.perf_counter()
        self.seconds = {"reading": 0.0, "network": 0.0, "search": 0.0, "writing": 0.0}
        self.calls = self.histories = 0

    def next_word_log_probs(self, inputs, state, columns, targets, unk_penalty=0.0):
        start = time.perf_counter()
        answer = self.scorer.next_word_log_probs(inputs, state, columns, targets, unk_penalty)
        self.seconds["network"] += time.perf_counter() - start
        self.calls += 1
        self.histories += len(inputs)
        return answer

    @contextlib.contextmanager
    def timing(self, part):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[part] += time.perf_counter() - start

    def searched(self, items, rescoring):
        """The items (lattices or utterances, each with its `search`, None where its
        preparation failed) searched in a rolling group (lattice_rolling.RollingSearch) and
        yielded in their order, each with its `result`: up to LATTICES_TOGETHER searches at
        a time (lattice_rolling.WINDOW_PER_SEARCH times that many items held at most); with
        --dependent one item at a time, the next taken from `items` only after the one
        before was yielded."""
        together, window = (1, 1) if rescoring.dependent else (LATTICES_TOGETHER, None)
        return RollingSearch(self, rescoring.search.batch_size, together, window, self.searching).searched(items)

    @contextlib.contextmanager
    def searching(self):
        """The search's own time: its wall time less the network's."""
        network_before, start = self.seconds["network"], time.perf_counter()
        try:
            yield
        finally:
            self.seconds["search"] += time.perf_counter() - start - (self.seconds["network"] - network_before)

    def add_ranks(self, share, audio_seconds):
        """Under MPI (runtime.jobs.Share): the parts' seconds and the calls and histories
        summed over the ranks, for rank 0's summary; returns the audio seconds summed too.
        The run's seconds stay rank 0's, the wall time."""
        if not share.merges:
            return audio_seconds
        self.calls, self.histories = share.sum([self.calls, self.histories])
        audio_seconds, *parts = share.sum_floats([audio_seconds] + list(self.seconds.values()))
        self.seconds = dict(zip(self.seconds, parts, strict=True))
        return audio_seconds

    def summary(self, lattices, audio_seconds):
        seconds = time.perf_counter() - self.start
        factor = f": real-time factor {seconds / audio_seconds:.3f}" if audio_seconds else ""
        parts = self.seconds
        plural = "" if lattices == 1 else "s"
        return (f"rescored {lattices} lattice{plural} ({audio_seconds:.2f} s of audio) in {seconds:.2f} s{factor} "
                f"(reading {parts['reading']:.2f} s, network {parts['network']:.2f} s for {self.histories:,} "
                f"histories in {self.calls:,} calls, search {parts['search']:.2f} s, writing {parts['writing']:.2f} s)")


class _Lattice:
    """One lattice of a run: its console lines (held until it is finished, so that the
    lattices searched together print in order), its search, and its outcome."""

    def __init__(self, path, target, nbest_target, console):
        self.path, self.target, self.nbest_target = path, target, nbest_target
        self.console, self.lines = console, []
        self.prepared = self.search = self.result = self.rescored = None
        self.error = None
        self.say(f"lattice '{path}' ...")

    def say(self, line):
        self.lines.append(line)

    def prepare(self, network, rescoring, timer, initial_state):
        """Reads and prepares the lattice and sets up its Search; an InputError is kept
        for `finish` to report."""
        try:
            with timer.timing("reading"):
                self.prepared = prepare_lattice(network, self.path, rescoring, self)
            lattice, topology, words, _ = self.prepared
            self.search = Search(network, lattice, topology, words, rescoring.search, initial_state)
        except InputError as error:
            self.error = error

    def finish(self, network, rescoring, errors, program, timer):
        """Reports and writes the searched lattice (its lines first); False if it failed."""
        try:
            if self.error is not None:
                raise self.error
            if errors is not None:
                lattice_reference(errors, self.path)  # before any output is written
            with timer.timing("writing"):
                self.rescored = report_and_write(network, self.prepared, self.result, self.target, rescoring, self)
                if self.nbest_target is not None:
                    write_nbest(self.rescored, network.vocab, rescoring.search, rescoring.outputs.nbest_size,
                                self.nbest_target, rescoring.encoding)
            if errors is not None:
                errors.add(*lattice_error_counts(errors, self.rescored, network.vocab, rescoring.search))
        except WriteError:
            self._flush()
            raise  # a full disk fails every lattice after this one: stop here
        except InputError as error:
            self._flush()
            self.console.note(f"{program}: error: {error}")
            return False
        self._flush()
        return True

    def _flush(self):
        for line in self.lines:
            self.console.say(line)
        self.lines = []

    def audio_seconds(self):
        times = [node.time for node in self.rescored.lattice.nodes]
        return max(times) - min(times)


def lattice_outputs(paths, outputs):
    """Each lattice's output, and its n-best list (None without --nbest), as the
    LatticeOutputs say."""
    targets = output_paths(paths, OUTPUT_SUFFIX[outputs.output], outputs.out)
    nbest_targets = output_paths(paths, "nbest", outputs.out) if outputs.nbest_size else [None] * len(paths)
    return targets, nbest_targets


def output_paths(paths, suffix, directory):
    """Where each lattice's output goes: next to it, or into `directory` (created at the
    end if need be); no output may be an input lattice or another lattice's output."""
    targets = [output_path(path, suffix) for path in paths]
    if directory is not None:
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise InputError("--out: is a file, not a directory", directory)
        targets = [os.path.join(directory, os.path.basename(target)) for target in targets]
    outputs = [(f"the output of LATTICE {path}", target) for path, target in zip(paths, targets, strict=True)]
    refuse_overwriting_inputs(outputs, [(f"LATTICE {path}", path) for path in paths])
    return targets


@dataclasses.dataclass
class Rescored:
    lattice: object
    topology: object
    words: list  # the network's word id of each link (-1: no LM score)
    result: object  # the SearchResult


def prepare_lattice(network, path, rescoring, console):
    """The lattice read and prepared for its search: (lattice, topology, the network's
    word of each link, the links --clear-initial-links cleared)."""
    lattice = read_lattice(path, rescoring.encoding)
    topology = lattice_topology(lattice)
    cleared = clear_initial_links(lattice, topology, console) if rescoring.clear_initial_links else {}
    words = network_words(lattice, topology, network.vocab, rescoring, console)
    return lattice, topology, words, cleared


def report_and_write(network, prepared, result, target, rescoring, console):
    """A searched lattice's lines (its pruning lines, its best path) and its output; returns
    Rescored."""
    lattice, topology, words, cleared = prepared
    for line in result.pruning_lines:
        console.say(line)
    if result.final_word != network.vocab.sb:
        # a path without links ends in the <sb> it starts from, so this path has links
        scored = [link_id for link_id in result.best_links if words[link_id] >= 0]
        last = scored[-1] if scored else result.best_links[-1]
        raise InputError(f"the best path's last word is '{lattice.links[last].word}' (link {last}), not the sentence "
                         f"boundary '{network.vocab.sb_name}': relabel the last links with --set-sb-last or "
                         "--set-sb-next-to-last",
                         lattice.path, lattice.links[last].line)
    console.say(f"single best: {result.cost:g}")
    for link_id in result.best_links:
        console.say(f"\tW={lattice.links[link_id].word}\tJ={link_id}\tl={result.link_lm[link_id]:g}")
    write_output(lattice, topology, result, rescoring, cleared, target)
    return Rescored(lattice, topology, words, result)


def clear_initial_links(lattice, topology, console):
    """--clear-initial-links: the links leaving node 0 lose their LM and acoustic scores
    (RWTH ASR's initial epsilon links); returns {link: "0.0"} for the written a=."""
    cleared = {}
    for link_id in topology.outgoing[0]:
        link = lattice.links[link_id]
        if topology.centiseconds[link.end] != topology.centiseconds[0]:
            raise InputError(f"--clear-initial-links: link {link_id} leaves node 0 but ends at "
                             f"t={lattice.nodes[link.end].time:g}, not at the start time: it is no initial "
                             "epsilon link",
                             lattice.path, link.line)
        console.say(f"Setting score of initial epsilon link {link_id} to zero!")
        link.lm = link.acoustic = 0.0
        cleared[link_id] = "0.0"
    return cleared


def network_words(lattice, topology, vocab, rescoring, console):
    """The network's word id of every LM-scored link (-1 for the others), with the final
    links relabelled by --set-sb-last or --set-sb-next-to-last. A relabelled link must
    have an LM score, a=0 and a word that is no other word of the vocabulary (rwthlm also
    needs that word mapped to <unk> by --unk; here it need not be known)."""
    relabelled = set()
    if rescoring.set_sb_last or rescoring.set_sb_next_to_last:
        relabelled = set(_links_to_relabel(lattice, topology, rescoring.set_sb_last))
    index = vocab.index
    words = [index.get(link.word, -2) if link.lm != 0 else -1 for link in lattice.links]  # -2: not in the vocabulary
    for link in [lattice.links[k] for k in sorted(relabelled.union(k for k, word in enumerate(words) if word == -2))]:
        if link.id in relabelled:
            if link.lm == 0 or link.acoustic != 0 or vocab.index.get(link.word, vocab.sb) not in (vocab.sb, vocab.unk):
                raise InputError(f"link {link.id} ('{link.word}') cannot become the sentence boundary: it must "
                                 "have an LM score, a=0, and no word of the vocabulary other than the boundary "
                                 "or the unknown word", lattice.path, link.line)
            console.say(f"Setting final epsilon link {link.id} to {vocab.sb_name}!")
            words[link.id] = vocab.sb
        elif link.lm != 0:
            words[link.id] = _word_id(link, vocab, rescoring, lattice.path)
    return words


def _links_to_relabel(lattice, topology, last):
    """The links into the final node (last), or the links into the start nodes of those."""
    final_links = [link.id for link in lattice.links if link.end == topology.final]
    if last:
        return final_links
    before = {lattice.links[link_id].start for link_id in final_links}
    return [link.id for link in lattice.links if link.end in before]


def _word_id(link, vocab, rescoring, path):
    word = link.word
    if word in vocab.index:
        return vocab.index[word]
    if word in SENTENCE_END_SPELLINGS:
        raise InputError(f"link {link.id}: '{word}' is not in the vocabulary, whose sentence boundary is "
                         f"'{vocab.sb_name}': relabel the last links with --set-sb-last or --set-sb-next-to-last",
                         path, link.line)
    if rescoring.unk:
        return vocab.unk
    raise InputError(f"link {link.id}: '{word}' is not in the vocabulary (give --unk to map unknown words "
                     f"to {rescoring.map_unk})", path, link.line)


def output_path(path, suffix):
    """rwthlm's output name: x.lat.gz -> x.lat.<suffix>.gz, x.lat -> x.lat.<suffix>.

    A lattice is named by its file: its outputs, its CTM lines and its utterance for --refs
    take that name. Standard input (`-`) has none, so it is refused as a lattice, with or
    without --out, rather than given a made-up name (`-.rescored`, `stdin.rescored`) that
    matches no reference and that a second lattice would overwrite."""
    path = os.fspath(path)
    if path == "-":  # standard input, for every reader of textio
        raise InputError("standard input cannot be a lattice: a lattice's outputs and utterance are named after "
                         "its file (x.lat -> x.lat.rescored); write it to a file first", path)
    if path.endswith(".gz"):
        return f"{path[:-3]}.{suffix}.gz"
    return f"{path}.{suffix}"


def write_output(lattice, topology, result, rescoring, cleared, target):
    output = rescoring.outputs.output
    if output == "lattice":
        lines = rescored_lines(lattice, result.link_lm, cleared)
    elif output == "ctm":
        lines = ctm_lines(lattice, result)
    else:
        lines = expanded_lattice_lines(lattice, topology, result, rescoring.search.lm_scale)
    with atomic_output(target, encoding=rescoring.encoding) as handle:
        handle.write("".join(line + "\n" for line in lines))


def expanded_lattice_lines(lattice, topology, result, lm_scale):
    """The context-expanded lattice as SLF lines; UTTERANCE is the input's name without
    `.gz` and its last extension."""
    times, links = expand(result, topology)
    written = []
    for link in links:
        if link.link is None:
            written.append((link.start, link.end))
        else:
            original = lattice.links[link.link]
            written.append((link.start, link.end, original.word, original.pronunciation, original.acoustic,
                            link.lm_log_prob))
    return slf_lines(slf_utterance(lattice.path), lm_scale, times, written)


def write_nbest(rescored, vocab, search_options, count, target, encoding=DEFAULT_ENCODING):
    """--nbest N: the N best distinct word sequences of the expanded lattice (each link
    with the LM score of its own history) as an SRILM list, `ascore lscore nwords words`
    in log10: the acoustic score (unscaled), the new LM score with the sentence boundary's,
    and the words of the LM-scored links other than the boundary."""
    lattice, options = rescored.lattice, search_options
    times, links = expand(rescored.result, rescored.topology)
    costs = [0.0 if link.link is None else _expanded_link_cost(lattice.links[link.link], link.lm_log_prob, options)
             for link in links]

    def words_of(path):
        return [lattice.links[links[k].link].word for k in path
                if links[k].link is not None and rescored.words[links[k].link] not in (-1, vocab.sb)]

    with atomic_output(target, encoding=encoding) as handle:
        for _, path in distinct_best_paths(len(times), [(link.start, link.end) for link in links], costs, words_of,
                                           count):
            copied = [links[k] for k in path if links[k].link is not None]
            acoustic = sum(lattice.links[link.link].acoustic for link in copied) / LN10
            lm = sum(link.lm_log_prob for link in copied) / LN10
            words = words_of(path)
            handle.write(format_hypothesis("srilm", Hypothesis(words, acoustic, lm, len(words), 0), lm, None) + "\n")


def _expanded_link_cost(original, lm_log_prob, options):
    """The cost of a link of the expanded lattice: its original's with its own LM log-probability."""
    return link_cost(original.acoustic, lm_log_prob, original.lm != 0, options.acoustic_scale, options.lm_scale,
                     options.word_penalty)


def ctm_lines(lattice, result):
    """The best path's words as CTM lines (rwthlm's: channel 1, three decimals), without
    the links without an LM score and the last LM-scored one (the sentence boundary)."""
    name = ctm_name(lattice.path)
    speech = [link_id for link_id in result.best_links if -result.link_lm[link_id] >= NON_SPEECH]
    lines = []
    for link_id in speech[:-1]:
        link = lattice.links[link_id]
        start, end = lattice.nodes[link.start].time, lattice.nodes[link.end].time
        lines.append(f"{name} 1 {start:.3f} {end - start:.3f} {link.word}")
    return lines


def lattice_reference(errors, path):
    """The reference words of the lattice file `path`, from the WordErrorTally `errors`."""
    return errors.reference(utterance_id(path), naming="the file name up to its first dot")


def lattice_error_counts(errors, rescored, vocab, search_options):
    """The ErrorCounts of a lattice's own best path (its scores before rescoring), the
    rescored best path and the lattice oracle, for the WordErrorTally `errors`. The words
    counted are those of LM-scored links other than the sentence boundary, less the noise
    words."""
    lattice, options = rescored.lattice, search_options
    reference = lattice_reference(errors, lattice.path)

    def word_of(link):
        counted = rescored.words[link.id] not in (-1, vocab.sb) and link.word != EPSILON
        return link.word if counted and link.word not in errors.noise else None

    original = viterbi_links(lattice, rescored.topology, options.lm_scale, options.acoustic_scale,
                             options.word_penalty)
    paths = [[word_of(lattice.links[k]) for k in links] for links in (original, rescored.result.best_links)]
    hypotheses = [[word for word in path if word is not None] for path in paths]
    hypotheses.append(oracle_words(lattice, rescored.topology, reference, word_of))
    return align_counts(reference, hypotheses)
