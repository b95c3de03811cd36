"""Every knob of the service, read from the environment (and `.env`).

The names are the contract's (docs/settings.md lists each, with its default). A value
that cannot be used stops the service at start-up with a message that names
the variable, never later in the middle of a delivery.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, overload
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.captions.house_style import Style
from service.iconik.user_token import check_key
from service.ids import iconik_id


class SettingsError(Exception):
    """The configuration cannot be used; the message names the variable."""


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    iconik_url: str = "https://app.iconik.io"
    iconik_app_id: str | None = None
    iconik_auth_token: SecretStr | None = None

    webhook_secrets: SecretList = Field(default_factory=list)
    bearer_tokens: SecretList = Field(default_factory=list)

    storage_url: str = "./bundles"
    queue_url: str = "sqlite:///./data/queue.db"

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # `worker` also answers /healthz, /readyz and /metrics on HOST:PORT, as
    # `worker --port PORT` does: the image sets it, so one HEALTHCHECK
    # (`caption-bridge health`) fits `serve`, `serve --no-worker` and `worker`.
    worker_http: bool = False
    max_body_bytes: int = Field(default=1_048_576, gt=0)

    iconik_rate_limit: float = Field(default=45, gt=0)
    iconik_timeout_seconds: float = Field(default=30, gt=0)
    worker_concurrency: int = Field(default=4, ge=1, le=256)
    log_format: Literal["json", "console"] = "json"
    metadata_view_ids: CommaList = Field(default_factory=list)
    proxy_max_height: int = Field(default=1080, gt=0)
    proxy_wait_seconds: float = Field(default=3600, ge=0)
    allow_original_media: bool = False
    iconik_jobs: bool = True
    max_assets_per_request: int = Field(default=1000, gt=0)
    queue_max_backlog: int = Field(default=10_000, gt=0)
    events_max_backlog: int = Field(default=10_000, gt=0)
    task_max_attempts: int = Field(default=8, ge=1)
    task_lease_seconds: float = Field(default=60, ge=5)
    # How often the deliver/ folders are looked at; 0 turns deliveries off.
    deliver_scan_seconds: float = Field(default=60, ge=0)
    # Where deliver/ changed, as the storage tells it (service/deliver/changes.py):
    # the SQS queue the bucket's event notifications go to (S3 only), and
    # inotify on a local folder; with either, a look at everything only every
    # DELIVER_RECONCILE_SECONDS (service/deliver/loop.py).
    deliver_events_queue_url: str = ""
    deliver_watch: bool = True
    deliver_reconcile_seconds: float = Field(default=6 * 3600, gt=0)
    # Caption files whose last look the scan remembers (an LRU; service/lru.py).
    deliver_cache_files: int = Field(default=10_000, ge=100)
    # The largest caption file read: a track from Iconik, or one in deliver/.
    max_caption_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    # Whose Iconik rights a click acts with: "user" (the clicking user's, from
    # the custom action's auth_token) or "application" (ICONIK_AUTH_TOKEN's
    # wider view). service/work/expand.py.
    click_rights: Literal["user", "application"] = "user"
    # Fernet keys sealing that token in the queue, the first current; unset:
    # derived from WEBHOOK_SECRETS and BEARER_TOKENS (service/iconik/user_token.py).
    user_token_keys: SecretList = Field(default_factory=list)
    # How long the queue keeps finished requests (their tasks and payloads);
    # 0 keeps them forever (service/queue/retention.py).
    retention_days: float = Field(default=90, ge=0)
    # The custom action form's field that holds the due date (shown on the page,
    # in README.txt and project.json, and by `status`), the zone a date
    # without a time is read in (the end of that day there), and the field
    # with the languages asked for (service/bundle/due_dates.py).
    due_date_field: str = "due_date"
    due_date_zone: str = "UTC"
    target_languages_field: str = "target_languages"
    # Notifications about due dates (service/notify/due_check.py): `work.due_soon` this
    # many hours before a due date (0: none) and `work.overdue` once it passed,
    # while a language asked for is not delivered.
    notify_due_before_hours: float = Field(default=24, ge=0)
    # The captioning state on the asset (service/work/caption_status.py): the
    # metadata view its field is written in (unset: nothing is written; made,
    # and its id printed, by `caption-bridge register`) and the field's name.
    caption_status_view_id: str = ""
    caption_status_field: str = Field(default="caption_status", pattern=r"^[a-z][a-z0-9_]{0,63}$")

    # Notifications (service/notify/sender.py): a signed POST to a house's own
    # system (Standard Webhooks; the secret is `whsec_` + base64) and/or
    # Apprise URLs (Slack, Teams, e-mail, ...), each with the event types it
    # wants (unset: all); retried with backoff up to NOTIFY_RETRY_MAX_SECONDS,
    # given up after NOTIFY_GIVE_UP_HOURS.
    notify_webhook_url: SecretStr | None = None
    notify_webhook_secret: SecretStr | None = None
    notify_webhook_events: CommaList = Field(default_factory=list)
    notify_urls: SecretList = Field(default_factory=list)
    notify_events: CommaList = Field(default_factory=list)
    notify_retry_max_seconds: float = Field(default=60, gt=0)
    notify_give_up_hours: float = Field(default=24, gt=0)
    notify_timeout_seconds: float = Field(default=10, gt=0)

    # Limits at the edge (service/intake/edge.py): what a client reaching the port
    # may cost before it is authenticated.
    max_url_bytes: int = Field(default=8 * 1024, ge=256)
    max_header_line_bytes: int = Field(default=8 * 1024, ge=256)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    header_timeout_seconds: float = Field(default=10, gt=0)
    body_timeout_seconds: float = Field(default=10, gt=0)
    min_body_bytes_per_second: float = Field(default=1024, gt=0)
    keep_alive_timeout_seconds: float = Field(default=5, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    max_connections_per_client: int = Field(default=100, ge=1)
    max_requests_in_flight: int = Field(default=256, ge=1)

    # House style (service/captions/house_style.py): checked on every delivered file and
    # reported in deliver/REPORT.txt; `strict` refuses a file with findings.
    # Each rule's limit; 0 turns the rule off.
    house_style: Literal["report", "strict"] = "report"
    house_style_max_line_chars: int = Field(default=42, ge=0)
    house_style_max_lines: int = Field(default=2, ge=0)
    house_style_max_chars_per_second: float = Field(default=20, ge=0)
    house_style_min_cue_seconds: float = Field(default=5 / 6, ge=0)
    house_style_max_cue_seconds: float = Field(default=7, ge=0)
    house_style_min_gap_frames: float = Field(default=2, ge=0)

    _split = field_validator(
        "webhook_secrets",
        "bearer_tokens",
        "metadata_view_ids",
        "user_token_keys",
        "notify_webhook_events",
        "notify_urls",
        "notify_events",
        mode="before",
    )(_split_commas)

    @field_validator("notify_webhook_events", "notify_events")
    @classmethod
    def _known_event_types(cls, value: list[str]) -> list[str]:
        from service.queue import EVENT_TYPES

        unknown = [v for v in value if v not in EVENT_TYPES]
        if unknown:
            known = ", ".join(EVENT_TYPES)
            raise ValueError(f"unknown event type {unknown[0][:40]!r}; known: {known}")
        return value

    @field_validator("notify_webhook_url")
    @classmethod
    def _notify_webhook_is_http(cls, value: SecretStr | None) -> SecretStr | None:
        parts = urlsplit(value.get_secret_value()) if value else None
        if parts is not None and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("notify_webhook_secret")
    @classmethod
    def _notify_secret_is_whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from service.notify.webhook import parse_secret

            parse_secret(value.get_secret_value())
        return value

    @field_validator("notify_urls")
    @classmethod
    def _notify_urls_are_apprise_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        if value:
            from service.notify.chat import check_url

            for number, url in enumerate(value, start=1):
                check_url(url.get_secret_value(), number)
        return value

    @field_validator("metadata_view_ids")
    @classmethod
    def _view_ids_are_iconik_ids(cls, value: list[str]) -> list[str]:
        # Each becomes a segment of an Iconik path.
        return [iconik_id(view_id, f"{view_id[:40]!r}") for view_id in value]

    @field_validator("due_date_zone")
    @classmethod
    def _due_date_zone_is_a_zone(cls, value: str) -> str:
        from service.bundle.due_dates import zone

        zone(value)
        return value

    @field_validator("caption_status_view_id")
    @classmethod
    def _status_view_is_an_iconik_id(cls, value: str) -> str:
        return iconik_id(value, f"{value[:40]!r}") if value else value

    @field_validator("user_token_keys")
    @classmethod
    def _keys_are_fernet_keys(cls, value: list[SecretStr]) -> list[SecretStr]:
        for key in value:
            check_key(key.get_secret_value())
        return value

    @field_validator("iconik_url")
    @classmethod
    def _iconik_url_is_http(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://app.iconik.io")
        return value.rstrip("/")

    @field_validator("storage_url")
    @classmethod
    def _storage_url_is_known(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme == "s3":
            if not urlsplit(value).netloc:
                raise ValueError("s3 URL needs a bucket: s3://bucket/prefix")
        elif scheme == "file":
            if not urlsplit(value).path.startswith("/"):
                raise ValueError("file URL needs an absolute path: file:///abs/path")
        elif scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
            raise ValueError("must be a folder path, file:///abs/path or s3://bucket/prefix")
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("queue_url")
    @classmethod
    def _queue_url_is_known(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme == "sqlite":
            if not value.startswith("sqlite:///") or len(value) <= len("sqlite:///"):
                raise ValueError("must look like sqlite:///relative/path.db or sqlite:////abs.db")
        elif parts.scheme in ("postgresql", "postgres"):
            if not parts.hostname or parts.path in ("", "/"):
                raise ValueError("must look like postgresql://user:password@host:5432/database")
        else:
            raise ValueError(
                "must be sqlite:///<path> (one machine) or "
                "postgresql://user:password@host:5432/database (several replicas)"
            )
        return value

    @model_validator(mode="after")
    def _webhook_is_signed(self) -> Settings:
        if self.notify_webhook_url and not self.notify_webhook_secret:
            raise ValueError(
                "NOTIFY_WEBHOOK_SECRET must be set with NOTIFY_WEBHOOK_URL: notifications are "
                "signed (whsec_ followed by a base64 key)"
            )
        return self

    @model_validator(mode="after")
    def _some_authentication(self) -> Settings:
        if not self.webhook_secrets and not self.bearer_tokens:
            raise ValueError(
                "WEBHOOK_SECRETS or BEARER_TOKENS must be set: the service will not "
                "accept unauthenticated deliveries"
            )
        return self

    # Derived values, so that callers never parse URLs themselves.

    @property
    def style(self) -> Style:
        """The house style the HOUSE_STYLE* settings make."""
        return Style(
            max_line_chars=self.house_style_max_line_chars,
            max_lines=self.house_style_max_lines,
            max_chars_per_second=self.house_style_max_chars_per_second,
            min_cue_seconds=self.house_style_min_cue_seconds,
            max_cue_seconds=self.house_style_max_cue_seconds,
            min_gap_frames=self.house_style_min_gap_frames,
            strict=self.house_style == "strict",
        )

    @property
    def sqlite_path(self) -> Path:
        return Path(self.queue_url.removeprefix("sqlite:///"))

    def require_iconik(self) -> None:
        """The worker calls Iconik; without credentials it must not start."""
        missing = [
            name
            for name, value in (
                ("ICONIK_APP_ID", self.iconik_app_id),
                ("ICONIK_AUTH_TOKEN", self.iconik_auth_token),
            )
            if not value
        ]
        if missing:
            raise SettingsError(
                f"{' and '.join(missing)} must be set for the worker to call Iconik "
                "(or run `serve --no-worker` to only receive deliveries)"
            )

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redactor."""
        values = [
            s.get_secret_value()
            for s in (
                *self.webhook_secrets,
                *self.bearer_tokens,
                *self.user_token_keys,
                *self.notify_urls,
                *(x for x in (self.notify_webhook_url, self.notify_webhook_secret) if x),
            )
        ]
        if self.iconik_auth_token is not None:
            values.append(self.iconik_auth_token.get_secret_value())
        return [v for v in values if v]


class QueueSettings(BaseSettings):
    """What read-only commands (`caption-bridge status`) read: where the
    queue is, and nothing a receiver or a worker needs."""

    model_config = Settings.model_config

    queue_url: str = Settings.model_fields["queue_url"].default

    @field_validator("queue_url")
    @classmethod
    def _queue_url_is_known(cls, value: str) -> str:
        return Settings._queue_url_is_known(value)


class PortSettings(BaseSettings):
    """What `caption-bridge health` reads: the port the service listens on."""

    model_config = Settings.model_config

    port: int = Settings.model_fields["port"].default


def load_port() -> int:
    """PORT from the environment (and `.env`), or a SettingsError."""
    return load_settings(settings_class=PortSettings).port


def load_queue_settings() -> QueueSettings:
    """QUEUE_URL from the environment (and `.env`), or a SettingsError."""
    return load_settings(settings_class=QueueSettings)


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


@overload
def load_settings(settings_class: type[SettingsT], **overrides: Any) -> SettingsT: ...
@overload
def load_settings(**overrides: Any) -> Settings: ...


def load_settings(settings_class: type[BaseSettings] = Settings, **overrides: Any) -> BaseSettings:
    """Settings from the environment, or a SettingsError naming each bad variable."""
    try:
        return settings_class(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(p) for p in error["loc"] if isinstance(p, str)).upper()
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if name else message)
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
