"""The command lines: `rwthlm` (rwthlm's own: `rwthlm [OPTION]... [LATTICE]... NETWORK`)
and `rwthlm-py` (subcommands train, ppl, nbest, lattice, selftest, vocab with the same option
names, and corpora, sample and wer-totals).

The only module that parses arguments (with usage.py's rules). Each subcommand has the
options that apply to it, with their help in its terms (config.help_text), and runs its job
(commands.*_job); `rwthlm`'s flags choose its job in commands.rwthlm_job.
Bad input of any kind ends in one line `<program>: error: ...` on stderr and exit status 1
(2 for bad usage), never a traceback.
"""

import argparse
import contextlib
import os
import signal
import sys
import threading

from rwthlm_py import __version__
from rwthlm_py.config import (
    FROM_THE_MODEL,
    LARGEST_COUNT,
    OPTION_FIELDS,
    Options,
    convert,
    flag_name,
    help_text,
    names_in_group,
    read_config_file,
    recorded_options,
    rescoring_options_given,
    validate,
)
from rwthlm_py.errors import InputError, Terminated
from rwthlm_py.output.reporting import Console
from rwthlm_py.runtime import distributed, jobs, threads
from rwthlm_py.runtime.allocator import keep_freed_memory
from rwthlm_py.text.textio import DEFAULT_ENCODING
from rwthlm_py.usage import Parser, UsageError, check_options_known

SHARED = ["config", "verbose", "vocab", "remap", "unk", "map_unk", "map_sb", "debug_no_sb",
          "batch_size", "sequence_length", "word_wrapping", "feedforward", "num_oovs", "encoding", "backend", "dtype",
          "threads", "record"]
# the gradient check computes in float64 and prints no perplexities
SELFTEST_SHARED = [name for name in SHARED if name not in ("verbose", "num_oovs", "dtype")]
SAMPLE_OPTIONS = ["encoding", "backend", "dtype", "threads"]
VOCAB_OPTIONS = ["train", "classes", "method", "max_iterations", "time_limit", "map_sb", "encoding", "record"]
CLASS_OPTIONS = ["classes", "method", "max_iterations", "time_limit"]
SUBCOMMANDS = {
    "train": ("train a network (rwthlm with --train and --dev)",
              SHARED + ["train", "dev", "random_seed", "learning_rate", "momentum", "max_epoch",
                        "no_shuffling", "no_bias", "gradient_clipping", "min_improvement", "stop_after_halvings",
                        "dropout", "variational_dropout", "tie_weights", "checkpoint_every", "tensorboard"]
              + CLASS_OPTIONS),
    "ppl": ("compute the perplexity of a text (rwthlm with --ppl)",
            SHARED + ["no_unk", "ppl", "tensorboard", "arpa", "lam"]),
    "nbest": ("rescore SRILM or Kaldi n-best lists with the network (and an ARPA model), "
              "re-rank them and count word errors",
              ["config", "vocab", "unk", "no_unk", "map_unk", "map_sb", "batch_size", "num_oovs", "encoding", "backend",
               "dtype", "threads", "record", "arpa", "lam"] + names_in_group("nbest") + names_in_group("jobs")),
    "lattice": ("rescore HTK or Kaldi lattices with the network as rwthlm does (LATTICE... NETWORK), outputs under "
                "--out, a word penalty, an acoustic scale and word error rates",
                ["config", "vocab", "unk", "no_unk", "map_unk", "map_sb", "batch_size", "num_oovs", "encoding",
                 "backend", "dtype", "threads", "record", "out", "word_penalty", "refs", "noise_vocab"]
                + names_in_group("rescoring") + names_in_group("lattice") + names_in_group("jobs")),
    "selftest": ("check the gradients of every layer against finite differences, in float64, on generated text "
                 "(or --train)",
                 SELFTEST_SHARED + ["train", "random_seed", "no_bias", "dropout", "variational_dropout"]),
}
# what NETWORK is to each subcommand
NETWORK_HELP = {
    "train": "the model file: trained further if it exists, else a new network whose file name is its network "
             "string (e.g. ptb-i200-m200)",
    "ppl": "the trained model file",
    "nbest": "the trained model file (not needed with --nn-weight 0, or --lambda 0 with --arpa)",
    "lattice": "the trained model file",
    "selftest": "the network string (e.g. ptb-i200-m200) or model file to check (default: a built-in set of "
                "networks with every layer type)",
}

# where a subcommand's default differs from rwthlm's (nbest: sentences, or prefix-tree nodes,
# scored together, see benchmarks/nbest.py; train: see rate_search_heldout.py and recipes/ptb)
SUBCOMMAND_DEFAULTS = {
    "nbest": {"batch_size": 128},
    # rwthlm-py train's own: the PTB recipe's tuned settings, not rwthlm's batch of 1
    # and a stop of its own: after 4 halvings in a row the rate is a sixteenth of the last one that
    # gained (README: why 4)
    "train": {"batch_size": 20, "sequence_length": 36, "word_wrapping": "stream", "gradient_clipping": 0.25,
              "min_improvement": 1.01, "stop_after_halvings": 4},
}
# rwthlm's command line has every option but those of rwthlm-py's subcommands nbest and
# lattice (their splitting into jobs too), and --no-unk (rwthlm takes nothing from the model file to undo)
RWTHLM_OPTIONS = [name for name in OPTION_FIELDS
                  if name not in names_in_group("nbest") + names_in_group("lattice") + names_in_group("jobs")
                  + ["no_unk"]]


def add_option_flags(parser, names, command, defaults=None):
    """The flags of the options `names`, with their help in `command` (a subcommand, or
    "rwthlm") and its defaults; a help text that names its default gets no other."""
    from_the_model = FROM_THE_MODEL.get(command, [])
    for name in names:
        field = OPTION_FIELDS[name]
        described = help_text(field, command)
        if field.metadata["hidden"]:
            described = argparse.SUPPRESS
        elif name in from_the_model and field.type is bool:
            described += " (default: as the model's training was given)"
        if field.type is bool:
            parser.add_argument(flag_name(field), dest=name, action="store_const", const="true",
                                default=argparse.SUPPRESS, help=described)
        else:
            default = (defaults or {}).get(name, field.default)
            if name in from_the_model:
                described += f" (default: as the model's training was given, else {default})"
            elif default is not None and "(default: " not in described:
                described += f" (default: {default})"
            choices = field.metadata["choices"]
            metavar = field.metadata["metavar"] or field.type.__name__.upper()
            parser.add_argument(flag_name(field), dest=name, default=argparse.SUPPRESS,
                                metavar="{" + ",".join(choices) + "}" if choices else metavar, help=described)


def resolve_options(namespace, names, console, defaults=None):
    """Options from the defaults (rwthlm's, then `defaults`), then the --config file, then the
    command line; and the names the file or the command line set."""
    explicit = {name: convert(OPTION_FIELDS[name], getattr(namespace, name), ())
                for name in names if hasattr(namespace, name)}
    values = {}
    if explicit.get("config"):
        console.say(f"Reading options from config file '{explicit['config']}' ...")
        values.update(read_config_file(explicit["config"]))
    values.update(explicit)
    if values.get("no_unk"):
        if explicit.get("unk"):
            raise UsageError("--unk and --no-unk contradict each other")
        values["unk"] = False
    options = validate(Options(**{**(defaults or {}), **values}))
    write_results_in(options.encoding)
    return options, set(values)


def write_results_in(encoding):
    """Standard output (1-best lines, --verbose lines, a best path's words) in the texts'
    encoding, as SRILM writes back the bytes it read; diagnostics on stderr stay as they are."""
    if encoding != DEFAULT_ENCODING and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(encoding=encoding)


def run_guarded(program, body, console=None):
    """Runs body(); turns user errors into one line and an exit status. SIGTERM and SIGHUP
    end the run as Ctrl-C does: one line, exit 143 or 129, temporary files removed. Standard
    output is flushed before the end, so that a full disk behind it is one line too.

    Under MPI the line names the rank, and a rank that ends with an error ends the whole
    job (the others would wait for it in their next collective for ever)."""
    try:
        ranks = distributed.world()
    except distributed.NoMpi as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    if ranks.size > 1:
        program = f"{program} (rank {ranks.rank} of {ranks.size})"
        if console is not None and not ranks.is_root:
            console.silence()
    status = _guarded(program, body, ranks)
    if status != 0:
        ranks.end_job(status)
    return status


def _guarded(program, body, ranks):
    previous = _terminate_on_signals()
    try:
        status = body()
        sys.stdout.flush()
        return status
    except UsageError as error:
        if not ranks.is_root:  # every rank read the same command line: rank 0 says it once and ends the job
            ranks.barrier()
        print(f"{program}: error: {error} ({error.hint or f'see {program} --help'})", file=sys.stderr)
        return 2
    except InputError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    except Terminated as stop:
        print(f"{program}: stopped by {stop.name}", file=sys.stderr)
        return 128 + stop.signal_number
    except BrokenPipeError:
        sys.stderr.close()
        return 141
    except MemoryError as error:  # an allocation the memory checks did not foresee
        from rwthlm_py.model.memory import out_of_memory_line

        print(f"{program}: error: {out_of_memory_line(error)}", file=sys.stderr)
        return 1
    except OSError as error:  # files are named by InputError: this is standard output or error
        _silence_standard_output()
        print(f"{program}: error: cannot write the output: {error.strerror or error}", file=sys.stderr)
        return 1
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _silence_standard_output():
    """Points standard output at /dev/null, so that the interpreter's last flush of what
    could not be written fails no more."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _terminate_on_signals():
    """Makes SIGTERM and SIGHUP raise Terminated (only the main thread may set handlers);
    returns the handlers they had."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def terminate(number, frame):
        raise Terminated(number, signal.Signals(number).name)

    numbers = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    return {number: signal.signal(number, terminate) for number in numbers}


def lattice_batch_size(options, explicit):
    """Histories per network step in lattice rescoring: --batch-size where given (1 is
    rwthlm's one at a time), else None, a whole time frame at once."""
    return options.batch_size if "batch_size" in explicit else None


def make_backend(options, console):
    """The backend of the options' --backend and --dtype (commands.make_backend)."""
    from rwthlm_py import commands

    return commands.make_backend(options.backend, options.dtype, console)


# -- rwthlm ------------------------------------------------------------------------------------

def rwthlm_parser():
    parser = Parser(prog="rwthlm", usage="rwthlm [OPTION]... [LATTICE]... NETWORK", add_help=False,
                    description="rwthlm_py's rwthlm-compatible command line.")
    parser.add_argument("-h", "--help", action="store_true", help="print this help")
    parser.add_argument("--version", action="store_true", help="print the version")
    add_option_flags(parser, RWTHLM_OPTIONS, "rwthlm")
    parser.add_argument("positional", nargs="*", help=argparse.SUPPRESS)
    return parser


def rwthlm_main(argv=None):
    keep_freed_memory()
    console = Console()
    parser = rwthlm_parser()

    def body():
        arguments = sys.argv[1:] if argv is None else list(argv)
        check_options_known(parser, arguments, rwthlm_py_commands)
        namespace = parser.parse_intermixed_args(arguments)
        if namespace.version:
            console.say(f"rwthlm (rwthlm_py {__version__}), the command line of rwthlm 0.12")
            return 0
        if namespace.help or not namespace.positional:
            parser.print_help()
            return 0
        options, explicit = resolve_options(namespace, RWTHLM_OPTIONS, console)
        threads.settle(options.threads)
        lattices, network = namespace.positional[:-1], namespace.positional[-1]
        misplaced = rescoring_options_given(explicit)
        if misplaced and not lattices:
            raise InputError(f"{', '.join(misplaced)}: only for lattice rescoring (give LATTICE files "
                             "before the NETWORK)")
        from rwthlm_py.commands import run  # rwthlm's flags choose the job (commands.rwthlm_job)

        with recorded(options, "rwthlm", argv, console) as finish:
            return finish(run(options, network, make_backend(options, console), console, lattices,
                              lattice_batch_size(options, explicit)))

    return run_guarded("rwthlm", body, console)


@contextlib.contextmanager
def recorded(options, command, argv, console):
    """Runs the body inside a run record when --record is given; yields finish(status),
    which notes the exit status in the record and returns it."""
    from rwthlm_py.output.run_record import recording

    full_argv = [sys.argv[0]] + list(sys.argv[1:] if argv is None else argv)
    folder = options.record if distributed.world().is_root else None  # one record for the ranks of a job
    with recording(folder, command, full_argv, options, console) as record:
        def finish(status):
            if record is not None:
                record.status = status
            return status

        yield finish


# -- rwthlm-py ---------------------------------------------------------------------------------

def rwthlm_py_commands():
    """rwthlm-py's subcommands {"rwthlm-py name": parser}: an option rwthlm lacks is often one
    of theirs (--num-jobs, --out, --kaldi-words)."""
    return {f"rwthlm-py {name}": command for name, command in main_parser().commands.choices.items()}


def main_parser():
    parser = Parser(prog="rwthlm-py", description="LSTM language models the rwthlm way.")
    parser.add_argument("--version", action="version", version=f"rwthlm_py {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=Parser)
    for name, (description, names) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=description, description=description)
        add_option_flags(sub, names, name, SUBCOMMAND_DEFAULTS.get(name))
        if name == "lattice":
            sub.add_argument("lattices", metavar="LATTICE", nargs="+",
                             help="HTK lattices (SLF), or Kaldi text archives with --kaldi-words; gzip allowed")
            parser.lattice_parser = sub
        sub.add_argument("network", metavar="NETWORK", nargs="?" if name in ("selftest", "nbest") else None,
                         help=NETWORK_HELP[name])
        if name == "nbest":
            add_nbest_inputs(sub)
    vocab = commands.add_parser("vocab", help="write a vocabulary file, with word classes if asked",
                                description="Build an rwthlm vocabulary file from a training text: every "
                                            "word in its own class, or --classes word classes.")
    add_option_flags(vocab, VOCAB_OPTIONS, "vocab")
    vocab.add_argument("--seed", dest="random_seed", default=argparse.SUPPRESS, metavar="INT",
                       help="seed of the exchange algorithm's word order (default: 1)")
    vocab.add_argument("--out", required=True, metavar="FILE", help="the vocabulary file to write")
    add_corpora_parser(commands)
    add_sample_parser(commands)
    add_wer_totals_parser(commands)
    return parser


def add_wer_totals_parser(commands):
    totals = commands.add_parser(
        "wer-totals", help="sum the word error counts of the jobs of a split nbest or lattice run",
        description="The word error rates of a run split with --num-jobs (or into any parts): reads the WER lines "
                    "that nbest and lattice print with --refs (`original 1-best:`, `rescored 1-best:`, `oracle:`) "
                    "from each job's log or saved output, and prints the three lines of their summed counts, as "
                    "one run over all the inputs prints them. Other lines are ignored; a file without WER lines "
                    "(a job that counted no utterance) is named on stderr.")
    totals.add_argument("files", metavar="FILE", nargs="+",
                        help="a job's log or saved output (gzip allowed), e.g. exp/rescore/log/rescore.*.log")


def add_sample_parser(commands):
    sample = commands.add_parser("sample", help="print sentences drawn from a model",
                                 description="Sentences drawn word by word from the model's distribution "
                                             "(a class, then a word within it), one per line.")
    sample.add_argument("network", metavar="NETWORK", help="the model file")
    sample.add_argument("--num", type=int, default=10, help="how many sentences (default: 10)")
    sample.add_argument("--temperature", type=float, default=1.0,
                        help="divide the logits by this: below 1 sharper, above 1 flatter (default: 1)")
    sample.add_argument("--seed", type=int, default=1, help="seed of the draws (default: 1)")
    sample.add_argument("--max-length", type=int, default=200,
                        help="a sentence ends after this many words if it has not ended (default: 200)")
    add_option_flags(sample, SAMPLE_OPTIONS, "sample")


def add_nbest_inputs(parser):
    parser.add_argument("--nbest", action="append", default=[], metavar="PATH",
                        help="an SRILM n-best list (NBestList1.0, NBestList2.0 or `ascore lscore nwords words` "
                             "lines; gzip allowed), one file per utterance, or a directory of them; may be "
                             "repeated; the utterance id is the file name up to its first dot")
    parser.add_argument("--nbest-files", metavar="FILE", help="a file naming SRILM n-best lists, one per line")
    parser.add_argument("--kaldi", nargs=3, metavar=("TEXT", "AC_COST", "LM_COST"),
                        help="Kaldi n-best: `<utt-id>-<n> words` lines and `key cost` files (negated "
                             "natural logs) of the acoustic and the LM cost")


def add_corpora_parser(commands):
    corpora = commands.add_parser("corpora", help="list, fetch and verify the corpora of the recipes",
                                  description="The corpora described in corpora/*/manifest.toml.")
    actions = corpora.add_subparsers(dest="action", required=True, metavar="ACTION", parser_class=Parser)
    actions.add_parser("list", help="the corpora, their licences and files")
    fetch = actions.add_parser(
        "fetch", help="copy or download a corpus and verify every file's sha256 and counts",
        description="Takes the files from --from DIR (or $RWTHLM_CORPORA), else downloads them from "
                    "the manifest's URLs; verifies sha256, bytes, lines and words of each; writes them "
                    "gzip-compressed to DEST/NAME.")
    fetch.add_argument("name", metavar="NAME", help="a corpus (see `rwthlm-py corpora list`) or a manifest file")
    fetch.add_argument("--dest", default="data", help="where the corpus folder goes (default: data)")
    fetch.add_argument("--from", dest="source", metavar="DIR",
                       help="a directory holding the files, directly or in the corpus's folder")


def main(argv=None):
    keep_freed_memory()
    console = Console()
    parser = main_parser()

    def body():
        namespace = parse_command_line(parser, argv)
        if namespace.command == "corpora":
            return run_corpora(namespace, console)
        if namespace.command == "sample":
            return run_sample(namespace, console)
        if namespace.command == "wer-totals":
            return run_wer_totals(namespace.files, console)
        if namespace.command == "vocab":
            options, _ = resolve_options(namespace, VOCAB_OPTIONS + ["random_seed"], console)
            with recorded(options, "vocab", argv, console) as finish:
                return finish(run_vocab(options, namespace.out, console))
        names = SUBCOMMANDS[namespace.command][1]
        from_model = model_defaults(namespace.command, namespace.network, names)
        options, explicit = resolve_options(namespace, names, console,
                                            {**SUBCOMMAND_DEFAULTS.get(namespace.command, {}), **from_model})
        required = {"train": ["train", "dev"], "ppl": ["ppl"]}.get(namespace.command, [])
        for name in required:
            if getattr(options, name) is None:
                raise UsageError(f"{namespace.command} needs {flag_name(OPTION_FIELDS[name])}",
                                 help_of(namespace.command))
        threads.settle(options.threads)
        if namespace.command == "ppl":
            console.note(layout_line(options, explicit, from_model))
        with recorded(options, namespace.command, argv, console) as finish:
            return finish(SUBCOMMAND_JOBS[namespace.command](namespace, options, explicit, console))

    return run_guarded("rwthlm-py", body, console)


def model_defaults(command, network_path, names):
    """The options `command` takes from the model file at `network_path` (FROM_THE_MODEL),
    among `names`; none where there is no readable model file: the command says so after
    the errors of its command line. The `rwthlm` command takes none: it keeps rwthlm's
    defaults."""
    wanted = [name for name in FROM_THE_MODEL.get(command, []) if name in names]
    if not wanted or network_path is None or not os.path.isfile(network_path):
        return {}
    from rwthlm_py.model.checkpoint import read_model_meta

    try:
        meta = read_model_meta(network_path)
    except InputError:
        return {}
    return recorded_options(meta["options"], wanted, network_path)


def help_of(command):
    """The hint of a subcommand's usage errors: where its own options are described."""
    return f"see rwthlm-py {command} --help"


def layout_line(options, explicit, from_model):
    """The scoring layout `rwthlm-py ppl` uses, and where each part comes from."""
    def source(name):
        return "given" if name in explicit else "the model's" if name in from_model else "default"

    parts = [f"batch size {options.batch_size} ({source('batch_size')})",
             f"sequence length {options.sequence_length} ({source('sequence_length')})",
             f"word wrapping {options.word_wrapping} ({source('word_wrapping')})"]
    if options.feedforward:
        parts.append(f"feedforward ({source('feedforward')})")
    return "scoring layout: " + ", ".join(parts)


def parse_command_line(parser, argv):
    """The namespace of rwthlm-py's arguments. `lattice` takes its options anywhere among the
    LATTICE files, as rwthlm does: argparse's subcommands would stop reading options at the
    first file."""
    argv = sys.argv[1:] if argv is None else list(argv)
    check_options_known(parser, argv)
    if argv[:1] != ["lattice"]:
        return parser.parse_args(argv)
    namespace = parser.lattice_parser.parse_intermixed_args(argv[1:])
    namespace.command = "lattice"
    return namespace


# -- rwthlm-py's subcommands: each runs its job (commands.*_job) -----------------------------------

def run_train(namespace, options, explicit, console):
    from rwthlm_py.commands import heldout_rate_search, train_job, training_settings
    from rwthlm_py.preparation import model_setup

    return train_job(model_setup(options), training_settings(options, heldout_rate_search), namespace.network,
                     make_backend(options, console), console)


def run_ppl(namespace, options, explicit, console):
    from rwthlm_py.commands import perplexity_settings, ppl_job
    from rwthlm_py.preparation import model_setup

    return ppl_job(model_setup(options), perplexity_settings(options, skip_oovs=True), namespace.network,
                   make_backend(options, console), console, share=job_share(options))


def run_lattice(namespace, options, explicit, console):
    from rwthlm_py.commands import lattice_job, lattice_rescoring
    from rwthlm_py.preparation import model_setup

    share = job_share(options)
    if options.dependent and share.count > 1:
        jobs.refuse(distributed.world(), InputError("--dependent: each lattice starts from the state the one before "
                                                    "it ended in, so its lattices cannot be split into jobs"))
    return lattice_job(model_setup(options), lattice_rescoring(options, lattice_batch_size(options, explicit)),
                       namespace.network, namespace.lattices, make_backend(options, console), console, "rwthlm-py",
                       share)


def run_nbest(namespace, options, explicit, console):
    from rwthlm_py.commands import nbest_job, nbest_rescoring
    from rwthlm_py.preparation import model_setup

    return nbest_job(model_setup(options), nbest_rescoring(options), namespace.network,
                     (namespace.nbest, namespace.nbest_files, namespace.kaldi), console, job_share(options))


def job_share(options):
    """This process's part of the inputs: --num-jobs and --job, or its MPI rank (runtime.jobs)."""
    return jobs.share_of(options.num_jobs, options.job, distributed.world())


def run_selftest(namespace, options, explicit, console):
    from rwthlm_py.commands import selftest_job, selftest_settings
    from rwthlm_py.preparation import model_setup

    if options.train is not None and namespace.network is None:
        raise UsageError("selftest --train needs NETWORK, the network string or model file to check on the text",
                         help_of("selftest"))
    # the checks on generated text compute in float64 from the start
    backend_options = options.replace(dtype="float64") if options.train is None else options
    return selftest_job(model_setup(options), selftest_settings(options), namespace.network,
                        make_backend(backend_options, console), console)


SUBCOMMAND_JOBS = {"train": run_train, "ppl": run_ppl, "lattice": run_lattice, "nbest": run_nbest,
                   "selftest": run_selftest}


def run_corpora(namespace, console):
    from rwthlm_py.text import corpora

    if namespace.action == "list":
        for name in corpora.available():
            manifest = corpora.load_manifest(name)
            files = ", ".join(corpus_file.name for corpus_file in manifest.files)
            console.say(f"{name}: {manifest.title}\n  licence: {manifest.licence}\n  files: {files}")
        return 0
    manifest = corpora.load_manifest(namespace.name)
    source = namespace.source or corpora.default_source()
    dest = corpora.fetch(manifest, f"{namespace.dest}/{manifest.name}", source, console)
    console.say(f"{manifest.name}: all {len(manifest.files)} files verified in {dest}")
    return 0


def run_sample(namespace, console):
    from rwthlm_py.commands import sample_job
    from rwthlm_py.scoring.sampling import Draws

    for flag, value in (("--num", namespace.num), ("--max-length", namespace.max_length)):
        if not 1 <= value <= LARGEST_COUNT:
            raise UsageError(f"{flag} must lie in [1, {LARGEST_COUNT:,}]", help_of("sample"))
    if not (namespace.temperature > 0 and namespace.temperature < float("inf")):
        raise UsageError("--temperature must be a positive number", help_of("sample"))
    if not 0 <= namespace.seed < 2 ** 63:
        raise UsageError("--seed must lie in [0, 2^63)", help_of("sample"))
    options, _ = resolve_options(namespace, SAMPLE_OPTIONS, console,
                                 model_defaults("sample", namespace.network, SAMPLE_OPTIONS))
    threads.settle(options.threads)
    draws = Draws(namespace.num, namespace.temperature, namespace.seed, namespace.max_length)
    return sample_job(namespace.network, draws, options.backend, options.dtype, console)


def run_wer_totals(files, console):
    from rwthlm_py.rescoring.wer import sum_error_lines

    lines, without = sum_error_lines(files)
    for path in without:
        console.note(f"{path}: no WER lines (a job run without --refs, or one that counted no utterance)")
    for line in lines:
        console.say(line)
    return 0


def run_vocab(options, out, console):
    from rwthlm_py.commands import vocab_job
    from rwthlm_py.preparation import vocabulary_building

    if options.train is None:
        raise UsageError("vocab needs --train", help_of("vocab"))
    return vocab_job(vocabulary_building(options), out, console, options.config)


if __name__ == "__main__":
    sys.exit(main())
