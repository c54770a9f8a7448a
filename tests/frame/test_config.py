"""Configuration parsing (pure)."""

import json

import pytest

from api.config import Config, ConfigError


def test_defaults_are_safe(tmp_path):
    config = Config.from_env({"JAMII_DATA_DIR": str(tmp_path)})
    assert config.embedded_couch
    assert config.couch_url == "http://127.0.0.1:5984"
    assert config.api_host == "127.0.0.1" and config.api_port == 5988
    assert config.couch_user is None
    assert config.databases == {"medic": "medic", "medic-sentinel": "medic-sentinel",
                                "medic-users-meta": "medic-users-meta", "medic-logs": "medic-logs",
                                "foci": "foci", "datapoints": "datapoints", "spatial": "spatial",
                                "medic-vault": "medic-vault",
                                "_users": "_users"}


def test_couch_url_credentials_are_split_out():
    config = Config.from_env({"COUCH_URL": "http://ad%40min:p%3Ass@db.example:5984/"})
    assert not config.embedded_couch
    assert config.couch_url == "http://db.example:5984"
    assert (config.couch_user, config.couch_password) == ("ad@min", "p:ss")
    assert config.couch_url_with_credentials() == "http://ad%40min:p%3Ass@db.example:5984"


def test_secrets_do_not_show_in_repr():
    config = Config.from_env({"COUCH_URL": "http://admin:hunter2@db:5984", "JWT_SECRET": "jwt-secret"})
    assert "hunter2" not in repr(config) and "jwt-secret" not in repr(config)


def test_embedded_admin_comes_from_the_saved_file(tmp_path):
    (tmp_path / "couchdb-admin.json").write_text(json.dumps({"name": "root", "password": "pw"}))
    config = Config.from_env({"JAMII_DATA_DIR": str(tmp_path), "COUCH_PORT": "6000"})
    assert (config.couch_user, config.couch_password) == ("root", "pw")
    assert config.couch_url == "http://127.0.0.1:6000"


@pytest.mark.parametrize("env, message", [
    ({"API_PORT": "eighty"}, "API_PORT"),
    ({"COUCH_URL": "ftp://x"}, "COUCH_URL"),
    ({"TRUSTED_PROXIES": "10.0.0.1, proxy.local"}, "TRUSTED_PROXIES"),
    ({"LOGIN_FAILURE_LIMIT": "five"}, "LOGIN_FAILURE_LIMIT"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def test_trusted_proxies_and_login_limits():
    config = Config.from_env({"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 ,", "LOGIN_FAILURE_LIMIT": "3",
                              "LOGIN_FAILURE_WINDOW_SECONDS": "60"})
    assert config.trusted_proxies == ("10.0.0.0/8", "192.0.2.7")
    assert (config.login_failure_limit, config.login_failure_window_seconds) == (3, 60)
    defaults = Config.from_env({})
    assert defaults.trusted_proxies == () and defaults.login_failure_limit == 5


def test_prefix_applies_to_jamii_databases_only():
    config = Config.from_env({"JAMII_DB_PREFIX": "x-"})
    assert config.db_medic == "x-medic" and config.db_logs == "x-medic-logs"
    assert config.db_users == "_users"
