"""Settings.from_env: defaults, the generated key file, and one-line errors naming the variable."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nestauth.config import MIN_SECRET_KEY_LENGTH, ConfigError, Settings

GOOD_KEY = "k" * MIN_SECRET_KEY_LENGTH


def settings(var_dir: Path, **env: str) -> Settings:
    return Settings.from_env({"NESTAUTH_VAR_DIR": str(var_dir), **env})


def config_error(var_dir: Path, name: str, value: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings(var_dir, **{"NESTAUTH_SECRET_KEY": GOOD_KEY, name: value})
    assert caught.value.name == name
    message = str(caught.value)
    assert message.startswith(f"{name}:")
    assert "\n" not in message
    return message


class TestDefaults:
    def test_sqlite_file_under_var_dir(self, tmp_path: Path) -> None:
        assert settings(tmp_path).database_url == f"sqlite:///{tmp_path}/nestauth.db"

    def test_secure_cookies_and_optional_mfa(self, tmp_path: Path) -> None:
        loaded = settings(tmp_path)
        assert loaded.cookie_secure is True
        assert loaded.mfa_required is False
        assert loaded.csrf_allowed_origins == ()
        assert loaded.admin_secret is None
        assert loaded.max_body_bytes == 65536
        assert loaded.var_dir == tmp_path

    def test_database_url_from_environment(self, tmp_path: Path) -> None:
        url = "postgresql://nestauth@db.example.com/nestauth"
        assert settings(tmp_path, NESTAUTH_DATABASE_URL=url).database_url == url

    def test_empty_admin_secret_means_none(self, tmp_path: Path) -> None:
        assert settings(tmp_path, NESTAUTH_ADMIN_SECRET="  ").admin_secret is None


class TestKeyFile:
    def test_generated_on_first_run_owner_only(self, tmp_path: Path) -> None:
        var_dir = tmp_path / "var"
        key = settings(var_dir).secret_key
        key_file = var_dir / "secret.key"
        assert key_file.read_text() == key
        assert len(key) >= MIN_SECRET_KEY_LENGTH
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    def test_reused_on_second_run(self, tmp_path: Path) -> None:
        assert settings(tmp_path).secret_key == settings(tmp_path).secret_key

    def test_each_install_gets_its_own_key(self, tmp_path: Path) -> None:
        assert settings(tmp_path / "a").secret_key != settings(tmp_path / "b").secret_key

    def test_explicit_key_wins_and_writes_no_file(self, tmp_path: Path) -> None:
        assert settings(tmp_path, NESTAUTH_SECRET_KEY=GOOD_KEY).secret_key == GOOD_KEY
        assert not (tmp_path / "secret.key").exists()

    def test_too_short_key_file_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "secret.key").write_text("short")
        with pytest.raises(ConfigError, match="NESTAUTH_SECRET_KEY"):
            settings(tmp_path)


class TestSecretKey:
    def test_too_short_raises_naming_variable(self, tmp_path: Path) -> None:
        message = config_error(tmp_path, "NESTAUTH_SECRET_KEY", "k" * (MIN_SECRET_KEY_LENGTH - 1))
        assert str(MIN_SECRET_KEY_LENGTH) in message


class TestBooleans:
    @pytest.mark.parametrize("raw", ["true", "TRUE", "1", "yes", "on", " True "])
    def test_true_spellings(self, tmp_path: Path, raw: str) -> None:
        assert settings(tmp_path, NESTAUTH_MFA_REQUIRED=raw).mfa_required is True

    @pytest.mark.parametrize("raw", ["false", "0", "no", "off"])
    def test_false_spellings(self, tmp_path: Path, raw: str) -> None:
        assert settings(tmp_path, NESTAUTH_COOKIE_SECURE=raw).cookie_secure is False

    def test_empty_means_default(self, tmp_path: Path) -> None:
        assert settings(tmp_path, NESTAUTH_COOKIE_SECURE="").cookie_secure is True

    @pytest.mark.parametrize(
        "name", ["NESTAUTH_COOKIE_SECURE", "NESTAUTH_MFA_REQUIRED", "NESTAUTH_VALIDATE_RESPONSES"]
    )
    def test_bad_value_names_variable(self, tmp_path: Path, name: str) -> None:
        assert "maybe" in config_error(tmp_path, name, "maybe")


class TestIntegers:
    def test_parsed(self, tmp_path: Path) -> None:
        assert settings(tmp_path, NESTAUTH_MAX_BODY_BYTES="1024").max_body_bytes == 1024

    @pytest.mark.parametrize("raw", ["ten", "1.5", "0", "-3", "12abc"])
    @pytest.mark.parametrize(
        "name",
        [
            "NESTAUTH_MAX_BODY_BYTES",
            "NESTAUTH_ADMIN_SESSION_IDLE_SECONDS",
            "NESTAUTH_ADMIN_LOGIN_MAX_FAILURES",
        ],
    )
    def test_bad_value_names_variable(self, tmp_path: Path, name: str, raw: str) -> None:
        config_error(tmp_path, name, raw)


class TestOrigins:
    def test_comma_list(self, tmp_path: Path) -> None:
        raw = "https://console.example.com/, http://localhost:3000 ,,"
        loaded = settings(tmp_path, NESTAUTH_CSRF_ALLOWED_ORIGINS=raw)
        assert loaded.csrf_allowed_origins == (
            "https://console.example.com",
            "http://localhost:3000",
        )

    @pytest.mark.parametrize("raw", ["console.example.com", "https://ok.example.com,ftp://x"])
    def test_bad_origin_names_variable(self, tmp_path: Path, raw: str) -> None:
        config_error(tmp_path, "NESTAUTH_CSRF_ALLOWED_ORIGINS", raw)


class TestTrustedProxies:
    def test_none_by_default(self, tmp_path: Path) -> None:
        assert settings(tmp_path).trusted_proxies == ()

    def test_addresses_and_networks_normalised(self, tmp_path: Path) -> None:
        raw = " 10.0.0.1, 192.168.7.9/16 ,,::1, 2001:DB8::/32"
        # uvicorn reads "10.0.0.1" as a host and "x/n" as a network; a network with host
        # bits set (192.168.7.9/16) it would silently take for a name that never matches.
        assert settings(tmp_path, NESTAUTH_TRUSTED_PROXIES=raw).trusted_proxies == (
            "10.0.0.1/32", "192.168.0.0/16", "::1/128", "2001:db8::/32",
        )  # fmt: skip

    @pytest.mark.parametrize("raw", ["*", "proxy.internal", "10.0.0.0/33", "10.0.0.1,nope"])
    def test_bad_entry_names_variable(self, tmp_path: Path, raw: str) -> None:
        config_error(tmp_path, "NESTAUTH_TRUSTED_PROXIES", raw)


def test_processes_starting_together_share_one_generated_key(tmp_path) -> None:
    import subprocess
    import sys

    code = "from nestauth.config import Settings; print(Settings.from_env().secret_key)"
    env = {"NESTAUTH_VAR_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    keys = {run.communicate(timeout=60)[0].strip() for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert len(keys) == 1 and len(keys.pop()) >= 32
