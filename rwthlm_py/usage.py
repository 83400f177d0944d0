"""How both command lines read their arguments: argparse without abbreviated options, bad
usage as one line (UsageError, exit status 2), and an unknown option or command named
together with the nearest known one, before any other check.

argparse alone would take `--batch 2` as `--batch-size 2`, and end an unknown option
in `unrecognized arguments` without saying what was meant.
"""

import argparse

from rwthlm_py.config import closest_names, suggestion
from rwthlm_py.errors import shortened, visible


class UsageError(Exception):
    """A bad command line. `hint` ends the printed line in parentheses (None: where the
    help is). The message is shortened and made visible as InputError's is."""

    def __init__(self, message, hint=None):
        super().__init__(visible(shortened(message)))
        self.hint = hint


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, no abbreviated options, and the flags and
    subcommands it has at hand for check_options_known."""

    def __init__(self, **kwargs):
        self.flags = []  # before argparse's own __init__, which adds -h and --help
        self.commands = None
        super().__init__(allow_abbrev=False, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        self.flags += action.option_strings
        return action

    def add_subparsers(self, **kwargs):
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def error(self, message):
        raise UsageError(message, f"see {self.prog} --help")


def check_options_known(parser, argv, siblings=None):
    """Raises UsageError for the first option in `argv` that `parser` (or the subcommand
    named in argv) does not know, or for an unknown subcommand; `siblings` gives the other
    commands {name: parser} (a subcommand's parent's others): a function, called only for an
    unknown option (another program's parsers take time to make), whose options are named
    where the option belongs to one of them."""
    for position, token in enumerate(argv):
        if token == "--":
            return
        if looks_like_option(token):
            name = token.split("=", 1)[0]
            if name not in parser.flags:
                raise unknown_option(name, parser, siblings() if siblings else {})
        elif parser.commands is not None:
            command = parser.commands.choices.get(token)
            if command is None:
                hint = suggestion(closest_names(token, list(parser.commands.choices)))
                raise UsageError(f"unknown command '{token}'", hint)
            check_options_known(command, argv[position + 1:], lambda: parser.commands.choices)
            return


def looks_like_option(token):
    """An argument that starts with `-`, other than `-` (standard input) and numbers."""
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


def unknown_option(name, parser, siblings):
    """The UsageError of an option `parser` does not have: with the subcommands that have
    it as it is spelled (the likelier mistake: the right option on the wrong command), else
    the nearest of its own."""
    owners = [command for command, other in siblings.items() if other is not parser and name in other.flags]
    if owners:
        listed = " and ".join([", ".join(owners[:-1]), owners[-1]] if len(owners) > 1 else owners)
        hint = f"an option of {listed}; see {parser.prog} --help"
    else:
        long_flags = [flag[2:] for flag in parser.flags if flag.startswith("--")]
        hint = suggestion(closest_names(name.lstrip("-"), long_flags), "--")
    return UsageError(f"unrecognized option {name}", hint or f"see {parser.prog} --help")
