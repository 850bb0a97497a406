"""Reading a stage's YAML recipe and checking every field against the stage's config dataclasses.

TrlParser would let a YAML value of the wrong type through as an argparse default, and the stage would fail
later, far from the line that caused it. Here an unknown field, a value of the wrong type or YAML that does not
parse becomes one `UsageError` naming the file and line, before the stage starts (`rlrec.cli.run_stage`).
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import difflib
import enum
import logging
import types
import typing
from pathlib import Path
from typing import Any

from rlrec.utils.errors import UsageError, shown


def check_config_file(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """Read the YAML recipe at `path` and check every field against the stage's dataclasses; return it.

    Errors name the file, the line and what was expected: a missing file, text that is not YAML, a
    top level that is not a mapping, unknown fields, values of the wrong type.
    """
    config, file, lines = read_config_file(path)
    check_config_fields(parser, config, file, lines)
    return config


def read_config_file(path: str) -> tuple[dict[str, Any], Path, dict[str, int]]:
    """The YAML mapping at `path`, the path, and the line of each top-level field; UsageError when unreadable."""
    import yaml

    file = Path(path)
    if file.is_dir():
        raise UsageError(f"{file}: config is a folder; expected a YAML file (recipes/NAME/STAGE.yaml)")
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise UsageError(f"{file}: config file not found") from err
    except UnicodeDecodeError as err:
        raise UsageError(f"{file}: config is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
                         f"{err.start}); expected a YAML file") from err
    except OSError as err:
        raise UsageError(f"{file}: cannot read the config file ({err.strerror or err})") from err
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UsageError(f"{file}: {_yaml_problem(err)}") from err
    if not isinstance(config, dict) or not isinstance(root, yaml.MappingNode):
        got = "an empty file" if config is None else f"a YAML {type(config).__name__}"
        raise UsageError(f"{file}: expected a mapping of `field: value` lines, found {got}")
    lines: dict[str, int] = {}
    for key_node, _ in root.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if key in lines:  # YAML keeps the last value; legal for PyYAML, but worth a word
            logging.getLogger(__name__).warning("%s: line %d: field `%s` is set again (line %d's value is replaced)",
                                                file, line, key, lines[key])
        lines[key] = line
    return config, file, lines


def check_config_fields(parser: argparse.ArgumentParser, config: dict[str, Any], file: Path,
                        lines: dict[str, int]) -> None:
    """Every field of `config` (read from `file`) is one of the parser's, with a value TrlParser can pass on."""
    fields = _field_types(parser)
    actions = {action.dest: action for action in parser._actions}
    for key, value in config.items():
        where = f"{file}: line {lines.get(str(key), '?')}"
        if not isinstance(key, str):
            raise UsageError(f"{where}: field name {key!r} is not a word; expected `field: value`")
        if key == "env":
            if not isinstance(value, dict):
                raise UsageError(f"{where}: `env` is {shown(value, 60)}; expected a mapping of environment variables")
            continue
        if key not in actions or key == "help":
            close = difflib.get_close_matches(key, [a for a in actions if a != "help"], n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            raise UsageError(f"{where}: unknown field `{key}`{hint}; see `--help` for the fields of this stage")
        annotation, default = fields.get(key, (Any, None))
        action = actions[key]
        if not _value_fits(value, annotation, default, action):
            # YAML 1.1 reads unquoted no/yes/on/off as booleans: `save_strategy: no` arrives as False.
            hint = " (YAML reads unquoted no, yes, on, off as booleans: quote the word)" \
                if isinstance(value, bool) else ""
            expected = _expected(annotation, action)
            raise UsageError(f"{where}: field `{key}` is {shown(value, 60)}; expected {expected}{hint}")


def _yaml_problem(err: Exception) -> str:
    """One line for a YAML error: where it is, what the parser was reading, what it found."""
    import yaml

    if isinstance(err, yaml.MarkedYAMLError) and (err.context_mark or err.problem_mark):
        mark = err.context_mark or err.problem_mark
        what = "; ".join(part for part in (err.context, err.problem) if part)
        at = ""
        if err.context_mark and err.problem_mark:
            at = f" (at line {err.problem_mark.line + 1}, column {err.problem_mark.column + 1})"
        return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {what}{at}"
    return "invalid YAML: " + " ".join(str(err).split())


def _field_types(parser: argparse.ArgumentParser) -> dict[str, tuple[Any, Any]]:
    """`{field: (type annotation, default)}` over the parser's dataclasses (Any where a hint cannot be read)."""
    out: dict[str, tuple[Any, Any]] = {}
    for dataclass_type in getattr(parser, "dataclass_types", ()):
        try:
            hints = typing.get_type_hints(dataclass_type)
        except Exception:  # a hint naming something not importable: check nothing rather than fail
            hints = {}
        for f in dataclasses.fields(dataclass_type):
            if f.init:
                default = None if f.default is dataclasses.MISSING else f.default
                out[f.name] = (hints.get(f.name, Any), default)
    return out


def _value_fits(value: Any, annotation: Any, default: Any, action: argparse.Action) -> bool:
    """Whether TrlParser can pass the YAML `value` to the field: of its type, or a string argparse converts."""
    if value is None:
        return default is None or _fits(None, annotation)
    if isinstance(value, str) and action.choices is not None and action.nargs not in ("+", "*"):
        return value in [str(c) for c in action.choices]
    if _fits(value, annotation):
        return True
    if isinstance(value, str) and action.nargs in ("+", "*"):
        # TrlParser hands a string on as it is; for a list of strings the consumer may take one
        # (`lora_target_modules: all-linear` is what PEFT reads), for a list of numbers nothing does.
        return action.type in (None, str)
    if isinstance(value, str) and callable(action.type):
        try:  # argparse converts a string default with the field's type, as it would a flag's value
            action.type(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            return False
        return True
    return False


def _fits(value: Any, annotation: Any) -> bool:
    """`value` (from YAML) is of type `annotation`; types this does not know are accepted."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or isinstance(annotation, (str, typing.TypeVar)):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return value in [member.value for member in annotation]
    if annotation in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, list):
            return False
        item = args[0] if args and origin is not tuple else Any
        return all(_fits(v, item) for v in value)
    if annotation is dict or origin is dict:
        return isinstance(value, dict)
    return True


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping"}
_PLURALS = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}


def _expected(annotation: Any, action: argparse.Action) -> str:
    """What a field takes, in words: `an integer`, `a list of integers`, `one of: a, b`, `... or null`."""
    if action.choices is not None:
        return "one of: " + ", ".join(str(c) for c in action.choices)
    parts: list[str] = []
    nullable = False
    for arg in typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) \
            else (annotation,):
        if arg is type(None):
            nullable = True
            continue
        origin = typing.get_origin(arg)
        if origin is typing.Literal:
            text = "one of: " + ", ".join(str(a) for a in typing.get_args(arg))
        elif arg in (list, tuple) or origin in (list, tuple, collections.abc.Sequence):
            inner = typing.get_args(arg)
            text = f"a list of {_PLURALS.get(inner[0], 'values')}" if inner else "a list"
        elif origin is dict:
            text = "a mapping"
        elif isinstance(arg, type) and issubclass(arg, enum.Enum):
            text = "one of: " + ", ".join(str(m.value) for m in arg)
        else:
            text = _NAMES.get(arg, getattr(arg, "__name__", str(arg)))
        if text not in parts:
            parts.append(text)
    if nullable:
        parts.append("null")
    return " or ".join(parts) or "a value"
