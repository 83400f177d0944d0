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
factor: processing seconds over the audio seconds the lattices span.
"""

import contextlib
import dataclasses
import os
import time

from rwthlm_py.errors import InputError, WriteError
from rwthlm_py.log_probs import LN10
from rwthlm_py.rescoring.htk_lattice import EPSILON, read_lattice, rescored_lines, slf_lines
from rwthlm_py.rescoring.lattice_expansion import distinct_best_paths, expand
from rwthlm_py.rescoring.lattice_oracle import oracle_words, viterbi_links
from rwthlm_py.rescoring.lattice_search import SearchOptions, search
from rwthlm_py.rescoring.lattice_topology import lattice_topology
from rwthlm_py.rescoring.nbest import Hypothesis, format_hypothesis
from rwthlm_py.rescoring.scores import link_cost
from rwthlm_py.rescoring.utterances import ctm_name, slf_utterance, utterance_id
from rwthlm_py.rescoring.wer import WordErrorTally, align_counts, read_noise_words, read_references
from rwthlm_py.text.textio import DEFAULT_ENCODING, atomic_directory, atomic_output, refuse_overwriting_inputs

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


def rescore_lattices(network, paths, rescoring, console, program="rwthlm"):
    """Rescores every lattice of `paths` with the LatticeRescoring; returns the exit status.
    With an --out directory the outputs go there instead of next to their inputs, all at
    the end."""
    targets, nbest_targets = lattice_outputs(paths, rescoring.outputs)
    errors = WordErrorTally(rescoring.refs, read_references(rescoring.refs, rescoring.encoding),
                            read_noise_words(rescoring.noise_vocab, rescoring.encoding)) if rescoring.refs else None
    with staged_outputs(rescoring.outputs.out, console.note) as stage:
        return _rescore_each(network, paths, [stage(target) for target in targets],
                             [stage(target) for target in nbest_targets], rescoring, errors, console, program)


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


def _rescore_each(network, paths, targets, nbest_targets, rescoring, errors, console, program):
    """The loop over the lattices, each written to its target (and n-best target)."""
    console.say("Rescoring ...")
    failed, state, audio_seconds = 0, None, 0.0
    progress = console.progress("rescoring", len(paths), unit="lattices")
    start = time.perf_counter()
    for path, target, nbest_target in zip(paths, targets, nbest_targets, strict=True):
        console.say(f"lattice '{path}' ...")
        try:
            if errors is not None:
                lattice_reference(errors, path)  # before any output is written
            rescored = rescore_lattice(network, path, target, rescoring, console,
                                       state if rescoring.dependent else None)
            if nbest_target is not None:
                write_nbest(rescored, network.vocab, rescoring.search, rescoring.outputs.nbest_size, nbest_target,
                            rescoring.encoding)
            if errors is not None:
                errors.add(*lattice_error_counts(errors, rescored, network.vocab, rescoring.search))
        except WriteError:
            raise  # a full disk fails every lattice after this one: stop here
        except InputError as error:
            console.note(f"{program}: error: {error}")
            failed += 1
        else:
            state = rescored.result.final_state
            times = [node.time for node in rescored.lattice.nodes]
            audio_seconds += max(times) - min(times)
        progress.update(1)
    progress.close()
    if errors is not None:
        for line in errors.lines():
            console.say(line)
    seconds = time.perf_counter() - start
    factor = f": real-time factor {seconds / audio_seconds:.3f}" if audio_seconds else ""
    console.note(f"rescored {len(paths) - failed} lattices ({audio_seconds:.2f} s of audio) in {seconds:.2f} s{factor}")
    if failed:
        console.note(f"{program}: {failed} of {len(paths)} lattices failed")
    return 1 if failed else 0


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


def rescore_lattice(network, path, target, rescoring, console, initial_state=None):
    """One lattice: read, prepare, search, report, write to `target` (as the
    LatticeRescoring says); returns Rescored."""
    lattice = read_lattice(path, rescoring.encoding)
    topology = lattice_topology(lattice)
    cleared = clear_initial_links(lattice, topology, console) if rescoring.clear_initial_links else {}
    words = network_words(lattice, topology, network.vocab, rescoring, console)
    result = search(network, lattice, topology, words, rescoring.search, initial_state)
    for line in result.pruning_lines:
        console.say(line)
    scored = [link_id for link_id in result.best_links if words[link_id] >= 0]
    last = scored[-1] if scored else result.best_links[-1]
    if result.final_word != network.vocab.sb:
        raise InputError(f"the best path's last word is '{lattice.links[last].word}' (link {last}), not the sentence "
                         f"boundary '{network.vocab.sb_name}': give the lattice's name for it with --map-sb, "
                         "or relabel the last links with --set-sb-last or --set-sb-next-to-last",
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
    words = [-1] * len(lattice.links)
    for link in lattice.links:
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
        for line in lines:
            handle.write(line + "\n")


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
