"""Argument parsing shared by the command-line programs.

Every program reports bad input as one line on stderr and exit status 2, never
argparse's usage block or a traceback: `OneLineErrorParser.error` raises
`BadInput`, which `parse_command_line` turns into that line.
"""

import argparse
import os
import sys

EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """A one-line description of what was wrong with the command line."""


class OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message):
        # argparse prints the whole usage before its message; one line is enough.
        raise BadInput(message)


def fail(program, message, code=EXIT_BAD_INPUT):
    """Prints `program: error: message` as one line on stderr; returns `code`."""
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    return code


def parse_command_line(parser, argv, validate=None, namespace=None):
    """Parses `argv` (into `namespace`, whose values stand where no flag is
    given), then `validate(args)` if given (it raises `BadInput`).

    Returns `(args, None)`, or `(None, exit_status)`: 0 after `--help`, 2 after
    one line under the parser's `prog` saying what was wrong.
    """
    try:
        args = parser.parse_args(argv, namespace)
        if validate is not None:
            validate(args)
    except BadInput as error:
        return None, fail(parser.prog, error)
    except SystemExit as exit_request:  # --help
        return None, exit_request.code or 0
    return args, None


def program_name(default, argv):
    """The name a command reports its errors under: as the user invoked it
    (`gradattn-train`, `train.py`) when it runs as a program (`argv` is None),
    else `default` (its `main` called from Python with arguments)."""
    if argv is not None:
        return default
    return os.path.basename(sys.argv[0]) or default


def program_arguments(parser, argv):
    """`argv` as a list of strings; `None` means the program's own command
    line, and then the parser takes the name the program was invoked by."""
    if argv is None:
        parser.prog = program_name(parser.prog, None)
        return sys.argv[1:]
    return [str(argument) for argument in argv]


def option_value(argv, flag):
    """The value of `FLAG VALUE` / `FLAG=VALUE` in `argv` (the last one), or
    None: for the few flags a command must read before its parser exists."""
    value = None
    for index, argument in enumerate(argv):
        if argument == flag and index + 1 < len(argv):
            value = argv[index + 1]
        elif argument.startswith(flag + "="):
            value = argument.split("=", 1)[1]
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):
        # Show "(default: ...)" only where it says something the help does not.
        if action.default in (None, False, []) or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_ints(text):
    """A comma-separated list of positive integers, e.g. "32,128"."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def names(text):
    """A non-empty comma-separated list of names."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {text!r}")
    return items


def names_from(allowed, what):
    """An argparse type: a comma-separated list whose items are all in `allowed`."""

    def parse(text):
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items or any(item not in allowed for item in items):
            raise argparse.ArgumentTypeError(f"{what} {text!r}: expected a comma-separated list of {', '.join(allowed)}")
        return items

    return parse


def image_shape(text):
    """`HxWxC`, e.g. "28x28x1", as a tuple of three positive integers."""
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"input shape {text!r} is not HxWxC with positive integers, e.g. 28x28x1")
    return shape


def image_shapes(text):
    """Comma-separated `HxWxC` shapes, e.g. "28x28x1,32x32x3"."""
    return [image_shape(part) for part in text.split(",")]


def key_value_text(text):
    """`KEY=VALUE`, kept as text (the program it is passed on to parses the value)."""
    key, separator, _ = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text
