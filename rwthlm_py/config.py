"""Every option, once: rwthlm's names and defaults (§1.1), help text, and their checks.

Both command lines build their flags from OPTION_FIELDS, so a flag is defined in one
place, with its help in the words of each command where its meaning differs there
(`help_text`). Python names are the flag names with `-` turned into `_`; `--lambda` is
`lam`. `read_config_file` reads rwthlm's Boost-style `--config` files (`key = value`, `#`
comments), whose values the command line overrides; `closest_names` finds the option an
unknown name most likely meant.
"""

import dataclasses
import difflib
import math

from rwthlm_py.errors import InputError
from rwthlm_py.text.textio import check_encoding, read_lines

WRAPPINGS = ("fixed", "concatenated", "verbatim", "stream")


def option(default, help, group="main", flag=None, choices=None, hidden=False, metavar=None, help_in=None):
    """An option: its default, help and group; `flag` where the flag is not the field's name,
    `metavar` where the value is no plain STR/INT/FLOAT, and `help_in` where the option means
    something else in some commands: {"ppl nbest": help text there} (command names of
    rwthlm-py, or "rwthlm")."""
    return dataclasses.field(default=default, metadata={
        "help": help, "group": group, "flag": flag, "choices": choices, "hidden": hidden, "metavar": metavar,
        "help_in": help_in or {}})


@dataclasses.dataclass(frozen=True)
class Options:
    config: str = option(None, "read options from a file of `key = value` lines (the command line wins)",
                               metavar="FILE")
    verbose: bool = option(False, "print ln p of every word when computing perplexity, and the running training "
                                  "perplexity after every batch", help_in={
        "train": "print the running training perplexity and the time after every batch",
        "ppl": "print ln p of every word"})
    vocab: str = option(None, "vocabulary file (`word` or `word class` lines): read if it exists (an existing model's "
                              "vocabulary must match it), else built from --train, or taken from the existing model, "
                              "and written there", metavar="FILE", help_in={
        "ppl nbest lattice": "vocabulary file (`word` or `word class` lines); must match the model's, which is "
                             "written there if the file does not exist",
        "selftest": "with --train: vocabulary file (`word` or `word class` lines), read if it exists, else built from "
                    "--train and written there"})
    remap: str = option(None, "write the vocabulary in network order (`word<TAB>class`) to this file", metavar="FILE")
    unk: bool = option(False, "map words that are not in the vocabulary to the --map-unk word")
    no_unk: bool = option(False, "do not map unknown words to the --map-unk word, though the model was trained with "
                                 "--unk", "rwthlm_py")
    map_unk: str = option("<unk>", "the unknown word")
    map_sb: str = option("<sb>", "the sentence-boundary word, appended to every line", help_in={
        "nbest": "the sentence-boundary word (the model's), scored after the last word of every hypothesis",
        "lattice": "the sentence-boundary word (the model's); lattice links with this word end the sentence"})
    debug_no_sb: bool = option(False, "do not append the sentence boundary to lines")
    train: str = option(None, "training text, one sentence per line (gzip allowed)", metavar="FILE", help_in={
        "selftest": "check the gradients of NETWORK on this text (one sentence per line) instead of generated text"})
    dev: str = option(None, "development text; its perplexity drives learning-rate halving", metavar="FILE")
    ppl: str = option(None, "compute the perplexity of this text and exit", metavar="FILE", help_in={
        "ppl": "the text whose perplexity is computed, one sentence per line (gzip allowed, -: standard input); "
               "required"})
    random_seed: int = option(1, "seed of weight initialisation, shuffling and dropout masks", help_in={
        "selftest": "seed of the weights, the generated text and the dropout masks"})
    learning_rate: float = option(None, "initial learning rate (default: determined automatically for a new network)",
                                        help_in={
        "train": "initial learning rate of a new network (default: the best of short trials judged by the dev "
                 "perplexity; a model trained further goes on at its file's rate)"})
    momentum: float = option(0.0, "momentum")
    batch_size: int = option(1, "number of sequences processed in parallel", help_in={
        "rwthlm": "number of sequences processed in parallel; in lattice rescoring, histories per network step (not "
                  "given: all those of a time frame)",
        "nbest": "number of sentences, or prefix-tree nodes, scored together",
        "lattice": "histories per network step (default: all those of a time frame; 1: one at a time, as rwthlm)"})
    sequence_length: int = option(100, "maximum length of a sequence, its context word included")
    max_epoch: int = option(0, "train until this epoch (counted across runs; 0: for ever)", help_in={
        "train": "train until this epoch, counted across runs (0: no limit; training still stops after "
                 "--stop-after-halvings halvings in a row)"})
    no_shuffling: bool = option(False, "do not shuffle the training sequences every epoch")
    word_wrapping: str = option("fixed", "how text is cut into sequences; `stream` carries the recurrent state from "
                                         "batch to batch (not an rwthlm mode)", choices=WRAPPINGS)
    feedforward: bool = option(False, "train and evaluate in feedforward style, one time slice at a time, without "
                                      "recurrence", help_in={
        "ppl": "evaluate in feedforward style, one time slice at a time, without recurrence",
        "selftest": "check the gradients of one time slice without recurrence"})
    no_bias: bool = option(False, "build the layers without bias vectors")
    num_oovs: int = option(0, "difference in recognition and network vocabulary size: p(<unk>) is divided by num-oovs "
                              "+ 1 (with --unk)", help_in={
        "ppl nbest": "difference in recognition and network vocabulary size: p(<unk>) is divided by num-oovs + 1 (the "
                     "network's with --unk, the --arpa model's always)"})
    lam: float = option(None, "weight of the network in linear interpolation, against the ARPA model of --arpa or the "
                              "lattice LM", "rescoring", flag="lambda", help_in={
        "ppl nbest": "weight of the network against the ARPA model of --arpa: p = lambda p_nn + (1 - lambda) p_arpa",
        "lattice": "weight of the network against the lattice's LM: p = lambda p_nn + (1 - lambda) p_lattice; "
                   "with --kaldi-words the log-linear weight: new graph cost = graph cost + lambda (-ln p_nn), as "
                   "lattice-lmrescore-kaldi-rnnlm --lm-scale; required"})
    look_ahead_semiring: str = option("none", "look-ahead semiring", "rescoring", choices=("none", "tropical", "log"))
    dependent: bool = option(False, "start each lattice from the best final state of the previous one", "rescoring")
    look_ahead_lm_scale: float = option(None, "LM scale of the look-ahead (default: --lm-scale)", "rescoring")
    lm_scale: float = option(1.0, "LM scale of the rescoring search", "rescoring")
    pruning_threshold: float = option(None, "beam width of lattice rescoring, a cost difference (0: infinite; needed "
                                            "with lattices)", "rescoring", help_in={
        "lattice": "beam width, a cost difference (0: infinite); required"})
    pruning_limit: int = option(0, "hypotheses kept per lattice node (0: all)", "rescoring")
    dp_order: int = option(3, "hypotheses agreeing in their last N words are recombined", "rescoring")
    output: str = option("lattice", "output of lattice rescoring",
                                    "rescoring", choices=("ctm", "lattice", "expanded-lattice"))
    clear_initial_links: bool = option(False, "set the scores of links leaving node 0 to zero", "rescoring")
    set_sb_next_to_last: bool = option(False, "relabel the links before the last ones as the sentence boundary",
                                              "rescoring")
    set_sb_last: bool = option(False, "relabel the links into the final node as the sentence boundary", "rescoring")
    self_test: bool = option(False, "check the gradient implementation on the training data", hidden=True)
    gradient_clipping: float = option(None, "scale each update down so that the gradient norm per predicted word is "
                                            "at most this (PyTorch's clip_grad_norm on a mean loss; not in rwthlm)",
                                            "rwthlm_py")
    min_improvement: float = option(1.0, "also halve the learning rate (keeping the model) when the dev perplexity "
                                         "falls by less than this factor, e.g. 1.01 (1: rwthlm, halve only when it "
                                         "does not fall)", "rwthlm_py")
    stop_after_halvings: int = option(0, "stop training after N epochs in a row that halved the learning rate (no new "
                                         "best dev perplexity, or a gain below --min-improvement); 0: never, as rwthlm",
                                         "rwthlm_py", metavar="N")
    dropout: float = option(0.0, "while training, drop each output of every hidden layer (after the projection, "
                                 "between layers, before the output layer) with this probability, scaling the kept "
                                 "ones by 1/(1-P); scoring never drops (Zaremba et al. 2014)", "rwthlm_py", help_in={
        "selftest": "check the gradients with the dropout masks of a training batch, of this probability"})
    variational_dropout: bool = option(False, "with --dropout, one mask for all time steps of a sequence (Gal and "
                                              "Ghahramani 2016)", "rwthlm_py")
    tie_weights: bool = option(False, "a new network shares its word projection with the output weights (Press and "
                                      "Wolf 2017): needs a full softmax and the projection's size equal to the last "
                                      "hidden layer's", "rwthlm_py")
    checkpoint_every: float = option(None, "also save the epoch in progress (weights, momentum, the batch reached) "
                                           "every this many minutes into MODEL.partial, so that a killed run loses at "
                                           "most that much and resumes with exactly the weights of an uninterrupted "
                                           "run", "rwthlm_py")
    classes: int = option(None, "when the vocabulary is built from --train, give it this many word classes",
                                "rwthlm_py")
    method: str = option("exchange", "how --classes are made: exchange (the exchange algorithm, maximising the class "
                                     "bigram likelihood) or frequency (Mikolov's frequency binning)",
                                     "rwthlm_py", choices=("exchange", "frequency"))
    max_iterations: int = option(20, "at most this many iterations of the exchange algorithm", "rwthlm_py")
    time_limit: float = option(None, "no further exchange iteration after this many seconds", "rwthlm_py")
    record: str = option(None, "keep a record of this run (command line, resolved options, machine, log, exit status) "
                               "in a new folder under DIR/runs", "rwthlm_py", metavar="DIR")
    tensorboard: str = option(None, "write TensorBoard event files to this directory: training curves, histograms, "
                                    "the configuration and hparams; with --ppl, the perplexity as "
                                    "final/test_perplexity", "rwthlm_py", metavar="DIR", help_in={
        "train": "write TensorBoard event files to this directory: training curves, histograms, the configuration and "
                 "hparams",
        "ppl": "write the perplexity as final/test_perplexity to TensorBoard event files in this directory"})
    arpa: str = option(None, "an ARPA back-off model to interpolate with the network per word, p = lambda p_nn + (1 - "
                             "lambda) p_arpa (with --ppl and --lambda)", "rwthlm_py", metavar="FILE", help_in={
        "ppl nbest": "an ARPA back-off model to interpolate with the network per word, p = lambda p_nn + (1 - lambda) "
                     "p_arpa (needs --lambda)"})
    lm_weight: float = option(1.0, "weight of the LM score in the total: acoustic + lm-weight LM + word-penalty "
                                   "nwords (log10)", "nbest")
    word_penalty: float = option(0.0, "added to the total per word (log10)", "nbest", help_in={
        "lattice": "added to the total per word with an LM score (log10)"})
    nn_weight: float = option(1.0, "log-linear weight of the model's LM score against the list's own: 0 keeps the "
                                   "list's score (no model needed), 1 uses the model's alone", "nbest")
    no_prefix_sharing: bool = option(False, "score every hypothesis on its own instead of sharing the computation of "
                                            "common prefixes", "nbest")
    out: str = option(None, "write the rescored lists, each in its own format, and 1best.txt into this directory, "
                            "created if need be (default: the 1-best lines on stdout)",
                            "nbest", metavar="DIR", help_in={
        "lattice": "write the outputs into this directory, created if need be (default: next to each lattice, as "
                   "rwthlm)"})
    acoustic_scale: float = option(1.0, "scale of the acoustic scores in lattice rescoring (rwthlm has none; Kaldi's "
                                        "--acoustic-scale, e.g. 0.1)", "lattice")
    kaldi_words: str = option(None, "read the LATTICE files as Kaldi text archives (`lattice-copy ... ark,t:`, gzip "
                                    "allowed) with this symbol table (words.txt), and write them back as such, with "
                                    "their 1-best as Kaldi text", "lattice", metavar="FILE")
    frame_shift: float = option(None, "seconds per frame of Kaldi lattices (with --kaldi-words; default: 0.01)",
                                      "lattice", metavar="SECONDS")
    nbest_size: int = option(None, "also write the N best distinct word sequences of each rescored lattice as an "
                                   "SRILM n-best list (x.lat.gz -> x.lat.nbest.gz), for rwthlm-py nbest (with "
                                   "--kaldi-words: Kaldi's text and costs, x.nbest, x.nbest.ac_cost, x.nbest.lm_cost)",
                                   "lattice", flag="nbest", metavar="N")
    refs: str = option(None, "reference transcripts (`uttid w1 w2 ...`): print the word error rates of the lists' "
                             "first hypotheses, the rescored 1-best and the oracle (on stderr when the 1-best lines "
                             "go to stdout)", "nbest", metavar="FILE", help_in={
        "lattice": "reference transcripts (`uttid w1 w2 ...`; a lattice's uttid is its file name up to the first "
                   "dot, a Kaldi lattice's its key): print the word error rates of the lattices' own best paths, "
                   "the rescored ones and the oracles"})
    noise_vocab: str = option(None, "noise words (e.g. [laugh]): left out of hypotheses and references when counting "
                                    "errors, and out of the LM score with SRILM's pause -pau- (as SRILM's "
                                    "-noise-vocab)", "nbest", metavar="FILE", help_in={
        "lattice": "noise words (e.g. [laugh]) to leave out of hypotheses and references when counting errors"})
    num_jobs: int = option(None, "split the inputs into this many jobs run separately, job I taking the I-th "
                                 "contiguous block", "jobs", metavar="J", help_in={
        "lattice": "split the inputs into this many jobs run separately (Kaldi's queue.pl JOB=1:J, a Slurm array), "
                   "job I rescoring the I-th contiguous block of the HTK lattice files, or of every Kaldi archive's "
                   "utterances, balanced by size; a Kaldi archive's outputs get the job number before a trailing .gz "
                   "(x.ark.rescored.3.gz, x.ark.1best.3), an HTK lattice's keep their names; with --refs each job "
                   "prints the word error counts of its part, summed by `rwthlm-py wer-totals LOG...`; under mpiexec "
                   "the ranks split the work themselves and rank 0 writes and prints what one process would",
        "nbest": "split the lists into this many jobs run separately (Kaldi's queue.pl JOB=1:J, a Slurm array), job I "
                 "rescoring the I-th contiguous block of the lists, balanced by size; with --out the shared files get "
                 "the job number (1best.txt.3; Kaldi's text.3, ac_cost.3, lm_cost.3); with --refs each job prints the "
                 "word error counts of its part, summed by `rwthlm-py wer-totals LOG...`; under mpiexec the ranks "
                 "split the work themselves and rank 0 writes and prints what one process would"})
    job: int = option(None, "with --num-jobs J: which job this is, 1 to J (Kaldi's JOB, $SLURM_ARRAY_TASK_ID of a "
                            "Slurm array 1-J)", "jobs", metavar="I")
    encoding: str = option("utf-8", "character encoding of the text files read and written (texts, vocabularies, "
                                    "n-best lists, references, noise words, ARPA models, lattices), e.g. latin-1 for "
                                    "older corpora; not of --config files and file lists", "rwthlm_py", metavar="NAME")
    dtype: str = option("float32", "floating-point type of the computation (float64 is slower)",
                                   "rwthlm_py", choices=("float32", "float64"), help_in={
        "nbest": "floating-point type of the computation: float64 is slower, and makes scores independent of the "
                 "batch size and of prefix sharing to far beyond the printed digits"})
    backend: str = option("auto", "array backend: numpy, cupy, or auto (cupy when a CUDA device is present)",
                                  "rwthlm_py", choices=("auto", "numpy", "cupy"))
    threads: int = option(None, "CPU threads of the computation, its matrix products (BLAS) included; jobs run side "
                                "by side on one machine should share its cores, e.g. --threads 1 each (default: "
                                "$OPENBLAS_NUM_THREADS or $OMP_NUM_THREADS where set, else the cores this process may "
                                "use, at most Slurm's CPUs per task, or divided among the MPI ranks on this node)",
                                "rwthlm_py", metavar="N", help_in={
        "nbest lattice": "CPU threads of the computation, its matrix products (BLAS) included (default: "
                         "$OPENBLAS_NUM_THREADS or $OMP_NUM_THREADS where set, or the MPI ranks' or Slurm's share of "
                         "the cores; else one thread for the network's steps, as rescoring usually runs as jobs side "
                         "by side)"})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


OPTION_FIELDS = {field.name: field for field in dataclasses.fields(Options)}


def flag_name(field):
    return "--" + (field.metadata["flag"] or field.name.replace("_", "-"))


def field_type(field):
    return field.type


def help_text(field, command):
    """The option's help in `command` (a subcommand of rwthlm-py, or "rwthlm")."""
    for commands, text in field.metadata["help_in"].items():
        if command in commands.split():
            return text
    return field.metadata["help"]


FIELDS_BY_FLAG = {flag_name(field)[2:]: field for field in OPTION_FIELDS.values()}

# the names PyTorch's word_language_model gives options that exist here under another name
PYTORCH_NAMES = {"lr": "learning-rate", "epochs": "max-epoch", "bptt": "sequence-length", "clip": "gradient-clipping",
                 "seed": "random-seed", "tied": "tie-weights"}


def closest_names(name, known):
    """The names among `known` (option names without dashes) that `name` most likely
    meant: the one it spells with `_` for `-`, or that PyTorch calls `name`; else the
    (at most three) it abbreviates; else the nearest in spelling. Empty when none is close."""
    name = name.replace("_", "-")
    for wanted in (name, PYTORCH_NAMES.get(name)):
        if wanted in known:
            return [wanted]
    abbreviated = sorted(candidate for candidate in known if name and candidate.startswith(name))
    if 0 < len(abbreviated) <= 3:
        return abbreviated
    return difflib.get_close_matches(name, known, n=1)


def suggestion(names, prefix=""):
    """'did you mean --a or --b?' for closest_names' answer; None for no names."""
    return f"did you mean {' or '.join(prefix + name for name in names)}?" if names else None


def convert(field, text, where):
    """Converts an option value given as text; `where` names its origin in errors."""
    kind = field_type(field)
    flag = flag_name(field)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise InputError(f"{flag} takes true or false, not '{text}'", *where)
    try:
        value = kind(text)
    except ValueError:
        raise InputError(f"{flag} takes {'an integer' if kind is int else 'a number'}, not '{text}'", *where) from None
    choices = field.metadata["choices"]
    if choices and value not in choices:
        raise InputError(f"{flag} must be one of {', '.join(choices)}, not '{text}'", *where)
    return value


def read_config_file(path):
    """Reads a Boost-style config file into {python name: value}."""
    values = {}
    for line_number, text in read_lines(path):
        text = text.split("#", 1)[0].strip()
        if not text:
            continue
        if "=" not in text:
            raise InputError("expected `option = value`", path, line_number)
        key, value = (part.strip() for part in text.split("=", 1))
        field = FIELDS_BY_FLAG.get(key)
        if field is None or key == "config":
            hint = suggestion(closest_names(key, [name for name in FIELDS_BY_FLAG if name != "config"]))
            raise InputError(f"unknown option '{key}'" + (f" ({hint})" if hint else ""), path, line_number)
        values[field.name] = convert(field, value, (path, line_number))
    return values


# Every count an option gives (a batch size, a sequence length, an epoch) is an array size
# or an index somewhere: none may exceed the largest int32 (the seed, rwthlm's uint32, has
# its own range).
LARGEST_COUNT = 2 ** 31 - 1


def validate(options):
    """Rejects nonsensical option values with one clear line; the encoding is given its
    canonical name."""
    options = options.replace(encoding=check_encoding(options.encoding))
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        if field.type is int and field.name != "random_seed" and value is not None and value > LARGEST_COUNT:
            raise InputError(f"{flag_name(field)} must be at most {LARGEST_COUNT:,}, not {value:,}")
    checks = [
        (options.batch_size >= 1, "--batch-size must be at least 1"),
        (options.threads is None or options.threads >= 1, "--threads must be at least 1"),
        (options.sequence_length >= 2, "--sequence-length must be at least 2 (a context word and a word to predict)"),
        (options.max_epoch >= 0, "--max-epoch must not be negative"),
        (options.stop_after_halvings >= 0, "--stop-after-halvings must not be negative"),
        (options.learning_rate is None or (math.isfinite(options.learning_rate) and options.learning_rate > 0),
         "--learning-rate must be a positive number"),
        (math.isfinite(options.momentum) and 0 <= options.momentum < 1, "--momentum must lie in [0, 1)"),
        (options.gradient_clipping is None
         or (math.isfinite(options.gradient_clipping) and options.gradient_clipping > 0),
         "--gradient-clipping must be a positive number"),
        (options.checkpoint_every is None
         or (math.isfinite(options.checkpoint_every) and options.checkpoint_every > 0),
         "--checkpoint-every must be a positive number of minutes"),
        (math.isfinite(options.dropout) and 0 <= options.dropout < 1, "--dropout must lie in [0, 1)"),
        (not options.variational_dropout or options.dropout > 0, "--variational-dropout needs --dropout P"),
        (options.num_oovs >= 0, "--num-oovs must not be negative"),
        (math.isfinite(options.min_improvement) and options.min_improvement >= 1, "--min-improvement must be at least "
                                                                                  "1"),
        (options.classes is None or options.classes >= 1, "--classes must be at least 1"),
        (options.max_iterations >= 1, "--max-iterations must be at least 1"),
        (options.time_limit is None or options.time_limit > 0, "--time-limit must be positive"),
        (0 <= options.random_seed < 2 ** 32, "--random-seed must lie in [0, 2^32)"),
        (options.map_unk != options.map_sb, "--map-unk and --map-sb must differ"),
        (options.lam is None or 0 <= options.lam <= 1, "--lambda must lie in [0, 1]"),
        (math.isfinite(options.nn_weight) and 0 <= options.nn_weight <= 1, "--nn-weight must lie in [0, 1]"),
        (math.isfinite(options.lm_weight), "--lm-weight must be a number"),
        (math.isfinite(options.word_penalty), "--word-penalty must be a number"),
        (math.isfinite(options.acoustic_scale) and options.acoustic_scale >= 0,
         "--acoustic-scale must not be negative"),
        (options.frame_shift is None or (math.isfinite(options.frame_shift) and options.frame_shift > 0),
         "--frame-shift must be a positive number of seconds"),
        (options.pruning_threshold is None
         or (math.isfinite(options.pruning_threshold) and options.pruning_threshold >= 0),
         "--pruning-threshold must not be negative (0: an infinite beam)"),
        (options.pruning_limit >= 0, "--pruning-limit must not be negative"),
        (options.num_jobs is None or options.num_jobs >= 1, "--num-jobs must be at least 1"),
        (options.job is None or options.num_jobs is not None, "--job needs --num-jobs, the number of jobs"),
        (options.num_jobs is None or options.job is not None,
         "--num-jobs needs --job I, this job's number from 1 (Kaldi's JOB, $SLURM_ARRAY_TASK_ID)"),
        (options.job is None or options.num_jobs is None or 1 <= options.job <= options.num_jobs,
         f"--job must lie in [1, {options.num_jobs}] (jobs count from 1, as Kaldi's JOB=1:J)"),
        (options.nbest_size is None or options.nbest_size >= 1, "--nbest must be at least 1"),
        (options.dp_order >= 0, "--dp-order must not be negative"),
        (math.isfinite(options.lm_scale) and options.lm_scale > 0, "--lm-scale must be positive"),
        (options.look_ahead_lm_scale is None or (math.isfinite(options.look_ahead_lm_scale)
                                                 and options.look_ahead_lm_scale > 0),
         "--look-ahead-lm-scale must be positive"),
        (options.arpa is None or options.lam is not None, "--arpa needs --lambda, the network's weight in [0, 1]"),
        (bool(options.map_sb.split()) and len(options.map_sb.split()) == 1, "--map-sb must be one word"),
        (bool(options.map_unk.split()) and len(options.map_unk.split()) == 1, "--map-unk must be one word"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)
    return options


# What rwthlm-py's scoring commands (and the Python API), and train continuing a model, take
# from the model file, its training's options, where neither the command line nor --config
# gives it: how the texts were read and, for ppl, the layout the model was trained and
# evaluated with.
TEXT_CONVENTIONS = ["unk", "map_unk", "num_oovs", "map_sb", "debug_no_sb", "encoding"]
SCORING_LAYOUT = ["batch_size", "sequence_length", "word_wrapping", "feedforward"]
FROM_THE_MODEL = {"ppl": TEXT_CONVENTIONS + SCORING_LAYOUT, "nbest": TEXT_CONVENTIONS,
                  "lattice": TEXT_CONVENTIONS, "sample": ["encoding"], "train": TEXT_CONVENTIONS}


def recorded_options(recorded, names, path):
    """The values among `names` that a model file recorded of its training's options, each
    checked for its type and choices as the command line's are (files written before an
    option existed lack it); an InputError naming `path` for a value that cannot be one."""
    values = {}
    for name in names:
        if name not in recorded:
            continue
        field, value = OPTION_FIELDS[name], recorded[name]
        if not _is_value_of(field, value):
            raise InputError(f"corrupt model file (its recorded option {flag_name(field)} is {value!r})", path)
        values[name] = value
    return values


def _is_value_of(field, value):
    if value is None:
        return field.default is None
    if field.type is bool:
        return isinstance(value, bool)
    if field.type is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if field.type is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    choices = field.metadata["choices"]
    return isinstance(value, str) and (not choices or value in choices)


def rescoring_options_given(explicit):
    """The flags of lattice rescoring among the explicitly given option names (--lambda
    with --arpa is ARPA interpolation, not lattice rescoring)."""
    return [flag_name(OPTION_FIELDS[name]) for name in explicit
            if OPTION_FIELDS[name].metadata["group"] == "rescoring"
            and not (name == "lam" and "arpa" in explicit)]


def names_in_group(group):
    return [name for name, field in OPTION_FIELDS.items() if field.metadata["group"] == group]


def to_dict(options):
    return dataclasses.asdict(options)
