"""Settings.from_env: defaults, the generated key file, and one-line errors naming the variable."""

from __future__ import annotations

import stat
from dataclasses import fields
from pathlib import Path

import pytest

from nestauth.config import MIN_SECRET_KEY_LENGTH, ConfigError, Settings
from nestauth.services.keys import Keyring

GOOD_KEY = "config-test-key-0123456789abcdefghij"
OLD_KEY = "previous-test-key-0123456789abcdefghij"
PG_URL = "postgresql://nestauth@db.example.com/nestauth"


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
        (tmp_path / "secret.key").chmod(0o600)
        with pytest.raises(ConfigError, match="NESTAUTH_SECRET_KEY"):
            settings(tmp_path)

    @pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
    def test_key_file_readable_by_others_is_refused(self, tmp_path: Path, mode: int) -> None:
        key_file = tmp_path / "secret.key"
        key_file.write_text(GOOD_KEY)
        key_file.chmod(mode)
        with pytest.raises(ConfigError, match="chmod 600") as caught:
            settings(tmp_path)
        assert caught.value.name == "NESTAUTH_SECRET_KEY"
        assert GOOD_KEY not in str(caught.value)

    def test_blank_key_file_is_refused(self, tmp_path: Path) -> None:
        key_file = tmp_path / "secret.key"
        key_file.write_text(" " * 40 + "\n")
        key_file.chmod(0o600)
        with pytest.raises(ConfigError, match="NESTAUTH_SECRET_KEY"):
            settings(tmp_path)

    def test_unusable_var_dir_is_one_line_naming_it(self, tmp_path: Path) -> None:
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        with pytest.raises(ConfigError) as caught:
            settings(blocker / "var")
        assert caught.value.name == "NESTAUTH_VAR_DIR"
        assert "\n" not in str(caught.value)

    def test_var_dir_is_created_owner_only(self, tmp_path: Path) -> None:
        settings(tmp_path / "var")
        assert stat.S_IMODE((tmp_path / "var").stat().st_mode) == 0o700


class TestSharedDatabaseKey:
    def test_no_key_is_generated_for_postgresql(self, tmp_path: Path) -> None:
        loaded = settings(tmp_path, NESTAUTH_DATABASE_URL=PG_URL)
        assert loaded.secret_key == ""
        assert not (tmp_path / "secret.key").exists()

    def test_anything_needing_the_key_refuses_naming_it(self, tmp_path: Path) -> None:
        loaded = settings(tmp_path, NESTAUTH_DATABASE_URL=PG_URL)
        with pytest.raises(ConfigError) as caught:
            Keyring.of(loaded)
        assert caught.value.name == "NESTAUTH_SECRET_KEY"
        assert "SQLite" in str(caught.value)

    def test_explicit_key_is_used(self, tmp_path: Path) -> None:
        loaded = settings(tmp_path, NESTAUTH_DATABASE_URL=PG_URL, NESTAUTH_SECRET_KEY=GOOD_KEY)
        assert Keyring.of(loaded).current == GOOD_KEY


WEAK_SECRETS = {
    "blank": " " * 40,
    "one character": "k" * 40,
    "few characters": "abcabcabcabcabcabcabcabcabcabcabcabc",
    "blank padded": "abc" + " " * 40,
}


class TestSecretKey:
    def test_too_short_raises_naming_variable(self, tmp_path: Path) -> None:
        message = config_error(tmp_path, "NESTAUTH_SECRET_KEY", "k" * (MIN_SECRET_KEY_LENGTH - 1))
        assert str(MIN_SECRET_KEY_LENGTH) in message

    @pytest.mark.parametrize("weak", WEAK_SECRETS.values(), ids=WEAK_SECRETS.keys())
    def test_weak_key_refused_without_showing_it(self, tmp_path: Path, weak: str) -> None:
        with pytest.raises(ConfigError) as caught:
            settings(tmp_path, NESTAUTH_SECRET_KEY=weak)
        assert caught.value.name == "NESTAUTH_SECRET_KEY"
        assert weak not in str(caught.value)
        assert not (tmp_path / "secret.key").exists()


class TestPreviousKeys:
    def test_unset_means_none(self, tmp_path: Path) -> None:
        assert settings(tmp_path, NESTAUTH_SECRET_KEY=GOOD_KEY).previous_secret_keys == ()

    def test_comma_list_in_order(self, tmp_path: Path) -> None:
        other = "another-old-key-9876543210zyxwvu"
        raw = f" {OLD_KEY} ,{other},"
        loaded = settings(tmp_path, NESTAUTH_SECRET_KEY=GOOD_KEY, NESTAUTH_PREVIOUS_SECRET_KEYS=raw)
        assert loaded.previous_secret_keys == (OLD_KEY, other)
        assert Keyring.of(loaded).all == (GOOD_KEY, OLD_KEY, other)

    @pytest.mark.parametrize("weak", WEAK_SECRETS.values(), ids=WEAK_SECRETS.keys())
    def test_weak_previous_key_refused(self, tmp_path: Path, weak: str) -> None:
        message = config_error(tmp_path, "NESTAUTH_PREVIOUS_SECRET_KEYS", f"{OLD_KEY},{weak}x")
        assert "key 2" in message


class TestAdminSecret:
    def test_long_varied_secret_accepted(self, tmp_path: Path) -> None:
        secret = "bootstrap-0123456789-abcdefghijklmn"
        assert settings(tmp_path, NESTAUTH_ADMIN_SECRET=secret).admin_secret == secret

    @pytest.mark.parametrize("short", ["x", "bootstrap-secret", "a" * 31])
    def test_short_secret_refused(self, tmp_path: Path, short: str) -> None:
        assert "32" in config_error(tmp_path, "NESTAUTH_ADMIN_SECRET", short)

    def test_uniform_secret_refused(self, tmp_path: Path) -> None:
        config_error(tmp_path, "NESTAUTH_ADMIN_SECRET", "ab" * 20)


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


class TestDeclaredOnce:
    """Each setting's variable, parser and default are declared on its field, once."""

    def test_every_setting_names_its_variable(self) -> None:
        read_apart = {"database_url", "secret_key"}  # their defaults depend on var_dir
        for spec in fields(Settings):
            if spec.name not in read_apart:
                assert spec.metadata.get("env") == f"NESTAUTH_{spec.name.upper()}", spec.name

    def test_unset_environment_gives_the_declared_defaults(self, tmp_path: Path) -> None:
        loaded = settings(tmp_path, NESTAUTH_SECRET_KEY=GOOD_KEY)
        declared = Settings(
            database_url=f"sqlite:///{tmp_path}/nestauth.db", secret_key=GOOD_KEY, var_dir=tmp_path
        )
        assert loaded == declared

    def test_blank_variables_mean_the_default(self, tmp_path: Path) -> None:
        blank = {spec.metadata["env"]: " " for spec in fields(Settings) if "env" in spec.metadata}
        del blank["NESTAUTH_VAR_DIR"]
        assert settings(tmp_path, **blank, NESTAUTH_SECRET_KEY=GOOD_KEY) == settings(
            tmp_path, NESTAUTH_SECRET_KEY=GOOD_KEY
        )
