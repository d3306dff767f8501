"""Command-line flags derived from a settings model: one CLI style for both ends.

Each field of a pydantic-settings model becomes ``--field-name`` (plus short aliases such
as ``--db``); its help is the field's description, its environment variable and its
default. The flags a user gives become init arguments of the model, so flags override
environment variables, which override defaults, and pydantic validates all three alike.
A bad value becomes a ``SettingsError`` of one line that names where the value came
from, ``--port`` or ``COGENESIS_EDGE_PORT``; text values (tokens, URLs with passwords)
are never echoed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import AliasChoices, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from pydantic_settings import SettingsError as SourceError

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


class SettingsError(ValueError):
    """A setting that does not validate; the message is one line."""


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_settings_flags(
    parser: argparse.ArgumentParser,
    settings_cls: type[BaseSettings],
    fields: Iterable[str] | None = None,
    *,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """One flag per field (every field when ``fields`` is None); its dest is the field name.

    The flags carry strings: pydantic converts and checks them, as it does env vars.
    """
    aliases = aliases or {}
    for name in settings_cls.model_fields if fields is None else fields:
        info = settings_cls.model_fields[name]
        parser.add_argument(
            flag_name(name),
            *aliases.get(name, ()),
            dest=name,
            metavar=_metavar(name, info),
            help=_help(settings_cls, name, info),
        )


def load_settings(settings_cls: type[SettingsT], args: argparse.Namespace) -> SettingsT:
    """The settings from the flags in ``args``, then the environment, then the defaults."""
    given = {
        name: value
        for name in settings_cls.model_fields
        if (value := getattr(args, name, None)) is not None
    }
    try:
        return settings_cls(**given)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, settings_cls, given)) from exc
    except SourceError as exc:  # an env value that its source could not even decode
        raise SettingsError(f"bad setting: {exc}") from exc


def env_names(settings_cls: type[BaseSettings], field: str) -> list[str]:
    """The environment variables a field is read from, as a user would write them."""
    alias = settings_cls.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [choice.upper() for choice in alias.choices if isinstance(choice, str)]
    if isinstance(alias, str):
        return [alias.upper()]
    return [(settings_cls.model_config.get("env_prefix", "") + field).upper()]


def _metavar(name: str, info: FieldInfo) -> str:
    if get_origin(info.annotation) is Literal:
        return "{" + ",".join(str(choice) for choice in get_args(info.annotation)) + "}"
    return name.upper()


def _help(settings_cls: type[BaseSettings], name: str, info: FieldInfo) -> str:
    facts = [f"env {env_names(settings_cls, name)[0]}"]
    facts.append(f"default {'unset' if info.default is None else info.default}")
    bounds = [
        f"{sign} {getattr(rule, bound)}"
        for rule in info.metadata
        for bound, sign in _BOUNDS
        if getattr(rule, bound, None) is not None
    ]
    if bounds:
        facts.append(", ".join(bounds))
    text = f"{info.description or ''} [{'; '.join(facts)}]"
    return text.replace("%", "%%")  # argparse formats help strings with %


def _describe(exc: ValidationError, settings_cls: type[BaseSettings], given: dict) -> str:
    problems = []
    for error in exc.errors():
        field = _field_at(settings_cls, error["loc"])
        if field is None:
            problems.append(_reason(error))
            continue
        source = flag_name(field) if field in given else _env_source(settings_cls, field)
        message = f"{source}: {_reason(error)}"
        if _may_echo(settings_cls.model_fields[field]) and "input" in error:
            message += f" (got {_short(error['input'])})"
        problems.append(message)
    return "bad setting " + "; ".join(problems)


def _reason(error: Any) -> str:
    if error["type"] == "value_error":  # a validator's own words, without "Value error, "
        return str(error["ctx"]["error"])
    return error["msg"]


def _field_at(settings_cls: type[BaseSettings], loc: tuple[Any, ...]) -> str | None:
    if not loc:
        return None
    head = str(loc[0])
    for name in settings_cls.model_fields:
        if head == name or head.upper() in env_names(settings_cls, name):
            return name
    return None


def _env_source(settings_cls: type[BaseSettings], field: str) -> str:
    names = env_names(settings_cls, field)
    present = {key.upper() for key in os.environ}
    return next((name for name in names if name in present), names[0])


def _may_echo(info: FieldInfo) -> bool:
    """Numbers, choices and paths are echoed back; text may be a token or hold a password."""
    kinds = {info.annotation, *get_args(info.annotation)}
    return not kinds & {str, SecretStr}


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
