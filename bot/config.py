"""Settings from the environment (secrets, endpoints) and per-repository behaviour.

Secrets live only in the environment so they never land in a repository. Behaviour lives in the
served repository's `.github/bot.toml`, read from its default branch, so maintainers change how
the bot acts with a reviewed pull request rather than a redeploy. Every key has a default that
fits this repository, so a repository without the file gets sensible behaviour.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tomllib
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bot.kit.feature import Feature

CONFIG_PATH = ".github/bot.toml"
#: The most entries an array section (`[[scheduled_ci]]`) takes: a cap on what one file costs.
MAX_ARRAY_ENTRIES = 50
#: A section's field whose default is None says in its metadata under this key what leaving it
#: unset does: TOML has no null, so `bot config show` writes it as a comment with that text.
UNSET_MEANS = "unset_means"


class ConfigError(ValueError):
    """A configuration problem a person must fix; the message names the bad key."""


# --------------------------------------------------------------------------- environment


#: What `bot setup` writes, in the folder the bot starts in.
ENV_FILE = ".env"


@dataclass(frozen=True)
class Settings:
    """Process-wide settings; read once at start-up from the environment."""

    webhook_secret: str | None = None
    github_app_id: str | None = None
    github_private_key: str | None = field(default=None, repr=False)
    #: where the key was read from (absolute), for the start-up log; None when given inline
    github_private_key_path: str | None = None
    github_token: str | None = field(default=None, repr=False)
    github_api_url: str = "https://api.github.com"
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_webhook_url: str | None = field(default=None, repr=False)
    slack_api_url: str = "https://slack.com/api/"
    database: str = "var/bot.sqlite3"
    handle: str = "bot"
    max_attempts: int = 5
    retry_base_seconds: float = 2.0
    log_level: str = "INFO"
    log_format: str = "auto"
    public_url: str = ""
    #: Intake limits (README, "Limits"): open connections, seconds to send a request head and
    #: a body, and bytes of request bodies being read at once across all connections.
    #: Slow-test jobs: at once (GPUs are still handed out one job each), where checkouts and
    #: cached test environments live, and an existing interpreter to use instead of the cache.
    job_concurrency: int = 2
    job_work_dir: str = "var/jobs"
    env_cache_dir: str = "var/envs"
    test_python: str | None = None
    #: Deliveries handled at once (one at a time per pull request), and each handler's limit.
    worker_concurrency: int = 16
    handler_timeout_seconds: float = 300.0
    #: A slow job on GitHub Actions is polled when no webhook about it came for this long.
    actions_poll_seconds: float = 60.0
    max_connections: int = 1000
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    body_bytes_in_flight: int = 64 * 1024 * 1024
    #: Signing in to the web pages, through the GitHub App's own OAuth client (its client id
    #: and secret, on the App's settings page): private repositories' run pages need it. Without
    #: them, private pages and operator pages answer the admin token alone.
    github_client_id: str | None = None
    github_client_secret: str | None = field(default=None, repr=False)
    #: Scripts reach every page with `Authorization: Bearer <admin_token>`.
    admin_token: str | None = field(default=None, repr=False)
    #: Signed-in logins (lower-cased) that may see deliveries and the outbox, replay and retry.
    #: A list here rather than a GitHub role: who runs the bot is not who maintains a repository.
    operators: tuple[str, ...] = ()
    #: Delivery bodies, job logs, JUnit files and per-test results of finished work older than
    #: this many days are pruned (bot/store/retention.py); 0 keeps them for ever.
    retention_days: float = 90.0

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, cwd: str | os.PathLike[str] | None = None
    ) -> Settings:
        """`cwd` is the folder relative paths are resolved against (default: the current one)."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        # Paths are made absolute here, once: a job's steps change directories, and a service
        # manager may start the bot anywhere; the log then shows exactly which files are used.
        start = Path(os.getcwd() if cwd is None else cwd)  # noqa: PTH109
        private_key = get("GITHUB_PRIVATE_KEY")
        key_path = get("GITHUB_PRIVATE_KEY_PATH")
        key_path = None if key_path is None else _absolute(key_path, start)
        if private_key is None and key_path is not None:
            try:
                private_key = Path(key_path).read_text()
            except OSError as exc:
                raise ConfigError(
                    f"GITHUB_PRIVATE_KEY_PATH: cannot read {key_path}: {exc.strerror}"
                ) from exc
        if private_key is not None and "\\n" in private_key and "\n" not in private_key:
            # Hosting dashboards often store a PEM on one line with literal \n.
            private_key = private_key.replace("\\n", "\n")
        app_id = get("GITHUB_APP_ID")
        if (app_id is None) != (private_key is None):
            raise ConfigError(
                "GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) go together"
            )
        client_id, client_secret = get("GITHUB_CLIENT_ID"), get("GITHUB_CLIENT_SECRET")
        if (client_id is None) != (client_secret is None):
            raise ConfigError("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET go together")
        admin_token = get("BOT_ADMIN_TOKEN")
        if admin_token is not None and len(admin_token) < _ADMIN_TOKEN_MIN:
            # It opens every page; a short one is guessed (and logs could not mask it).
            raise ConfigError(
                f"BOT_ADMIN_TOKEN: use at least {_ADMIN_TOKEN_MIN} characters, e.g. the output"
                " of `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        return cls(
            webhook_secret=get("GITHUB_WEBHOOK_SECRET"),
            github_app_id=app_id,
            github_private_key=private_key,
            github_private_key_path=key_path if get("GITHUB_PRIVATE_KEY") is None else None,
            github_token=get("GITHUB_TOKEN"),
            github_api_url=(get("GITHUB_API_URL") or cls.github_api_url).rstrip("/"),
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_webhook_url=get("SLACK_WEBHOOK_URL"),
            slack_api_url=get("SLACK_API_URL") or cls.slack_api_url,
            database=_absolute(get("BOT_DATABASE") or cls.database, start),
            handle=(get("BOT_HANDLE") or cls.handle).lstrip("@"),
            max_attempts=_env_int(env, "BOT_MAX_ATTEMPTS", cls.max_attempts),
            retry_base_seconds=_env_float(env, "BOT_RETRY_BASE_SECONDS", cls.retry_base_seconds),
            log_level=get("BOT_LOG_LEVEL") or cls.log_level,
            log_format=get("BOT_LOG_FORMAT") or cls.log_format,
            public_url=(get("BOT_PUBLIC_URL") or "").rstrip("/"),
            job_concurrency=_env_int(env, "BOT_JOB_CONCURRENCY", cls.job_concurrency),
            job_work_dir=_absolute(get("BOT_JOB_DIR") or cls.job_work_dir, start),
            env_cache_dir=_absolute(get("BOT_ENV_CACHE") or cls.env_cache_dir, start),
            test_python=_interpreter(get("BOT_TEST_PYTHON"), start, env.get("PATH")),
            worker_concurrency=_env_int(env, "BOT_WORKER_CONCURRENCY", cls.worker_concurrency),
            handler_timeout_seconds=_env_float(
                env, "BOT_HANDLER_TIMEOUT_SECONDS", cls.handler_timeout_seconds
            ),
            actions_poll_seconds=_env_float(
                env, "BOT_ACTIONS_POLL_SECONDS", cls.actions_poll_seconds
            ),
            max_connections=_env_int(env, "BOT_MAX_CONNECTIONS", cls.max_connections),
            header_timeout_seconds=_env_float(
                env, "BOT_HEADER_TIMEOUT_SECONDS", cls.header_timeout_seconds
            ),
            body_timeout_seconds=_env_float(
                env, "BOT_BODY_TIMEOUT_SECONDS", cls.body_timeout_seconds
            ),
            body_bytes_in_flight=_env_int(
                env, "BOT_BODY_BYTES_IN_FLIGHT", cls.body_bytes_in_flight
            ),
            github_client_id=client_id,
            github_client_secret=client_secret,
            admin_token=admin_token,
            operators=_env_logins(env, "BOT_OPERATORS"),
            retention_days=_env_float(env, "BOT_RETENTION_DAYS", cls.retention_days),
        )

    @classmethod
    def from_environment(cls, env_file: str = ENV_FILE) -> Settings:
        """The process's settings: the environment file `bot setup` wrote, where there is one,
        under the real environment, which wins."""
        return cls.from_env({**load_env_file(env_file), **os.environ})

    @property
    def github_web_url(self) -> str:
        """Where people see GitHub: links on pages point there (Enterprise, the sandbox too)."""
        api = self.github_api_url.rstrip("/")
        if api == "https://api.github.com":
            return "https://github.com"
        return api.removesuffix("/api/v3")

    @property
    def has_github_credentials(self) -> bool:
        return bool(self.github_token or self.github_app_id)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so logging can mask them wherever they appear."""
        values = (
            self.webhook_secret,
            self.github_private_key,
            self.github_token,
            self.slack_bot_token,
            self.slack_webhook_url,
            self.github_client_secret,
            self.admin_token,
        )
        return tuple(v for v in values if v)


_ADMIN_TOKEN_MIN = 16


def _absolute(value: str, start: Path) -> str:
    """`value` against `start` when relative; `~` is the user's home, as a shell would give it.
    Not resolved through links: an operator's path stays the one they wrote, only anchored."""
    if value == ":memory:":  # SQLite's in-memory database is not a file
        return value
    path = Path(value).expanduser()
    # `..` is left for the file system to follow: collapsing it in the text would go wrong
    # through a symbolic link.
    return str(path if path.is_absolute() else start / path)


def _interpreter(value: str | None, start: Path, search_path: str | None) -> str | None:
    """A path (it has a `/`) is anchored like the other paths; a bare name (`python3.11`) is
    found on PATH now, as a shell would, so a job never looks it up in its own folder."""
    if value is None:
        return None
    if "/" not in value and not value.startswith("~"):
        return shutil.which(value, path=search_path) or value
    return _absolute(value, start)


def _env_logins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated GitHub logins, lower-cased: GitHub logins are case-insensitive."""
    logins = (part.strip().lstrip("@").lower() for part in env.get(name, "").split(","))
    return tuple(dict.fromkeys(login for login in logins if login))


_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def load_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The `KEY=VALUE` lines of an environment file; {} when there is none.

    `#` starts a comment (a whole line, or after a space in an unquoted value); a value may be
    quoted, '...' as written or "..." with `\\"`, `\\\\` and `\\n`; `export ` is allowed. The
    caller lets the real environment win: `{**load_env_file(".env"), **os.environ}`.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        key, value = match.groups()
        values[key] = _env_value(value, f"{path}:{number}")
    return values


def _env_value(value: str, where: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        if quote == '"':  # the closing quote is the first one not escaped
            end = 1
            while end < len(value) and value[end] != '"':
                end += 2 if value[end] == "\\" else 1
        if end >= len(value) or end < 0:
            raise ConfigError(f"{where}: the value's closing {quote} is missing")
        rest = value[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError(f"{where}: text after the quoted value")
        inner = value[1:end]
        if quote == "'":
            return inner
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), inner)
    return re.split(r"\s+#", value, maxsplit=1)[0].strip()


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name}: must be at least 1, got {value}")
    return value


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name}: must not be negative, got {value}")
    return value


# --------------------------------------------------------------------------- repository config


def _features(features: Sequence[Feature] | None) -> Sequence[Feature]:
    """The features given, else the bot's own: looked up when first needed, because the
    features' config classes import this module."""
    if features is not None:
        return features
    from handlers import FEATURES

    return FEATURES


def config_sections(features: Sequence[Feature] | None = None) -> dict[str, type]:
    """Each `bot.toml` section by name, with the feature's class that holds it, in the order of
    the features (which `bot config show` keeps)."""
    return {f.name: f.config for f in _features(features) if f.config is not None}


def array_sections(features: Sequence[Feature] | None = None) -> frozenset[str]:
    """The sections written as an array of tables (`[[scheduled_ci]]`, several entries), whose
    value in `RepoConfig` is a tuple of the feature's class, empty by default."""
    return frozenset(f.name for f in _features(features) if f.config is not None and f.config_array)


def _section_defaults(features: Sequence[Feature] | None) -> dict[str, Callable[[], Any]]:
    arrays = array_sections(features)
    return {
        name: (tuple if name in arrays else section)
        for name, section in config_sections(features).items()
    }


class RepoConfig:
    """A repository's `.github/bot.toml`: one section per feature that has one, each an instance
    of that feature's own class (`config.slow_ci.runner`); a section not given has its defaults.

    The sections come from the list of features rather than a field per feature here, so a new
    feature's section is read, validated and shown without this module naming it. Like the
    dataclass it replaces: keyword construction, attribute access, equality, read-only.
    """

    __slots__ = ("_sections",)

    def __init__(self, **sections: Any) -> None:
        self._fill(_section_defaults(None), sections)

    @classmethod
    def of(cls, features: Sequence[Feature], **sections: Any) -> RepoConfig:
        """A config over these features instead of the bot's own."""
        config = cls.__new__(cls)
        config._fill(_section_defaults(features), sections)
        return config

    def _fill(self, known: Mapping[str, Callable[[], Any]], given: Mapping[str, Any]) -> None:
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise TypeError(f"RepoConfig has no section {unknown[0]!r} (known: {', '.join(known)})")
        sections = {name: given[name] if name in given else make() for name, make in known.items()}
        object.__setattr__(self, "_sections", sections)

    def __reduce__(self) -> tuple[Any, ...]:
        # copy and pickle: the sections as they are, whichever list of features they came from
        return (_restored, (dict(self._sections),))

    @property
    def sections(self) -> Mapping[str, Any]:
        """Every section by name, in the features' order."""
        return types.MappingProxyType(self._sections)

    def __getattr__(self, name: str) -> Any:
        if name == "_sections":  # not filled in (yet): no section lookup can answer
            raise AttributeError(name)
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(f"RepoConfig has no section {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RepoConfig):
            return NotImplemented
        return self._sections == other._sections

    __hash__ = None  # type: ignore[assignment]  # sections hold tables, which do not hash

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={section!r}" for name, section in self._sections.items())
        return f"RepoConfig({inner})"


def _restored(sections: dict[str, Any]) -> RepoConfig:
    config = RepoConfig.__new__(RepoConfig)
    object.__setattr__(config, "_sections", sections)
    return config


def parse_repo_config(
    text: str, *, source: str = CONFIG_PATH, features: Sequence[Feature] | None = None
) -> RepoConfig:
    """Validates a `.github/bot.toml`; an error names the file, the key and what was expected."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    known = config_sections(features)
    arrays = array_sections(features)
    _refuse_unknown(raw, known, source, prefix="")
    sections: dict[str, Any] = {}
    for name, value in raw.items():
        if name in arrays:
            sections[name] = _build_array(known[name], name, value, source)
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {name!r} must be a table ([{name}])")
        sections[name] = _build(known[name], value, source, prefix=f"{name}.")
    return RepoConfig.of(_features(features), **sections)


def _build_array(cls: type, name: str, value: Any, source: str) -> tuple[Any, ...]:
    """Each `[[name]]` entry built as a section of its own, its keys named `name[1].key` (the
    first entry is 1, as a person counts them); then the class's `validate_entries(entries,
    source, name)`, for what only the whole list shows (two entries of one name)."""
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise ConfigError(f"{source}: {name!r} must be an array of tables ([[{name}]])")
    if len(value) > MAX_ARRAY_ENTRIES:
        raise ConfigError(
            f"{source}: {name!r} takes at most {MAX_ARRAY_ENTRIES} entries, got {len(value)}"
        )
    entries = tuple(
        _build(cls, entry, source, prefix=f"{name}[{number}].")
        for number, entry in enumerate(value, 1)
    )
    validate_entries = getattr(cls, "validate_entries", None)
    if validate_entries is not None:
        validate_entries(entries, source, name)
    return entries


def _refuse_unknown(
    raw: Mapping[str, Any], known: Collection[str], source: str, prefix: str
) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{source}: unknown key {key!r} (known here: {', '.join(sorted(known))})")


def _build(cls: type, raw: Mapping[str, Any], source: str, *, prefix: str) -> Any:
    """One section (or a table in it) from its TOML, checked against the class's types and then
    by its own `validate`, which knows what the types allow but the feature cannot use."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    _refuse_unknown(raw, known, source, prefix)
    required = [
        f.name
        for f in known.values()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for name in required:
        if name not in raw:
            raise ConfigError(f"{source}: {f'{prefix}{name}'!r} is required")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{prefix}{name}"
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key!r} must be a table ([{key}])")
            values[name] = _build(hint, value, source, prefix=f"{key}.")
        else:
            values[name] = _coerce(hint, value, source, key)
    config = cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate(source, prefix)
    return config


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(
                f"{source}: {key!r} must be one of {', '.join(map(repr, choices))}, got {value!r}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: {key!r} must be a list of strings, got {value!r}")
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        # TOML has no null: a value given is one of the other types (`extras = [...]`).
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _coerce(kinds[0], value, source, key) if len(kinds) == 1 else value
    if origin in (Mapping, dict) and typing.get_args(hint)[1:] == (str,):
        # A table of strings, e.g. [scheduled_ci.mentions] "octocat" = "U024BE7LH".
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{source}: {key!r} must be a table of strings")
        return dict(value)
    if origin in (Mapping, dict):
        # A table of lists of strings, e.g. [slow_ci.runner_labels] "single-gpu" = ["a", "b"].
        if not isinstance(value, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()
        ):
            raise ConfigError(f"{source}: {key!r} must be a table of lists of strings")
        return {k: tuple(v) for k, v in value.items()}
    expected = {bool: "true or false", int: "an integer", str: "a string", float: "a number"}
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise ConfigError(
            f"{source}: {key!r} must be {expected.get(hint, hint.__name__)}, got {value!r}"
        )
    return value


def default_config_toml(features: Sequence[Feature] | None = None) -> str:
    """The defaults, written out as a commented `.github/bot.toml` for `bot config show`."""
    lines = [f"# {CONFIG_PATH}: every key is optional; these are the defaults."]
    arrays = array_sections(features)
    for name, section in config_sections(features).items():
        if name in arrays:
            lines += _example_entry(name, section)
            continue
        lines.append(f"\n[{name}]")
        instance = section()
        for item in dataclasses.fields(instance):
            value = getattr(instance, item.name)
            if value is None:  # TOML has no null: an unset key is written commented out
                means = item.metadata[UNSET_MEANS]
                lines.append(f"# {item.name} = [...]  (unset: {means})")
                continue
            lines.append(f"{item.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _example_entry(name: str, section: Any) -> list[str]:
    """An array section has no entry by default: its class's `example()`, commented out, shows
    one with every key (the required ones too) for a person to copy."""
    lines = [
        f"\n# Any number of [[{name}]] entries; none by default. One looks like this:",
        f"# [[{name}]]",
    ]
    example = section.example()
    for item in dataclasses.fields(example):
        value = getattr(example, item.name)
        if value is None:
            lines.append(f"# {item.name} = [...]  (unset: {item.metadata[UNSET_MEANS]})")
        else:
            lines.append(f"# {item.name} = {_toml_value(value)}")
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):  # an inline table: it stays inside its section
        return (
            "{ "
            + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items())
            + " }"
        )
    return str(value)
