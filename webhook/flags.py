"""Settings from flags, then MIGRATION_GUARD_* environment variables, then defaults.

Each server declares its settings as a list of `Flag`s next to its frozen settings dataclass; this
module is the one place that turns a command line and an environment into typed values, and every
bad value becomes an InputError naming the flag (never a traceback or an argparse exit).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from webhook.errors import InputError

ENV_PREFIX = "MIGRATION_GUARD_"
LOG_LEVELS = ("debug", "info", "warning", "error")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


@dataclass(frozen=True)
class Flag:
    """One setting: dataclass attribute, flag, help text, and how its text is read.

    kinds: str, int (whole, > 0), duration ('90', '90s', '15m', '12h', '365d'), bool, list
    (comma-separated), url and urls (http(s) only; '' allowed for url), hostport, choice,
    optional (an empty value means None).
    """

    attr: str
    flag: str
    help: str
    kind: str = "str"
    choices: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return env_name(self.flag)


def env_name(flag: str) -> str:
    """--cert-validity -> MIGRATION_GUARD_CERT_VALIDITY."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def parse_duration(text: str | float | int, name: str = "duration") -> float:
    """Seconds from '90', '90s', '15m', '12h', '365d' (why: certificate lifetimes read better)."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise InputError(f"{name}: {text!r} is not a duration (examples: 30s, 15m, 12h, 365d)")
        value = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if value <= 0:
        raise InputError(f"{name}: must be greater than zero, got {text!r}")
    return value


def _url(flag: str, raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise InputError(f"{flag}: {raw!r} is not an http(s) URL")
    return raw


def convert(spec: Flag, raw: str) -> object:
    """The typed value of one flag's text; InputError naming the flag when it is bad."""
    flag, kind = spec.flag, spec.kind
    if kind == "int":
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"{flag}: {raw!r} is not a whole number") from None
        if value <= 0:
            raise InputError(f"{flag}: must be greater than zero, got {raw!r}")
        return value
    if kind == "duration":
        return parse_duration(raw, flag)
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise InputError(f"{flag}: must be true or false, got {raw!r}")
    if kind in ("list", "urls"):
        items = tuple(item.strip() for item in raw.split(",") if item.strip())
        return tuple(_url(flag, i) for i in items) if kind == "urls" else items
    if kind == "url":
        return _url(flag, raw) if raw else raw
    if kind == "choice":
        if raw.lower() not in spec.choices:
            raise InputError(f"{flag}: must be one of {', '.join(spec.choices)}, got {raw!r}")
        return raw.lower()
    if kind == "hostport":
        host, sep, port = raw.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InputError(f"{flag}: {raw!r} is not host:port")
        return raw
    if kind == "optional":
        return raw or None
    return raw


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(message)


def build_parser(prog: str, description: str, specs: Sequence[Flag]) -> argparse.ArgumentParser:
    """--help shows each flag with its environment variable; unknown flags are InputErrors."""
    parser = _Parser(
        prog=prog,
        description=description,
        epilog="Each flag can also be set with the environment variable shown in brackets.",
    )
    add_flags(parser, specs)
    return parser


def add_flags(parser: argparse.ArgumentParser, specs: Sequence[Flag]) -> None:
    """The flags of `specs` on `parser` (also a command's subparser: `check`, `policy`)."""
    for spec in specs:
        extra = {"nargs": "?", "const": "true"} if spec.kind == "bool" else {}
        parser.add_argument(
            spec.flag, dest=spec.attr, default=None, help=f"{spec.help} [{spec.env}]", **extra
        )


def parse(
    parser: argparse.ArgumentParser,
    specs: Sequence[Flag],
    argv: Sequence[str],
    env: Mapping[str, str],
) -> dict[str, object]:
    """{attr: value} for every setting given by flag or environment (KUBECONFIG as a fallback)."""
    return values_of(parser.parse_args(list(argv)), specs, env)


def values_of(
    args: argparse.Namespace, specs: Sequence[Flag], env: Mapping[str, str]
) -> dict[str, object]:
    """{attr: value} of parsed `args` for `specs`, each falling back to its environment variable."""
    values: dict[str, object] = {}
    for spec in specs:
        raw = getattr(args, spec.attr)
        if raw is None:
            raw = env.get(spec.env)
        if raw is None and spec.attr == "kubeconfig":
            raw = env.get("KUBECONFIG")
        if raw is not None:
            values[spec.attr] = convert(spec, raw)
    return values


def settings_help(specs: Sequence[Flag]) -> list[tuple[str, str, str]]:
    """(flag, env var, help) for every setting; used by docs and their tests."""
    return [(spec.flag, spec.env, spec.help) for spec in specs]
