"""``-c/--config FILE``: a TOML file of a command's options, by the names of its flags.

Theory of operation
-------------------

There is no second list of options: :func:`apply_config_file` reads the
command's own :mod:`argparse` actions. A key is the long name of a flag
without its dashes (``graceful-timeout``, or ``graceful_timeout``), or the
name of a positional argument (``app``, ``endpoints``); its value goes
through the action's own ``type`` and ``choices`` and becomes the action's
default, so that whatever the command line gives wins when it is parsed
again. An option added to a command later works in the file at once.

========================  ======================================================
action                    value in the file
========================  ======================================================
a flag (``--quic-retry``) ``true`` or ``false``
a count (``-v``)          a whole number, at least 0
an option with a value    a string, or a number where the option takes one
a repeatable option       a list of values (``allow = ["*:443"]``); the command
                          line's add to them
a list (``endpoints``)    a list of values
========================  ======================================================
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "add_config_option", "apply_config_file"]

#: Actions that have no place in a file.
_NOT_IN_FILES = (argparse._HelpAction, argparse._VersionAction)
#: Destinations that have no place in a file (the file itself, the reloader).
_NOT_IN_FILES_DEST = ("config", "reload")


class ConfigError(Exception):
    """A problem with the configuration file: one line naming the file and the key, exit status 2."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """The ``-c``/``--config FILE`` option."""
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help=(
            "read options from a TOML file, by the names of the flags (graceful-timeout = 5, "
            'app = "mod:app", endpoints = [...]); the command line overrides it'
        ),
    )


def _names(action: argparse.Action) -> list[str]:
    long = [s.lstrip("-") for s in action.option_strings if s.startswith("--")]
    names = long or [action.dest]
    return [name.replace("_", "-") for name in names]


def apply_config_file(parser: argparse.ArgumentParser, path: str) -> None:
    """Make the values of the TOML file at *path* the defaults of *parser*'s options.

    :raises ConfigError: if the file cannot be read or parsed, or for an
        unknown key or a value of the wrong type
    """
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    actions: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, _NOT_IN_FILES) or action.dest in _NOT_IN_FILES_DEST:
            continue
        for name in _names(action):
            actions[name] = action
    defaults: dict[str, Any] = {}
    chosen: dict[int, str] = {}  # mutually exclusive group -> the key that chose it
    for key, value in data.items():
        found = actions.get(key.replace("_", "-"))
        if found is None:
            raise ConfigError(f"{path}: unknown key {key!r} (the keys are the names of the flags of --help)")
        action = found
        where = f"{path}: {key}"
        for group in parser._mutually_exclusive_groups:
            if action in group._group_actions:
                other = chosen.setdefault(id(group), key)
                if other != key and value is not False:
                    raise ConfigError(f"{path}: {other} and {key} exclude each other")
        converted = _convert(action, value, where)
        if converted is not _SKIP:
            defaults[action.dest] = converted
    parser.set_defaults(**defaults)


_SKIP = object()


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(action, argparse._StoreConstAction):  # also store_true and store_false
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, not {_shown(value)}")
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            return action.const if value else not action.const
        return action.const if value else _SKIP
    if isinstance(action, argparse._CountAction):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: must be a whole number, at least 0, not {_shown(value)}")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*")
    if many:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be a list, not {_shown(value)}")
        if action.nargs == "+" and not value:
            raise ConfigError(f"{where}: must not be empty")
        return [_scalar(action, item, where) for item in value]
    return _scalar(action, value, where)


def _scalar(action: argparse.Action, value: Any, where: str) -> Any:
    if action.type is None:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, not {_shown(value)}")
        converted: Any = value
    else:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where}: must be a string or a number, not {_shown(value)}")
        convert: Any = action.type
        try:
            converted = convert(str(value))
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {value!r} is not one of {choices}")
    return converted


def _shown(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }
    return f"{kind.get(type(value), type(value).__name__)} ({value!r})"
