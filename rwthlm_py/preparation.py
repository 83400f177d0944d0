"""rwthlm's setup before any job's work (§1.2), shared by the jobs of commands.py: the
errors of the command line (before any file is read), the model file, the vocabulary (read,
taken from the model, or built from the training text), the network (read or made, its
memory checked) and the --dev text, as a ModelSetup built from the options says.
"""

import dataclasses
import os

import numpy

from rwthlm_py.errors import InputError
from rwthlm_py.model.checkpoint import (
    TrainingState,
    build_network,
    model_vocabulary,
    read_model,
)
from rwthlm_py.model.memory import require_memory, require_model_memory
from rwthlm_py.model.network import Network, check_tying_layers
from rwthlm_py.model.network_spec import parse_network
from rwthlm_py.rescoring.lattice_command import LatticeOutputs, lattice_outputs
from rwthlm_py.text import data
from rwthlm_py.text.clustering import class_vocabulary
from rwthlm_py.text.textio import refuse_overwriting_inputs
from rwthlm_py.text.vocabulary import count_words, read_vocabulary, vocabulary_from_counts
from rwthlm_py.training.train import finished_training

STREAM_NOTE = ("word wrapping 'stream': the recurrent state is carried from one batch to the next "
               "(as in PyTorch's word_language_model); this is not an rwthlm mode")


@dataclasses.dataclass(frozen=True)
class VocabularyBuilding:
    """How a vocabulary is built from the training text `train` (in `encoding`, with the
    boundary word `map_sb`): every word in its own class, or in `classes` word classes made
    by `method` (clustering.class_vocabulary, seeded, bounded in iterations and seconds)."""

    train: str
    map_sb: str = "<sb>"
    encoding: str = "utf-8"
    classes: int = None
    method: str = "exchange"
    random_seed: int = 1
    max_iterations: int = 20
    time_limit: float = None


def vocabulary_building(options):
    return VocabularyBuilding(options.train, options.map_sb, options.encoding, options.classes, options.method,
                              options.random_seed, options.max_iterations, options.time_limit)


@dataclasses.dataclass(frozen=True)
class ModelSetup:
    """What rwthlm's setup (prepare) runs with, by the options' names; a job's own settings
    (TrainingSettings, PerplexitySettings, ...) hold the rest."""

    # the files the run names: no output may replace an input, and a job needs some of them
    config: str = None
    train: str = None  # also: the vocabulary's source, and a network that will be trained
    dev: str = None
    ppl: str = None
    arpa: str = None
    lam: float = None  # --lambda: checked against --arpa and lattice rescoring
    refs: str = None
    noise_vocab: str = None
    vocab: str = None
    remap: str = None
    lattice_outputs: LatticeOutputs = LatticeOutputs()
    # what else rwthlm's checks of the flags look at
    self_test: bool = False
    pruning_threshold: float = None
    # the vocabulary: built from --train as `building` says, checked against --classes
    building: VocabularyBuilding = None
    classes: int = None
    map_sb: str = "<sb>"
    map_unk: str = "<unk>"
    # how texts are read (read_text); --unk also gives the vocabulary the --map-unk word
    unk: bool = False
    debug_no_sb: bool = False
    encoding: str = "utf-8"
    # the network: made, or checked against its model file
    no_bias: bool = False
    tie_weights: bool = False
    random_seed: int = 1
    learning_rate: float = None
    word_wrapping: str = "fixed"  # its stream mode is noted


def model_setup(options):
    return ModelSetup(
        config=options.config, train=options.train, dev=options.dev, ppl=options.ppl, arpa=options.arpa,
        lam=options.lam, refs=options.refs, noise_vocab=options.noise_vocab, vocab=options.vocab,
        remap=options.remap, lattice_outputs=lattice_output_settings(options), self_test=options.self_test,
        pruning_threshold=options.pruning_threshold, building=vocabulary_building(options), classes=options.classes,
        map_sb=options.map_sb, map_unk=options.map_unk, unk=options.unk, debug_no_sb=options.debug_no_sb,
        encoding=options.encoding, no_bias=options.no_bias, tie_weights=options.tie_weights,
        random_seed=options.random_seed, learning_rate=options.learning_rate, word_wrapping=options.word_wrapping)


@dataclasses.dataclass
class Prepared:
    """What a job starts from after rwthlm's setup: the model file (None for a network still
    to be made), the vocabulary, the network, its training state and the --dev text (None
    without --dev)."""

    model_file: object
    vocab: object
    network: object
    training_state: TrainingState
    dev_corpus: object


def prepare(setup, network_path, backend, console, lattices=(), training_schedule=None):
    """rwthlm's setup before any job's work (§1.2), as the ModelSetup `setup` says: the
    errors of the command line, the model file, the vocabulary, the network and the --dev
    text (read whatever the job, as rwthlm does). A Prepared; None when training (with its
    Schedule `training_schedule`) finds the model trained to its end (said on the
    console)."""
    training = training_schedule is not None
    check_command_line(setup, network_path, lattices, training)
    model_file = read_model(network_path) if os.path.exists(network_path) else None
    if model_file is not None and training:
        finished = finished_training(model_file.training_state, training_schedule)
        if finished:
            console.say(f"Nothing to train: {finished}")
            return None
    vocab = setup_vocabulary(setup, model_file, console)
    network, training_state = setup_network(setup, network_path, model_file, vocab, backend, console)
    if setup.word_wrapping == "stream":
        console.say(STREAM_NOTE)
    dev_corpus = None
    if setup.dev:
        console.say(f"Reading development data from file '{setup.dev}' ...")
        dev_corpus = require_words(read_text(setup.dev, vocab, setup), "development")
    return Prepared(model_file, vocab, network, training_state, dev_corpus)


def read_training_text(setup, vocab, console):
    console.say(f"Reading training data from file '{setup.train}' ...")
    return require_words(read_text(setup.train, vocab, setup), "training")


def check_command_line(setup, network_path, lattices=(), training=False):
    """The errors of the options (a ModelSetup) and the NETWORK argument alone, before any
    file is read: what a mode needs, the network string of a network still to be made, and
    no output that would replace an input (a model is one where `training`)."""
    refuse_overwriting_inputs(*file_roles(setup, network_path, lattices, training=training))
    if lattices:
        lattice_outputs(lattices, setup.lattice_outputs)
        for name, value in (("--lambda", setup.lam), ("--pruning-threshold", setup.pruning_threshold)):
            if value is None:
                raise InputError(f"lattice rescoring needs {name}")
    if setup.self_test and not setup.train:
        raise InputError("--self-test needs --train (the text to check the gradients on)")
    if setup.train and not (setup.dev or setup.self_test or setup.ppl):
        raise InputError("training needs development data: give --dev")
    if setup.ppl and not lattices:
        check_arpa_options(setup)
        if setup.arpa and setup.debug_no_sb:
            raise InputError("--arpa scores sentences and needs their boundaries: remove --debug-no-sb")
    if os.path.exists(network_path):
        return
    if lattices:
        raise InputError("lattice rescoring needs a trained model, and this file does not exist", network_path)
    if setup.ppl:
        raise InputError("--ppl needs a trained model, and this file does not exist", network_path)
    spec = parse_network(network_path)
    if setup.tie_weights:
        check_tying_layers(spec)
        if setup.classes:
            raise InputError(f"--tie-weights needs a full softmax (every word its own class), not --classes "
                             f"{setup.classes}")


def file_roles(setup, network_path, lattices=(), other_inputs=(), training=False):
    """The files a run writes and those it reads, as two lists of (role, path): what
    textio.refuse_overwriting_inputs checks. A vocabulary file is read where it exists and
    written where it does not; a model is read, or, where `training`, written (with its
    backup and its epoch in progress)."""
    inputs = [("--config", setup.config), ("--train", setup.train), ("--dev", setup.dev),
              ("--ppl", setup.ppl), ("--arpa", setup.arpa), ("--refs", setup.refs),
              ("--noise-vocab", setup.noise_vocab), *other_inputs]
    inputs += [("LATTICE", path) for path in lattices]
    outputs = []
    vocabulary = ("--vocab", setup.vocab)
    (inputs if setup.vocab and os.path.exists(setup.vocab) else outputs).append(vocabulary)
    outputs.append(("--remap", setup.remap))
    if network_path is not None and training:
        outputs += [("NETWORK", network_path), ("NETWORK's backup", f"{network_path}.bk"),
                    ("NETWORK's epoch in progress", f"{network_path}.partial")]
    elif network_path is not None:
        inputs.append(("NETWORK", network_path))
    return outputs, inputs


def check_arpa_options(setup):
    if setup.lam is not None and not setup.arpa:
        raise InputError("--lambda weighs the network against an ARPA model: give --arpa")


def setup_vocabulary(setup, model_file, console):
    """The vocabulary from the model, a vocabulary file, or the training text (§5.1)."""
    if model_file is not None:
        vocab = model_vocabulary(model_file)
        if vocab.sb_name != setup.map_sb:
            raise InputError(f"the model's sentence boundary is '{vocab.sb_name}', not --map-sb "
                             f"'{setup.map_sb}'", model_file.path)
        if setup.vocab:
            _match_or_save_vocabulary(vocab, setup.vocab, model_file.path, setup, console)
    elif setup.vocab and os.path.exists(setup.vocab):
        console.say(f"Reading vocabulary from file '{setup.vocab}' ...")
        vocab = read_vocabulary(setup.vocab, setup.map_sb, setup.encoding)
    elif setup.train:
        vocab = vocabulary_from_training_text(setup.building, console)
        if setup.vocab:
            console.say(f"Saving vocabulary to file '{setup.vocab}' ...")
            vocab.write(setup.vocab, setup.encoding)
    elif setup.vocab:
        raise InputError("no such vocabulary file, and no --train to build it from", setup.vocab)
    else:
        raise InputError("no vocabulary: give --vocab, or --train to build one")
    if setup.classes and vocab.num_classes != setup.classes:
        raise InputError(f"--classes {setup.classes} does not match the existing vocabulary's "
                         f"{vocab.num_classes} classes; remove --classes or the vocabulary")
    if setup.unk:
        vocab = vocab.with_unk(setup.map_unk)
    if setup.remap:
        console.say("Writing remapped vocabulary ...")
        vocab.write(setup.remap, setup.encoding)
    return vocab


def vocabulary_from_training_text(building, console):
    """Every word of the training text, each in its own class as rwthlm does, or in
    --classes classes (a VocabularyBuilding)."""
    if building.classes:
        console.say(f"Creating vocabulary with {building.classes} classes ({building.method}) "
                    f"from training data file '{building.train}' ...")
        return class_vocabulary(building.train, building.classes, building.method, building.map_sb,
                                building.random_seed, building.max_iterations, building.time_limit, console,
                                building.encoding)
    console.say(f"Creating vocabulary from training data file '{building.train}' ...")
    counts, _ = count_words(building.train, building.encoding)
    return vocabulary_from_counts(counts, building.map_sb)


def _match_or_save_vocabulary(vocab, path, model_path, setup, console):
    if not os.path.exists(path):
        console.say(f"Saving vocabulary to file '{path}' ...")
        vocab.write(path, setup.encoding)
        return
    console.say(f"Reading vocabulary from file '{path}' ...")
    if read_vocabulary(path, setup.map_sb, setup.encoding).fingerprint() != vocab.fingerprint():
        raise InputError(f"the model does not match the vocabulary '{path}' (other words or classes)",
                         model_path)


def setup_network(setup, network_path, model_file, vocab, backend, console):
    """The network from its model file, or new with random weights; and its training state."""
    if model_file is not None:
        console.say(f"Reading neural network from file '{network_path}' ...")
        if setup.no_bias and model_file.meta["bias"]:
            raise InputError("--no-bias is given, but the model has biases", network_path)
        tied = model_file.meta.get("tie_weights", False)
        if setup.tie_weights and not tied:
            raise InputError("--tie-weights is given, but the model was built without tied weights", network_path)
        require_model_memory(model_file, backend, vocab, training=bool(setup.train))
        network = build_network(model_file, backend, vocab)
        state = model_file.training_state
        if setup.train and setup.learning_rate not in (None, state.learning_rate):
            console.note(f"--learning-rate {setup.learning_rate:g} is not used: training goes on at the model "
                         f"file's learning rate {state.learning_rate:e} (as rwthlm does; train into a new "
                         "file to start at another rate)")
        console.say(f"Best development perplexity after {state.epoch} epochs: {state.best_perplexity:.15f}")
        _describe(network, console)
        return network, state
    spec = parse_network(network_path)
    require_memory(spec, vocab, not setup.no_bias, backend, training=bool(setup.train),
                   tie_weights=setup.tie_weights)
    console.say("Randomly initializing neural network weights ...")
    network = Network.build(spec, vocab, backend, seed=setup.random_seed, bias=not setup.no_bias,
                            tie_weights=setup.tie_weights)
    _describe(network, console)
    rate = setup.learning_rate if setup.learning_rate is not None else 0.1
    return network, TrainingState(epoch=0, learning_rate=rate)


def _describe(network, console):
    vocab = network.vocab
    console.note(f"network {network.spec.format()}: {network.num_params():,} parameters; "
                 f"{len(vocab)} words in {vocab.num_classes} classes")


def read_text(path, vocab, reading, keep_words=False, skip_oovs=False):
    """The text at `path` as a corpus, read with the `unk`, `debug_no_sb` and `encoding` of
    `reading` (a ModelSetup, or PerplexitySettings)."""
    return data.read_corpus(path, vocab, use_unk=reading.unk, debug_no_sb=reading.debug_no_sb,
                            keep_words=keep_words, encoding=reading.encoding, skip_unknown=skip_oovs)


def require_words(corpus, what):
    """The corpus, if it has a word: an empty text would train for ever (every epoch
    'fails' to improve) or print a perplexity of nan."""
    if not numpy.any(corpus.stream != corpus.sb):
        raise InputError(f"the {what} text has no words", corpus.path)
    return corpus


def lattice_output_settings(options):
    return LatticeOutputs(options.output, options.nbest_size, options.out)
