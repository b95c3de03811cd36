import pytest

from service.settings import SettingsError, load_settings

V1, V2 = "0a1b2c3d-0000-4000-8000-0000000000f1", "0a1b2c3d-0000-4000-8000-0000000000f2"


def test_defaults_match_the_contract(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BEARER_TOKENS", "t0ken")
    s = load_settings()
    assert s.iconik_url == "https://app.iconik.io"
    assert s.storage_url == "./bundles"
    assert s.queue_url == "sqlite:///./data/queue.db"
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert s.max_body_bytes == 1_048_576
    assert s.iconik_rate_limit == 45
    assert s.iconik_timeout_seconds == 30
    assert s.worker_concurrency == 4
    assert s.log_format == "json"
    assert s.proxy_max_height == 1080
    assert s.proxy_wait_seconds == 3600
    assert s.allow_original_media is False
    assert s.iconik_jobs is True
    assert s.max_assets_per_request == 1000
    assert s.queue_max_backlog == 10_000
    assert s.task_max_attempts == 8
    assert s.deliver_scan_seconds == 60


def test_comma_separated_lists(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WEBHOOK_SECRETS", " new-key , old-key ,")
    monkeypatch.setenv("METADATA_VIEW_IDS", f"{V1},{V2}")
    s = load_settings()
    assert [x.get_secret_value() for x in s.webhook_secrets] == ["new-key", "old-key"]
    assert s.metadata_view_ids == [V1, V2]
    assert "new-key" not in repr(s)


def test_refuses_to_start_without_authentication(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "WEBHOOK_SECRETS" in str(err.value) and "BEARER_TOKENS" in str(err.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("MAX_BODY_BYTES", "0"),
        ("QUEUE_URL", "postgresql://db"),
        ("QUEUE_URL", "postgresql:///queue"),
        ("QUEUE_URL", "mysql://db/queue"),
        ("QUEUE_URL", "sqs://caption-bridge"),
        ("STORAGE_URL", "ftp://host/x"),
        ("STORAGE_URL", "s3://"),
        ("ICONIK_URL", "app.iconik.io"),
        ("LOG_FORMAT", "xml"),
        ("WORKER_CONCURRENCY", "0"),
        ("ICONIK_TIMEOUT_SECONDS", "0"),
        ("ICONIK_TIMEOUT_SECONDS", "soon"),
        ("ALLOW_ORIGINAL_MEDIA", "perhaps"),
        ("DELIVER_SCAN_SECONDS", "-1"),
        ("DELIVER_SCAN_SECONDS", "hourly"),
    ],
)
def test_malformed_value_names_the_variable(monkeypatch, tmp_path, name, value):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BEARER_TOKENS", "t0ken")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert name in str(err.value)


def test_error_does_not_echo_a_secret(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BEARER_TOKENS", "super-secret-token")
    monkeypatch.setenv("PORT", "bad")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "super-secret-token" not in str(err.value)


def test_a_bad_queue_url_error_does_not_echo_its_password(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BEARER_TOKENS", "t0ken")
    monkeypatch.setenv("QUEUE_URL", "postgresql://bridge:hunter2-db-pass@/")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "QUEUE_URL" in str(err.value) and "hunter2-db-pass" not in str(err.value)


def test_postgresql_queue_url_is_accepted(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BEARER_TOKENS", "t0ken")
    monkeypatch.setenv("QUEUE_URL", "postgresql://bridge:pw@db.internal:5432/captions")
    assert load_settings().queue_url.endswith("/captions")


def test_dotenv_file_is_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("BEARER_TOKENS=from-dotenv\nPORT=9090\n")
    s = load_settings()
    assert s.port == 9090
    assert s.bearer_tokens[0].get_secret_value() == "from-dotenv"
