"""Reading registry:2's configuration file, REGISTRY_* variables and serve's options into the settings tree."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import textwrap
import typing

import pytest

from dockyard.api.auth_setup import AuthSettings
from dockyard.commands.serve import serve
from dockyard.config import (
    MASK,
    ConfigError,
    Gc,
    ImmutableTags,
    Loaded,
    Quota,
    Redis,
    Retention,
    Settings,
    format_duration,
    load,
    parse_duration,
    to_yaml,
)
from dockyard.server import worker_count
from dockyard.storage.factory import StorageSettings
from tests.support.registry2 import DEFAULT_CONFIG

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "config.yml"
DEBIAN = pathlib.Path("/etc/docker/registry/config.yml")

# As registry:2's docker image ships it in /etc/docker/registry/config.yml.

MINIMAL = "version: 0.1\nstorage:\n  inmemory:\n"


def read(tmp_path: pathlib.Path, text: str, environ: dict[str, str] | None = None) -> Loaded:
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text))
    return load(path, environ or {})


def error_of(tmp_path: pathlib.Path, text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        read(tmp_path, text, environ)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---- whole files ----


def test_registry2_default_config(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, DEFAULT_CONFIG)
    config = loaded.settings
    assert loaded.warnings == ()
    assert config.log.fields == {"service": "registry"}
    assert config.storage.cache.blobdescriptor == "inmemory"
    assert config.http.headers == {"X-Content-Type-Options": ["nosniff"]}
    assert (config.health.storagedriver.enabled, config.health.storagedriver.interval, config.health.storagedriver.threshold) == (True, 10.0, 3)
    assert config.storage.root == pathlib.Path("/var/lib/registry")
    assert config.storage.kind == "filesystem"
    assert config.http.addr == ":5000"
    assert config.storage.delete.enabled is False  # registry:2 refuses deletes unless storage.delete.enabled
    assert config.auth.htpasswd is None and config.auth.token is None
    assert config.log.python_level == "info"
    assert config.plain_http is True  # registry:2 serves plain HTTP without http.tls


def test_registry2_file_serves_tls_when_it_names_a_certificate(tmp_path: pathlib.Path) -> None:
    text = DEFAULT_CONFIG.replace("  addr: :5000\n", "  addr: :5000\n  tls:\n    certificate: /etc/certs/domain.crt\n    key: /etc/certs/domain.key\n")
    settings = read(tmp_path, text).settings
    assert settings.plain_http is False
    assert settings.http.tls.certificate == "/etc/certs/domain.crt"


def test_registry2_file_can_ask_for_the_generated_ca(tmp_path: pathlib.Path) -> None:
    text = DEFAULT_CONFIG + "dockyard:\n  insecure_http: false\n"
    assert read(tmp_path, text).settings.plain_http is False


def test_no_file_serves_https() -> None:
    assert load(None, {}).settings.plain_http is False
    seed = load(None, {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data"})
    assert seed.settings.plain_http is False


def test_debian_shipped_config() -> None:
    if not DEBIAN.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{DEBIAN} is missing: CI installs Debian's docker-registry, which ships it")
        pytest.skip(f"{DEBIAN} is missing (Debian's docker-registry package is not installed)")
    loaded = load(DEBIAN, {})
    assert loaded.warnings == ()
    settings = loaded.settings
    assert settings.storage.kind == "filesystem"
    assert settings.storage.root == pathlib.Path(settings.storage.filesystem.rootdirectory)
    if settings.auth.htpasswd is not None:
        auth = AuthSettings.of(settings, signing_key=pathlib.Path("token.key"))
        assert (auth.htpasswd, auth.realm) == (pathlib.Path(settings.auth.htpasswd.path), settings.auth.htpasswd.realm)


def test_seed_root_variable_overrides_the_file(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, DEFAULT_CONFIG, {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": "/data"})
    assert loaded.settings.storage.root == pathlib.Path("/data")
    assert loaded.warnings == ()


def test_example_loads_without_warnings_and_serves() -> None:
    loaded = load(EXAMPLE, {})
    assert loaded.warnings == ()
    settings = loaded.settings
    assert settings.dockyard.workers == 2
    assert settings.dockyard.hostnames == ["registry.example.com"]
    assert settings.auth.htpasswd is not None and settings.auth.htpasswd.path == "/etc/docker/registry/htpasswd"
    assert settings.dockyard.login.failure_window == 60.0


@pytest.mark.parametrize(
    ("given", "expected"),
    [({}, len(os.sched_getaffinity(0))), ({"workers": 0}, len(os.sched_getaffinity(0))), ({"workers": 3}, 3), ({"storage": "inmemory"}, 1)],
)
def test_workers_default_to_one_per_usable_core(given: dict[str, object], expected: int) -> None:
    assert worker_count(load(None, {}, given).settings) == expected


@pytest.mark.parametrize("section", [
    "proxy:\n  remoteurl: https://registry-1.docker.io\n",
    "dockyard:\n  mirrors:\n    - prefix: docker.io\n      remoteurl: https://registry-1.docker.io\n",
])
def test_a_pull_through_cache_serves_with_one_worker_unless_told(section: str, tmp_path: pathlib.Path) -> None:
    # Its one fetch per blob for all clients asking at once holds within one process.
    config = tmp_path / "config.yml"
    config.write_text("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + str(tmp_path / "root") + "\n" + section)
    assert worker_count(load(config, {}, {}).settings) == 1
    assert worker_count(load(config, {}, {"workers": 2}).settings) == 2


def schema_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for spec in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[spec.name]
        inner = next((arg for arg in typing.get_args(hint) if dataclasses.is_dataclass(arg)), hint)
        dotted = f"{prefix}{spec.name}"
        keys.append(dotted)
        if dataclasses.is_dataclass(inner):
            keys.extend(schema_keys(inner, f"{dotted}."))
    return keys


def test_example_names_every_supported_key() -> None:
    text = EXAMPLE.read_text()
    missing = [key for key in schema_keys(Settings) if not re.search(rf"^[ #]*(- )?{re.escape(key.rsplit('.', 1)[-1])}:", text, re.M)]
    assert missing == []


def test_serve_options_default_to_serves_own_defaults() -> None:
    """Each option's default in --help is what serve does without it (and without a file)."""
    defaults = serve.make_context("serve", []).params
    defaults.pop("config_file")
    given = {name: value for name, value in defaults.items() if value not in (None, (), False)}
    assert load(None, {}, given).settings == load(None, {}).settings


def test_options_override_the_variables_which_override_the_file(tmp_path: pathlib.Path) -> None:
    text = MINIMAL.replace("inmemory", "filesystem") + "    rootdirectory: /file\nhttp: {addr: ':1'}\ndockyard: {workers: 2}\n"
    environ = {"REGISTRY_HTTP_ADDR": ":2", "REGISTRY_DOCKYARD_WORKERS": "3"}
    path = tmp_path / "config.yml"
    path.write_text(text)
    settings = load(path, environ, {"workers": 4, "root": "/option"}).settings
    assert (settings.http.addr, settings.dockyard.workers, settings.storage.root) == (":2", 4, pathlib.Path("/option"))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"addr": "5000"}, "--addr: expected HOST:PORT, got 5000"),
        ({"tls_cert": "/c.pem"}, "--tls-key: missing; --tls-cert and --tls-key go together"),
        ({"insecure_http": True, "tls_cert": "/c", "tls_key": "/k"}, "--insecure-http: serves no TLS, but --tls-cert is set; drop one of them"),
        ({"metrics": True}, "--metrics: metrics are served on the debug server; set --debug-addr too"),
        ({"storage": "inmemory", "workers": 2}, "--workers: the inmemory driver cannot be shared by several workers"),
        ({"trusted_proxy": ("10.0.0.0/8", "nonsense")}, "--trusted-proxy: "),
        ({"header_timeout": 0.0}, "--header-timeout: expected at least 1ms, got 0s"),
        ({"log_field": ("novalue",)}, "--log-field: expected KEY=VALUE, got 'novalue'"),
        ({"metrics_path": "/debug/health"}, "--metrics-path: expected an absolute path other than /debug/health, got '/debug/health'"),
        ({"token_realm": "https://auth.example.com/token", "token_jwks": __file__, "token_service": "registry"},
         "--token-service: names the built-in token service's; an external issuer's are auth.token.service"),
    ],
)
def test_errors_from_options_name_the_option(given: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(None, {}, given)
    assert str(caught.value).startswith(message)


def test_built_in_token_service_names(tmp_path: pathlib.Path) -> None:
    given = {"htpasswd": "/h", "token_auth": True, "token_service": "registry.example.com", "token_issuer": "team"}
    auth = AuthSettings.of(load(None, {}, given).settings, tmp_path / "key.pem")
    assert (auth.token_auth, auth.token_service, auth.token_issuer, auth.token_realm) == (True, "registry.example.com", "team", None)
    auth = AuthSettings.of(load(None, {"REGISTRY_DOCKYARD_TOKEN_SERVICE": "from-variable"}, {"token_auth": True}).settings, tmp_path / "key.pem")
    assert (auth.token_service, auth.token_issuer) == ("from-variable", "dockyard")


def test_option_for_another_kind_is_ignored(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("version: 0.1\nstorage:\n  s3: {region: r, bucket: b}\n")
    assert load(path, {}, {"root": "/r"}).settings.storage.kind == "s3"
    settings = load(path, {}, {"storage": "filesystem", "root": "/r"}).settings
    assert (settings.storage.kind, settings.storage.root, settings.storage.s3) == ("filesystem", pathlib.Path("/r"), None)
    auth = load(None, {}, {"htpasswd": "/h"}).settings.auth.htpasswd
    assert auth is not None and (auth.path, auth.realm) == ("/h", "Dockyard")


def test_settings_from_every_setting(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, """\
        version: 0.1
        log: {level: warn}
        storage:
          filesystem: {rootdirectory: /srv/registry}
          delete: {enabled: true}
          cache: {blobdescriptor: redis}
        redis: {addr: "redis.example.com:6379", db: 2}
        http:
          addr: 127.0.0.1:5443
          host: https://registry.example.com
          secret: shared-by-every-replica
          tls: {certificate: /etc/tls/cert.pem, key: /etc/tls/key.pem, clientcas: [/etc/tls/clients.pem]}
        auth:
          token:
            realm: https://auth.example.com/token
            service: registry.example.com
            issuer: auth.example.com
            rootcertbundle: /etc/tls/issuer.pem
            jwks: /etc/tls/issuer.jwks
        dockyard:
          tls_dir: /srv/tls
          hostnames: [a.example.com, 10.0.0.1]
          access_policy: /etc/policy.yml
          token_auth: true
          workers: 4
          login: {max_failures: 3, failure_window: 2m}
          trusted_proxies: [10.0.0.0/8, "::1"]
          ui: false
          header_timeout: 10s
          idle_timeout: 1m30s
          gc: {interval: 24h, grace_period: 2h, delete_untagged: true}
          retention: [{repositories: "ci/*", keep_last: 10, keep_tags: ["v*"], untagged_older_than: 72h}]
          immutable_tags: [{repositories: "prod/*", tags: ["v*", "release-*"]}]
        """)
    settings = loaded.settings
    P = pathlib.Path
    assert (settings.storage.kind, settings.storage.root, settings.plain_http, settings.log.python_level) == (
        "filesystem", P("/srv/registry"), False, "warning",
    )
    assert settings.redis_cache == Redis(addr="redis.example.com:6379", db=2)
    assert (settings.dockyard.header_timeout, settings.dockyard.idle_timeout) == (10.0, 90.0)
    assert settings.dockyard.gc == Gc(interval=86400.0, grace_period=7200.0, dry_run=False, delete_untagged=True)
    assert settings.dockyard.retention == [Retention(repositories="ci/*", keep_last=10, keep_tags=["v*"], untagged_older_than=259200.0)]
    assert settings.dockyard.immutable_tags == [ImmutableTags(repositories="prod/*", tags=["v*", "release-*"])]
    assert AuthSettings.of(settings, signing_key=P("/srv/tls/token-signing.key")) == AuthSettings(
        htpasswd=None, realm="Dockyard", policy_file=P("/etc/policy.yml"), token_auth=True, token_service="registry.example.com",
        token_issuer="auth.example.com", token_realm="https://auth.example.com/token", token_rootcertbundle=P("/etc/tls/issuer.pem"),
        token_jwks=P("/etc/tls/issuer.jwks"), signing_key=P("/srv/tls/token-signing.key"), http_secret="shared-by-every-replica",
        max_failures=3, failure_window=120.0,
    )


def test_connection_timeouts_default_and_from_variables(tmp_path: pathlib.Path) -> None:
    defaults = load(None, {}).settings.dockyard
    assert (defaults.header_timeout, defaults.idle_timeout) == (30.0, 120.0)
    loaded = read(tmp_path, MINIMAL, {"REGISTRY_DOCKYARD_HEADER_TIMEOUT": "5s", "REGISTRY_DOCKYARD_IDLE_TIMEOUT": "2m"})
    assert (loaded.settings.dockyard.header_timeout, loaded.settings.dockyard.idle_timeout) == (5.0, 120.0)
    with pytest.raises(ConfigError, match="dockyard.idle_timeout"):
        read(tmp_path, MINIMAL + "dockyard: {idle_timeout: 0s}\n")


# ---- durations ----


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300s", 300), ("10m", 600), ("1h", 3600), ("24h", 86400), ("168h", 604800), ("1h30m", 5400),
     ("1.5s", 1.5), ("500ms", 0.5), ("2h45m30s", 9930), ("0", 0), ("0s", 0), ("10us", 1e-5), ("3ns", 3e-9)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(("seconds", "text"), [(604800, "168h"), (5400, "1h30m"), (90, "1m30s"), (0.5, "500ms"), (0, "0s"), (1e-8, "10ns")])
def test_durations_written_as_go_writes_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["10", "1d", "-5s", "h", "", "5 s", "1h-30m", "s10"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_integer_duration_is_nanoseconds_with_a_warning(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, MINIMAL + "health:\n  storagedriver:\n    interval: 10\n")
    assert loaded.settings.health.storagedriver.interval == pytest.approx(1e-8)
    assert loaded.warnings == ("health.storagedriver.interval: 10 is read as nanoseconds, as registry:2 does; write 10s for seconds",)


def test_zero_integer_duration_is_zero_without_a_warning(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, MINIMAL + "http:\n  draintimeout: 0\n")
    assert loaded.settings.http.draintimeout == 0
    assert loaded.warnings == ()


def test_quotas_take_sizes_written_for_people(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, MINIMAL + "dockyard:\n  quotas:\n    - {repositories: team/*, max_bytes: 40MiB}\n"
                  "    - {repositories: ci/*, max_bytes: 10GiB}\n    - {repositories: tiny, max_bytes: 1.5KB}\n    - {repositories: raw, max_bytes: 512}\n")
    assert loaded.settings.dockyard.quotas == [
        Quota("team/*", 40 << 20), Quota("ci/*", 10 << 30), Quota("tiny", 1500), Quota("raw", 512),
    ]
    assert "dockyard.quotas.0.max_bytes: expected a size like 40MiB" in error_of(
        tmp_path, MINIMAL + "dockyard:\n  quotas: [{repositories: team/*, max_bytes: 40 megs}]\n",
    )
    assert error_of(tmp_path, MINIMAL + "dockyard:\n  quotas: [{repositories: team/*}]\n") == "dockyard.quotas.0.max_bytes: missing"


# ---- REGISTRY_* variables ----


def test_variables_override_keys_as_yaml_scalars(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, DEFAULT_CONFIG, {
        "REGISTRY_HTTP_ADDR": "127.0.0.1:6000",
        "REGISTRY_LOG_LEVEL": "debug",
        "REGISTRY_STORAGE_DELETE_ENABLED": "true",
        "REGISTRY_HEALTH_STORAGEDRIVER_THRESHOLD": "5",
        "REGISTRY_HEALTH_STORAGEDRIVER_INTERVAL": "1h30m",
        "REGISTRY_DOCKYARD_WORKERS": "4",
        "REGISTRY_DOCKYARD_LOGIN_MAX_FAILURES": "3",
        "REGISTRY_DOCKYARD_HOSTNAMES_0": "registry.example.com",
        "REGISTRY_LOG_FIELDS_SERVICE": "mine",
    })
    config = loaded.settings
    assert loaded.warnings == ()
    assert config.http.addr == "127.0.0.1:6000"
    assert config.storage.delete.enabled is True
    assert config.health.storagedriver.threshold == 5
    assert config.health.storagedriver.interval == 5400
    assert config.dockyard.workers == 4
    assert config.dockyard.login.max_failures == 3
    assert config.dockyard.hostnames == ["registry.example.com"]
    assert config.log.fields == {"service": "mine"}
    assert config.log.python_level == "debug"


def test_warn_level_is_serves_warning(tmp_path: pathlib.Path) -> None:
    assert read(tmp_path, MINIMAL, {"REGISTRY_LOG_LEVEL": "warn"}).settings.log.python_level == "warning"


def test_auth_variable_selects_the_kind_in_place_of_the_files(tmp_path: pathlib.Path) -> None:
    text = MINIMAL + "auth:\n  token: {realm: r, service: s, issuer: i, rootcertbundle: /b.pem}\n"
    loaded = read(tmp_path, text, {
        "REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
    })
    auth = loaded.settings.auth
    assert auth.token is None and auth.htpasswd is not None
    assert (auth.htpasswd.path, auth.htpasswd.realm) == ("/auth/htpasswd", "Registry Realm")


def test_storage_variable_replaces_the_whole_section_with_a_warning(tmp_path: pathlib.Path) -> None:
    text = DEFAULT_CONFIG + "  \n"
    loaded = read(tmp_path, text.replace("storage:\n", "storage:\n  delete:\n    enabled: true\n"), {
        "REGISTRY_STORAGE": "s3", "REGISTRY_STORAGE_S3_BUCKET": "images", "REGISTRY_STORAGE_S3_REGION": "eu-west-1",
    })
    storage = loaded.settings.storage
    assert (storage.filesystem, storage.s3.bucket, storage.s3.region) == (None, "images", "eu-west-1")
    assert storage.delete.enabled is False and storage.cache.blobdescriptor == ""
    assert loaded.warnings == ("REGISTRY_STORAGE=s3 replaces the whole storage section, as in registry:2: storage.delete, storage.cache no longer apply",)


def test_list_items_by_index_replace_the_files_list_in_numeric_order(tmp_path: pathlib.Path) -> None:
    environ = {f"REGISTRY_DOCKYARD_HOSTNAMES_{index}": f"h{index}.example.com" for index in range(11)}
    loaded = read(tmp_path, MINIMAL + "dockyard:\n  hostnames: [old.example.com, older.example.com]\n", environ)
    assert loaded.settings.dockyard.hostnames == [f"h{index}.example.com" for index in range(11)]


def test_one_list_item_variable(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, MINIMAL + "http:\n  tls:\n    clientcas: [/old.pem, /older.pem]\n", {"REGISTRY_HTTP_TLS_CLIENTCAS_0": "/clients.pem"})
    assert loaded.settings.http.tls.clientcas == ["/clients.pem"]


def test_list_items_in_list_of_sections(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, MINIMAL, {
        "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME": "listener", "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL": "https://l.example.com",
        "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_TIMEOUT": "2s", "REGISTRY_NOTIFICATIONS_ENDPOINTS_0_DISABLED": "true",
    })
    (endpoint,) = loaded.settings.notifications.endpoints
    assert (endpoint.name, endpoint.url, endpoint.timeout) == ("listener", "https://l.example.com", 2.0)


def test_list_item_gap_is_an_error(tmp_path: pathlib.Path) -> None:
    message = error_of(tmp_path, MINIMAL, {"REGISTRY_HTTP_TLS_CLIENTCAS_1": "/ca.pem"})
    assert message == "REGISTRY_HTTP_TLS_CLIENTCAS_1: list items are set from _0 on without gaps; _0 is missing"


def test_unknown_variables_are_named_and_ignored(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, MINIMAL, {
        "REGISTRY_AUTH_FILE": "/run/containers/auth.json", "REGISTRY_HTTP_ADRESS": ":1", "REGISTRY_HTTP_ADDR_PORT": "1", "OTHER": "x",
    })
    assert loaded.warnings == (
        "REGISTRY_AUTH_FILE: matches no configuration key, ignored",
        "REGISTRY_HTTP_ADDR_PORT: matches no configuration key, ignored",
        "REGISTRY_HTTP_ADRESS: matches no configuration key, ignored",
    )
    assert loaded.settings.http.addr == ":5000"


def test_variable_value_that_is_not_yaml(tmp_path: pathlib.Path) -> None:
    assert error_of(tmp_path, MINIMAL, {"REGISTRY_HTTP_ADDR": "[:5000"}).startswith("REGISTRY_HTTP_ADDR: not a YAML value: ")


def test_variable_value_of_the_wrong_type_names_the_key(tmp_path: pathlib.Path) -> None:
    assert error_of(tmp_path, MINIMAL, {"REGISTRY_HTTP_ADDR": "5000"}) == "http.addr: expected HOST:PORT, got 5000"


def test_second_driver_from_a_variable(tmp_path: pathlib.Path) -> None:
    message = error_of(tmp_path, DEFAULT_CONFIG, {"REGISTRY_STORAGE_S3_BUCKET": "b", "REGISTRY_STORAGE_S3_REGION": "r"})
    assert message == "storage: more than one driver (filesystem, s3); keep one (REGISTRY_STORAGE=s3 replaces the file's)"


# ---- unknown keys and errors ----


def test_unknown_and_unsupported_keys_are_warned_by_dotted_path(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, MINIMAL + "http:\n  adr: :5000\n  tls:\n    minimumtls: tls1.2\nfrobnicate: 1\nlog:\n  reportcaller: true\n")
    assert loaded.warnings == (
        "http.adr: unknown key, ignored",
        "frobnicate: unknown key, ignored",
        "log.reportcaller: the caller's file and line in each record are not logged, ignored",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "http:\n  addr: 5000\n", "http.addr: expected HOST:PORT, got 5000"),
        (MINIMAL + "http:\n  addr: localhost\n", "http.addr: expected HOST:PORT, got localhost"),
        (MINIMAL + "http: [a]\n", "http: expected a mapping, got a list"),
        (MINIMAL + "http:\n  headers:\n    X-Frame-Options: DENY\n", "http.headers.X-Frame-Options: expected a list, got DENY"),
        (MINIMAL + "http:\n  tls:\n    clientcas: /ca.pem\n", "http.tls.clientcas: expected a list, got /ca.pem"),
        (MINIMAL + "http:\n  tls:\n    certificate: /c.pem\n", "http.tls.key: missing; http.tls.certificate and http.tls.key go together"),
        (MINIMAL + "http:\n  secret: [a]\n", "http.secret: expected a string, got a list"),
        (MINIMAL + "http:\n  draintimeout: soon\n", "http.draintimeout: expected a duration like 300s, 10m or 1h30m, got soon"),
        (MINIMAL + "log:\n  level: verbose\n", "log.level: expected one of error, warn, info, debug, got verbose"),
        (MINIMAL + "log:\n  formatter: xml\n", "log.formatter: expected one of text, json, logstash, got xml"),
        (MINIMAL + "log:\n  accesslog:\n    disabled: maybe\n", "log.accesslog.disabled: expected true or false, got maybe"),
        (MINIMAL + "catalog:\n  maxentries: many\n", "catalog.maxentries: expected an integer, got many"),
        (MINIMAL + "catalog:\n  maxentries: 0\n", "catalog.maxentries: expected at least 1, got 0"),
        (MINIMAL + "health:\n  storagedriver:\n    interval: 10x\n", "health.storagedriver.interval: expected a duration like 300s, 10m or 1h30m, got 10x"),
        (MINIMAL + "storage:\n  inmemory:\n  delete:\n    enabled: yes please\n", "storage.delete.enabled: expected true or false, got yes please"),
        (MINIMAL + "  cache:\n    blobdescriptor: memcached\n", "storage.cache.blobdescriptor: expected one of '', inmemory, redis, got memcached"),
        (
            MINIMAL + "  maintenance:\n    uploadpurging:\n      age: -1h\n",
            "storage.maintenance.uploadpurging.age: expected a duration like 300s, 10m or 1h30m, got -1h",
        ),
        ("version: 0.1\nhttp:\n  addr: :5000\n", "storage: no driver; name one of filesystem, inmemory, s3"),
        ("version: 0.1\nstorage:\n  delete:\n    enabled: true\n", "storage: no driver; name one of filesystem, inmemory, s3"),
        (
            MINIMAL + "  filesystem:\n    rootdirectory: /r\n",
            "storage: more than one driver (filesystem, inmemory); keep one (REGISTRY_STORAGE=inmemory replaces the file's)",
        ),
        ("version: 0.1\nstorage:\n  azure:\n    accountname: a\n", "storage.azure: unknown storage kind; dockyard knows filesystem, inmemory, s3"),
        ("version: 0.1\nstorage:\n  s3:\n    region: eu-west-1\n", "storage.s3.bucket: missing"),
        ("version: 0.1\nstorage:\n  s3: {region: r, bucket: b, chunksize: 1024}\n", "storage.s3.chunksize: expected at least 5242880, got 1024"),
        ("version: 0.1\nstorage:\n  s3: {region: r, bucket: b, secure: 1}\n", "storage.s3.secure: expected true or false, got 1"),
        (
            MINIMAL + "auth:\n  silly: {realm: r, service: s}\n",
            "auth.silly: refused: it lets in anyone who sends any Authorization header; use auth.htpasswd or auth.token",
        ),
        (MINIMAL + "auth:\n  htpasswd: {realm: r}\n", "auth.htpasswd.path: missing"),
        (MINIMAL + "auth:\n  ldap: {}\n", "auth.ldap: unknown auth kind; dockyard knows htpasswd, token, silly"),
        (
            MINIMAL + "auth:\n  htpasswd: {realm: r, path: /p}\n  token: {realm: r, service: s, issuer: i, jwks: /j}\n",
            "auth: more than one kind (htpasswd, token); keep one",
        ),
        (
            MINIMAL + "auth:\n  token: {realm: r, service: s, issuer: i}\n",
            "auth.token.rootcertbundle: missing (or auth.token.jwks): the keys that sign the issuer's tokens",
        ),
        (MINIMAL + "notifications:\n  endpoints:\n    - name: n\n", "notifications.endpoints.0.url: missing"),
        (MINIMAL + "dockyard:\n  workers: 100\n", "dockyard.workers: expected at most 64, got 100"),
        (MINIMAL + "dockyard:\n  login:\n    failure_window: 0s\n", "dockyard.login.failure_window: expected at least 100ms, got 0s"),
        (
            MINIMAL + "dockyard:\n  insecure_http: true\nhttp:\n  tls: {certificate: /c, key: /k}\n",
            "dockyard.insecure_http: serves no TLS, but http.tls is set; drop one of them",
        ),
        ("storage:\n  inmemory:\n", "version: missing"),
        ("version: 0.2\nstorage:\n  inmemory:\n", "version: expected one of 0.1, got 0.2"),
    ],
)
def test_errors_name_the_key_in_one_line(tmp_path: pathlib.Path, text: str, message: str) -> None:
    assert error_of(tmp_path, text) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 0.1\nstorage: [\n", "not valid YAML at line 3: expected the node content, but found '<stream end>'"),
        ("- version: 0.1\n", "expected registry:2's settings (version: 0.1, storage, http, ...), got a list"),
        ("", "expected registry:2's settings (version: 0.1, storage, http, ...), got nothing"),
    ],
)
def test_file_errors_name_the_file(tmp_path: pathlib.Path, text: str, message: str) -> None:
    assert error_of(tmp_path, text) == f"{tmp_path / 'config.yml'}: {message}"


def test_missing_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match=r"^.*absent\.yml: No such file or directory$"):
        load(tmp_path / "absent.yml", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 0.1\nstorage:\n  inmemory:\nhttp:\n  prefix: /a b\n", "http.prefix: a path prefix is plain path segments, got '/a b'"),
        (MINIMAL + "http:\n  net: unix\n  addr: ''\n", "http.addr: missing: with http.net unix, the path of the socket"),
        (
            MINIMAL + "http:\n  tls:\n    clientcas: [/c.pem]\n    clientauth: require-any-client-cert\n",
            "http.tls.clientauth: require-any-client-cert cannot be honoured: ",
        ),
    ],
)
def test_what_serve_cannot_do_names_the_key(tmp_path: pathlib.Path, text: str, message: str) -> None:
    assert error_of(tmp_path, text).startswith(message)


def test_s3_storage_is_served_with_redirects_as_registry2(tmp_path: pathlib.Path) -> None:
    storage = StorageSettings.of(read(tmp_path, "version: 0.1\nstorage:\n  s3: {region: r, bucket: b, chunksize: 6291456}\n").settings.storage)
    assert storage.s3 is not None
    assert (storage.kind, storage.s3.bucket, storage.s3.chunksize, storage.redirect) == ("s3", "b", 6 << 20, True)
    text = "version: 0.1\nstorage:\n  s3: {region: r, bucket: b}\n  redirect: {disable: true}\n"
    assert StorageSettings.of(read(tmp_path, text).settings.storage).redirect is False


def test_sections_that_cannot_change_what_is_served_are_warned(tmp_path: pathlib.Path) -> None:
    loaded = read(tmp_path, MINIMAL + textwrap.dedent("""\
        notifications:
          endpoints:
            - {name: n, url: https://n.example.com, disabled: true}
        reporting:
          newrelic: {licensekey: k}
        """))
    assert loaded.warnings == ("reporting.newrelic: nothing is reported to New Relic, ignored",)


# ---- showing ----


SECRETS = MINIMAL + textwrap.dedent("""\
    http:
      secret: http-secret-value
    notifications:
      endpoints:
        - name: n
          url: https://n.example.com
          headers: {Authorization: [Bearer token-value]}
          disabled: true
    redis: {addr: "localhost:6379", password: redis-password-value}
    reporting:
      bugsnag: {apikey: bugsnag-key-value}
      newrelic: {licensekey: newrelic-key-value}
    """)


def test_show_masks_secrets(tmp_path: pathlib.Path) -> None:
    shown = to_yaml(read(tmp_path, SECRETS).settings)
    assert "-value" not in shown
    assert shown.count(MASK) == 5
    text = "version: 0.1\nstorage:\n  s3: {region: r, bucket: b, accesskey: AKIA, secretkey: s3-secret-value}\n"
    shown = to_yaml(read(tmp_path, text).settings)
    assert "s3-secret-value" not in shown and f"secretkey: '{MASK}'" in shown and "accesskey: AKIA" in shown


def test_show_reads_back_as_the_same_configuration(tmp_path: pathlib.Path) -> None:
    original = load(EXAMPLE, {}).settings
    again = read(tmp_path, to_yaml(original))
    assert again.settings == dataclasses.replace(original, http=dataclasses.replace(original.http, secret=MASK))


# ---- registry:2's old names and registry:3's layouts ----


def test_old_loglevel_is_log_level_when_that_is_unset(tmp_path: pathlib.Path) -> None:
    assert read(tmp_path, MINIMAL + "loglevel: debug\n").settings.log.level == "debug"
    assert read(tmp_path, MINIMAL + "loglevel: debug\n", {"REGISTRY_LOG_LEVEL": "error"}).settings.log.level == "error"
    assert read(tmp_path, MINIMAL + "loglevel: debug\nlog:\n  level: warn\n").settings.log.level == "warn"
    assert read(tmp_path, MINIMAL, {"REGISTRY_LOGLEVEL": "debug"}).settings.log.level == "debug"


def test_old_layerinfo_turns_the_redis_cache_on(tmp_path: pathlib.Path) -> None:
    settings = read(tmp_path, MINIMAL + "  cache:\n    layerinfo: redis\nredis:\n  addr: 127.0.0.1:6379\n").settings
    assert settings.redis_cache is not None and settings.redis_cache.address == "127.0.0.1:6379"
    assert error_of(tmp_path, MINIMAL + "  cache:\n    layerinfo: redis\n") == "redis.addr: missing: storage.cache.layerinfo is redis"


def test_registry3_redis_layout(tmp_path: pathlib.Path) -> None:
    redis = read(tmp_path, MINIMAL + textwrap.dedent("""\
          cache:
            blobdescriptor: redis
        redis:
          addrs: [cache.example.com:6380]
          poolsize: 10
          maxidleconns: 3
          connmaxidletime: 5m
          username: u
        """)).settings.redis_cache
    assert redis is not None
    assert (redis.address, redis.max_connections, redis.max_idle, redis.idle_timeout, redis.username) == ("cache.example.com:6380", 10, 3, 300.0, "u")
    assert error_of(tmp_path, MINIMAL + "redis:\n  addr: a:1\n  addrs: [b:1]\n") == "redis.addrs: set with redis.addr (registry:2.8's name); keep one"
    text = MINIMAL + "  cache:\n    blobdescriptor: redis\nredis:\n  addr: a:1\n  tls: {certificate: /c.pem}\n"
    assert error_of(tmp_path, text) == "redis.tls.key: missing; redis.tls.certificate and redis.tls.key go together"


def test_old_validation_enabled_keeps_the_checks(tmp_path: pathlib.Path) -> None:
    assert read(tmp_path, MINIMAL + "validation:\n  enabled: true\n  disabled: true\n").settings.validation.enabled is True


def test_registry3_stock_keys_start_without_warnings(tmp_path: pathlib.Path) -> None:
    text = MINIMAL + "  tag:\n    concurrencylimit: 5\n"
    assert read(tmp_path, text).warnings == ()
    s3 = "version: 0.1\nstorage:\n  s3: {region: r, bucket: b, loglevel: debug}\n"
    assert read(tmp_path, s3).settings.storage.s3.loglevel == "debug"
