"""The jobs, one function each (train_job, ppl_job, lattice_job, nbest_job, selftest_job,
sample_job, vocab_job), in rwthlm's order (§1.2): the shared setup of preparation.py (the
vocabulary and the network), then a perplexity, rescoring, or training (or a gradient
check), printing rwthlm's lines.

rwthlm-py's subcommands call their job; `run` is the `rwthlm` command, whose flags choose
the job in `rwthlm_job`, the one place that maps them. Both command lines end here with
resolved Options; nothing here parses arguments. A job takes no Options but settings of
its own, each built from the Options by one function: the ModelSetup of rwthlm's shared
setup (model_setup) and TrainingSettings, PerplexitySettings, LatticeRescoring,
NbestRescoring, SelfTestSettings, VocabularyBuilding (training_settings, ...).
"""

import contextlib
import dataclasses
import os
import socket

from rwthlm_py.config import to_dict
from rwthlm_py.errors import InputError
from rwthlm_py.log_probs import LN10, unk_penalty
from rwthlm_py.model.checkpoint import (
    build_network,
    load_momentum,
    read_model,
    save_model,
)
from rwthlm_py.model.memory import require_batch_memory, require_model_memory
from rwthlm_py.output.reporting import Console
from rwthlm_py.output.tensorboard_log import open_log
from rwthlm_py.preparation import (
    check_arpa_options,
    file_roles,
    lattice_output_settings,
    model_setup,
    prepare,
    read_text,
    read_training_text,
    require_words,
    setup_network,
    setup_vocabulary,
    vocabulary_from_training_text,
)
from rwthlm_py.rescoring.kaldi_lattice_command import KaldiRescoring, kaldi_rescoring, rescore_kaldi_archives
from rwthlm_py.rescoring.lattice_command import LatticeRescoring, rescore_lattices
from rwthlm_py.rescoring.lattice_search import SearchOptions
from rwthlm_py.rescoring.nbest_command import Settings, check_list_inputs, list_roles, open_lists, run_nbest
from rwthlm_py.rescoring.wer import read_noise_words
from rwthlm_py.runtime import distributed, jobs
from rwthlm_py.runtime.backend import cupy_device_count, get_backend
from rwthlm_py.runtime.distributed import device_for_rank
from rwthlm_py.runtime.jobs import ONE_JOB
from rwthlm_py.scoring.evaluate import interpolate_with_arpa, score_corpus, summary_lines, verbose_lines
from rwthlm_py.scoring.sampling import sample_sentences
from rwthlm_py.text.arpa import read_arpa
from rwthlm_py.text.textio import refuse_overwriting_inputs
from rwthlm_py.training import data_parallel
from rwthlm_py.training.model_lock import exclusive_model_lock
from rwthlm_py.training.optim import Sgd
from rwthlm_py.training.rate_search_heldout import search_learning_rate
from rwthlm_py.training.rate_search_rwthlm import find_initial_learning_rate
from rwthlm_py.training.selftest import SelfTestSettings, builtin_self_test, self_test_on_corpus
from rwthlm_py.training.train import Schedule, Trainer


def run(options, network_path, backend, console, lattices=(), lattice_batch_size=None):
    """The `rwthlm` command: the job its flags ask for (rwthlm_job), run as rwthlm runs it;
    returns the process exit status. Lattices are rescored with the network's steps
    `lattice_batch_size` histories at a time (None: a whole time frame at once)."""
    job = rwthlm_job(options, lattices)
    setup = model_setup(options)
    share = jobs.share_of(None, None, distributed.world())  # under MPI the ranks split ppl and lattices
    if job == "ppl":
        return ppl_job(setup, perplexity_settings(options, skip_oovs=False), network_path, backend, console,
                       lattices=lattices, share=share)
    if job == "lattice":
        return lattice_job(setup, lattice_rescoring(options, lattice_batch_size), network_path, lattices, backend,
                           console, share=share)
    if job == "train":
        return train_job(setup, training_settings(options, rwthlm_rate_search), network_path, backend, console)
    if job == "selftest":
        return selftest_job(setup, selftest_settings(options), network_path, backend, console)
    prepare(setup, network_path, backend, console)
    return 0


def rwthlm_job(options, lattices):
    """The job rwthlm's flags choose, in rwthlm's precedence: --ppl, then LATTICE files, then
    --train (a gradient check with --self-test); "setup" for none of them: the vocabulary and
    the network are set up (a new one written nowhere) and nothing else is done."""
    if options.ppl:
        return "ppl"
    if lattices:
        return "lattice"
    if options.train:
        return "selftest" if options.self_test else "train"
    return "setup"


def train_job(setup, training, network_path, backend, console):
    """Trains the network of `network_path` (a model file, or a network string for a new
    one) after the ModelSetup `setup`, with the TrainingSettings `training`. Holds the
    model's exclusive lock from before it reads the model to the end.

    Among the ranks of an MPI job (data-parallel training, training/data_parallel.py) rank
    0 holds the lock and sets up first, writing what the setup writes (a vocabulary); the
    others set up after it, from the same files, and write nothing."""
    ranks = distributed.world()
    with exclusive_model_lock(network_path, console) if ranks.is_root else contextlib.nullcontext():
        if not ranks.is_root:
            setup = dataclasses.replace(setup, remap=None)
            ranks.barrier()
        prepared = prepare(setup, network_path, backend, console, training_schedule=training.schedule)
        if ranks.is_root and ranks.size > 1:
            ranks.barrier()
        if prepared is None:
            return 0
        if ranks.size > 1:
            same_vocabulary_on_every_rank(ranks, prepared.vocab)
        train_corpus = read_training_text(setup, prepared.vocab, console)
        optimizer = Sgd(prepared.network, training.momentum)
        if prepared.model_file is not None:
            load_momentum(optimizer, prepared.model_file)
        train_network(prepared.network, optimizer, network_path, prepared.model_file is None,
                      prepared.training_state, train_corpus, prepared.dev_corpus, training, console)
    return 0


def same_vocabulary_on_every_rank(ranks, vocab):
    """Refuses ranks whose vocabularies differ (word classes clustered by each rank under a
    --time-limit can differ): their gradients would be summed over different layouts."""
    fingerprints = ranks.all_gather(vocab.fingerprint())
    differing = [rank for rank, fingerprint in enumerate(fingerprints) if fingerprint != fingerprints[0]]
    if differing:
        jobs.refuse(ranks, InputError(f"rank {differing[0]} built another vocabulary than rank 0 (word classes "
                                      "clustered against a time limit differ from run to run): build it once "
                                      "(rwthlm-py vocab) and give it with --vocab"))


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """What training runs with beyond the network and the texts: the Schedule, the search
    for a new network's learning rate (rwthlm_rate_search or heldout_rate_search) where
    --learning-rate gives none, --tensorboard, the options recorded in the model file
    and TensorBoard's configuration (a dict of every option), and --momentum."""

    schedule: Schedule
    rate_search: object
    learning_rate: float = None
    tensorboard: str = None
    recorded_options: dict = dataclasses.field(default_factory=dict)
    momentum: float = 0.0


def training_settings(options, rate_search):
    return TrainingSettings(schedule_from(options), rate_search, options.learning_rate, options.tensorboard,
                            to_dict(options), options.momentum)


def ppl_job(setup, perplexity, network_path, backend, console, lattices=(), share=ONE_JOB):
    """The perplexity of the PerplexitySettings `perplexity` after the ModelSetup `setup`,
    under MPI computed by the ranks of the runtime.jobs.Share `share` together.
    `lattices`: LATTICE files the `rwthlm` command was given besides --ppl, checked and then
    left alone, as rwthlm does."""
    prepared = prepare(setup, network_path, backend, console, lattices)
    return compute_perplexity(prepared.network, prepared.vocab, perplexity, console, share)


def lattice_job(setup, rescoring, network_path, lattices, backend, console, program="rwthlm", share=ONE_JOB):
    """Rescores the LATTICE files with the network after the ModelSetup `setup`, as the
    LatticeRescoring `rescoring` says (a KaldiRescoring: Kaldi archives), or the part of
    them of the runtime.jobs.Share `share`; `program` names the command in their error
    lines."""
    prepared = prepare(setup, network_path, backend, console, lattices)
    if isinstance(rescoring, KaldiRescoring):
        return rescore_kaldi_archives(prepared.network, lattices, rescoring, console, program, share)
    return rescore_lattices(prepared.network, lattices, rescoring, console, program, share)


def selftest_job(setup, selftest, network_path, backend, console):
    """The gradient check (rwthlm's --self-test) with the SelfTestSettings `selftest`: on the
    text of --train with the network of `network_path` (after the ModelSetup `setup`), or,
    without --train, on generated text with that network (a network string or a model
    file) or a built-in set of networks."""
    if setup.train is None:
        return builtin_self_test(selftest, network_path, console, backend)
    setup = dataclasses.replace(setup, self_test=True)  # what rwthlm's checks of the flags know it by
    prepared = prepare(setup, network_path, backend, console)
    train_corpus = read_training_text(setup, prepared.vocab, console)
    return self_test_on_corpus(prepared.network, train_corpus, selftest.schedule, console)


def sample_job(network_path, draws, backend_name, dtype, console):
    """`rwthlm-py sample`: sentences drawn from the model (scoring.sampling.Draws), one a line,
    computed on --backend `backend_name` in `dtype`."""
    model_file = read_model(network_path)
    backend = make_backend(backend_name, dtype, console)
    require_model_memory(model_file, backend)
    network = build_network(model_file, backend)
    for words in sample_sentences(network, draws.count, draws.temperature, draws.seed, draws.max_length):
        console.say(" ".join(words))
    return 0


def vocab_job(building, out, console, config=None):
    """`rwthlm-py vocab`: the vocabulary built from the training text (a VocabularyBuilding)
    written to `out`, which must be neither that text nor the --config file `config`."""
    refuse_overwriting_inputs([("--out", out)], [("--train", building.train), ("--config", config)])
    vocab = vocabulary_from_training_text(building, console)
    vocab.write(out, building.encoding)
    console.say(f"Wrote {len(vocab)} words in {vocab.num_classes} classes "
                f"({vocab.shortlist_size} single-word classes) to '{out}'")
    return 0


def schedule_from(options):
    return Schedule(
        batch_size=options.batch_size, sequence_length=options.sequence_length,
        word_wrapping=options.word_wrapping, max_epoch=options.max_epoch,
        shuffling=not options.no_shuffling, feedforward=options.feedforward,
        random_seed=options.random_seed, debug_no_sb=options.debug_no_sb,
        verbose=options.verbose, unk_penalty=unk_penalty(options.num_oovs, options.unk),
        gradient_clipping=options.gradient_clipping, min_improvement=options.min_improvement,
        stop_after_halvings=options.stop_after_halvings, checkpoint_every=options.checkpoint_every,
        dropout=options.dropout, variational_dropout=options.variational_dropout)


def lattice_rescoring(options, batch_size=None):
    """The LatticeRescoring of the options, `batch_size` histories per network step (None:
    a whole time frame at once); with --kaldi-words a KaldiRescoring holding it."""
    search = SearchOptions(
        lam=options.lam, beam=options.pruning_threshold, limit=options.pruning_limit, dp_order=options.dp_order,
        lm_scale=options.lm_scale, look_ahead=options.look_ahead_semiring,
        look_ahead_lm_scale=options.look_ahead_lm_scale, acoustic_scale=options.acoustic_scale,
        word_penalty=options.word_penalty * LN10, unk_penalty=unk_penalty(options.num_oovs, options.unk),
        batch_size=batch_size)
    rescoring = LatticeRescoring(search, lattice_output_settings(options), options.encoding, options.unk,
                                 options.map_unk, options.clear_initial_links, options.set_sb_last,
                                 options.set_sb_next_to_last, options.dependent, options.refs, options.noise_vocab)
    return kaldi_rescoring(options, rescoring) or rescoring


def selftest_settings(options):
    return SelfTestSettings(schedule_from(options), options.map_sb, bias=not options.no_bias)


@dataclasses.dataclass(frozen=True)
class PerplexitySettings:
    """What a perplexity is computed with, by the options' names: the text (--ppl), how it is
    read (--unk, --debug-no-sb, --encoding; `skip_oovs`: see compute_perplexity), the scoring
    Schedule, --arpa with --lambda and --num-oovs, --verbose and --tensorboard."""

    ppl: str
    schedule: Schedule
    unk: bool = False
    debug_no_sb: bool = False
    encoding: str = "utf-8"
    skip_oovs: bool = False
    arpa: str = None
    lam: float = None
    num_oovs: int = 0
    verbose: bool = False
    tensorboard: str = None


def perplexity_settings(options, skip_oovs):
    return PerplexitySettings(options.ppl, schedule_from(options), options.unk, options.debug_no_sb, options.encoding,
                              skip_oovs, options.arpa, options.lam, options.num_oovs, options.verbose,
                              options.tensorboard)


def compute_perplexity(network, vocab, settings, console, share=ONE_JOB):
    """The perplexity of the PerplexitySettings' text; words outside the vocabulary are an
    error unless --unk maps them, or, with `skip_oovs`, left out and counted as SRILM's OOVs.
    Under MPI (runtime.jobs.Share) the ranks score blocks of the batches and rank 0 prints
    what one process prints."""
    events = open_log(settings.tensorboard if share.is_root else None)  # first: a bad directory fails first
    console.say(f"Computing perplexity for file '{settings.ppl}' ...")
    corpus = read_text_once(vocab, settings, share)
    scores = score_text(network, corpus, settings.schedule, console,
                        keep_tokens=settings.verbose or settings.arpa is not None, share=share)
    if scores is None:  # a rank other than 0: rank 0 has the sums
        return 0
    if settings.arpa:
        scores = interpolate_perplexity(scores, corpus, settings, console)
    if settings.verbose:
        for line in verbose_lines(scores, corpus, vocab):
            console.say(line)
    for line in summary_lines(scores, settings.ppl):
        console.say(line)
    events.scalar("final/test_perplexity", scores.perplexity, 0)
    events.close()
    return 0


def read_text_once(vocab, settings, share=ONE_JOB):
    """The --ppl text, read once, with the words for the ARPA model: the text may be a pipe.
    Under MPI standard input reaches rank 0 alone, which hands the text to the others."""
    def read():
        return require_words(read_text(settings.ppl, vocab, settings, keep_words=settings.arpa is not None,
                                       skip_oovs=settings.skip_oovs), "--ppl")

    if settings.ppl == "-" and share.merges:
        return share.ranks.broadcast(read() if share.is_root else None)
    return read()


def score_text(network, corpus, schedule, console=None, keep_tokens=False, share=ONE_JOB):
    """The Scores of a corpus in the layout of the Schedule (wrapping, batch size, sequence
    length, carried state, --feedforward, the unknown word's penalty), with progress on the
    console; under MPI (`share`) on rank 0, None on the others (evaluate.score_corpus)."""
    sequences = schedule.wrap(corpus)
    require_batch_memory(network, sequences, schedule.batch_size, training=False)
    if share.merges and schedule.carry_state and console:
        console.note(f"stream wrapping carries the state from batch to batch: rank 0 scores the whole text, the "
                     f"other {share.count - 1} rank(s) wait (another --word-wrapping splits the batches among them)")
    progress = console.progress("perplexity", int((sequences.end - sequences.first).sum())) if console else None
    scores = score_corpus(network, corpus, sequences, schedule.batch_size, carry_state=schedule.carry_state,
                          unk_penalty=schedule.unk_penalty, feedforward=schedule.feedforward,
                          keep_tokens=keep_tokens, progress=progress, share=share)
    if progress is not None:
        progress.close()
    return scores


def interpolate_perplexity(scores, corpus, settings, console):
    arpa = open_arpa(settings.arpa, console, settings.encoding)
    scores, unknown = interpolate_with_arpa(scores, corpus, arpa, settings.lam, settings.num_oovs)
    console.say(f"interpolated with '{settings.arpa}' (lambda {settings.lam:g}); {unknown} words not in its "
                "vocabulary" + (" were scored as <unk>" if arpa.unk >= 0 else " had probability 0 there"))
    return scores


def open_arpa(path, console, encoding):
    console.say(f"Reading ARPA model from file '{path}' ...")
    arpa = read_arpa(path, encoding=encoding)
    for line in arpa.warnings:
        console.note(line)
    console.note(f"ARPA model: order {arpa.order}, " + ", ".join(
        f"{len(table):,} {n + 1}-grams" for n, table in enumerate(arpa.ngrams)))
    return arpa


@dataclasses.dataclass(frozen=True)
class NbestRescoring:
    """What `rwthlm-py nbest` rescores with beyond the ModelSetup, by the options' names: the
    n-best Settings (its noise words still to be read from --noise-vocab when the job runs),
    --out, --refs, and the --backend and --dtype of the network."""

    settings: Settings
    noise_vocab: str = None
    out: str = None
    refs: str = None
    backend: str = "auto"
    dtype: str = "float32"


def nbest_rescoring(options):
    settings = Settings(lm_weight=options.lm_weight, word_penalty=options.word_penalty,
                        nn_weight=options.nn_weight, lam=options.lam if options.lam is not None else 1.0,
                        batch_size=options.batch_size, share_prefixes=not options.no_prefix_sharing,
                        unk_penalty=unk_penalty(options.num_oovs, options.unk), num_oovs=options.num_oovs,
                        encoding=options.encoding)
    return NbestRescoring(settings, options.noise_vocab, options.out, options.refs, options.backend, options.dtype)


def nbest_job(setup, rescoring, network_path, list_inputs, console, share=ONE_JOB):
    """`rwthlm-py nbest`: the network (unless --nn-weight 0 or --lambda 0 needs none) after
    the ModelSetup `setup`, the ARPA model and the lists, then rescoring.run_nbest with the
    NbestRescoring `rescoring`, on the part of the lists of the runtime.jobs.Share `share`.
    Setup lines go to stderr, so that stdout holds only results (1-best lines, or word error
    rates with --out)."""
    check_list_inputs(*list_inputs)
    check_arpa_options(setup)
    nn_weight = rescoring.settings.nn_weight
    model_weight = nn_weight * (setup.lam if setup.arpa else 1.0)
    if model_weight > 0 and network_path is None:
        raise InputError("nbest needs the NETWORK model file (only --nn-weight 0, or --lambda 0 "
                         "with --arpa, rescores without one)")
    outputs, inputs = file_roles(setup, network_path if model_weight > 0 else None,
                                 other_inputs=list_roles(*list_inputs))
    refuse_overwriting_inputs(outputs + [("--out", rescoring.out)], inputs)
    source = open_lists(*list_inputs, setup.encoding)
    setup_console = Console(out=console.err, err=console.err)
    network = None
    if model_weight > 0:
        model_file = read_model(network_path)
        vocab = setup_vocabulary(setup, model_file, setup_console)
        network, _ = setup_network(setup, network_path, model_file, vocab,
                                   make_backend(rescoring.backend, rescoring.dtype, setup_console), setup_console)
    arpa = open_arpa(setup.arpa, setup_console, setup.encoding) if setup.arpa and nn_weight > 0 else None
    # the noise words are read only now, so that the errors of the models come first
    settings = dataclasses.replace(rescoring.settings,
                                   noise=frozenset(read_noise_words(rescoring.noise_vocab, setup.encoding)))
    return run_nbest(source, network, arpa, settings, rescoring.out, rescoring.refs, console, share)


def train_network(network, optimizer, network_path, is_new, training_state, train_corpus, dev_corpus,
                  settings, console):
    """Trains with the TrainingSettings; a new network without --learning-rate first gets one
    from their rate search."""
    schedule = settings.schedule
    ranks = distributed.world()
    start, stop = data_parallel.column_block(schedule.batch_size, 0, ranks.size)  # the widest block of a batch
    require_batch_memory(network, schedule.wrap(train_corpus), stop - start, training=True)
    # first: a bad directory stops the run before it writes; rank 0 alone writes the events
    events = open_log(settings.tensorboard if ranks.is_root else None)
    head_start = None
    try:
        if ranks.size > 1:
            _start_ranks(network, schedule, ranks, console)
        if is_new:
            if settings.learning_rate is None:
                rate, head_start = settings.rate_search(network, optimizer, train_corpus, dev_corpus, schedule,
                                                        console, events)
                training_state.learning_rate = rate
            # the initial weights: what epoch 1 rolls back to, and where a killed run starts it again
            if ranks.is_root:
                save_model(network_path, network, optimizer, training_state, settings.recorded_options)
        trainer = Trainer(network, optimizer, network_path, schedule, training_state, console,
                          settings.recorded_options, events)
        trainer.train(train_corpus, dev_corpus, head_start)
    finally:
        events.close()


def _start_ranks(network, schedule, ranks, console):
    """Data-parallel training's line, and the sum of the gradients made on every rank."""
    blocks = sorted({stop - start for start, stop in
                     (data_parallel.column_block(schedule.batch_size, rank, ranks.size) for rank in range(ranks.size))})
    console.note(f"data-parallel training on {ranks.size} ranks: each trains "
                 f"{' or '.join(map(str, blocks))} of the batch's {schedule.batch_size} columns")
    # a launcher names a killed rank by its process id and host: this line says which rank that was
    processes = ranks.all_gather(f"{os.getpid()}@{socket.gethostname()}")
    console.note("ranks' processes: " + ", ".join(f"{rank}: {name}" for rank, name in enumerate(processes)))
    data_parallel.gradient_sum(network, ranks)
    for line in data_parallel.pending_notes():
        console.note(line)


def rwthlm_rate_search(network, optimizer, train_corpus, dev_corpus, schedule, console, events):
    """The `rwthlm` command's search for a new network's learning rate: rwthlm's, on the
    training batches (rate_search_rwthlm.py); (rate, None): training starts at epoch 1."""
    rate = find_initial_learning_rate(network, optimizer, train_corpus, first_epoch_order(train_corpus, schedule),
                                      schedule, console)
    return rate, None


def heldout_rate_search(network, optimizer, train_corpus, dev_corpus, schedule, console, events):
    """`rwthlm-py train`'s search: trials judged by held-out perplexity (rate_search_heldout.py);
    (rate, HeadStart): the chosen trial is the start of epoch 1."""
    return search_learning_rate(network, optimizer, train_corpus, first_epoch_order(train_corpus, schedule),
                                dev_corpus, schedule.wrap(dev_corpus), schedule, console, events)


def first_epoch_order(corpus, schedule):
    """The training sequences in the order of epoch 1, as the Trainer takes them."""
    return schedule.epoch_order(schedule.wrap(corpus), 0)


def make_backend(name, dtype, console):
    """The array backend of --backend and --dtype, named in a note on the console. Each rank
    of an MPI job on a node with GPUs takes its own (local rank modulo the devices)."""
    backend = get_backend(name, dtype, device_for_rank(distributed.world(), cupy_device_count()))
    console.note(f"backend: {backend.describe()}")
    return backend
