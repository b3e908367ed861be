"""Deployment files: docker-compose.yml, Dockerfile, .dockerignore and docker/entrypoint.sh.

No Docker engine is available where the tests run, so nothing is built or started. Instead the
compose file is parsed and its structure checked (and, when a compose client is installed, also
validated and interpolated by it), the Dockerfile is read instruction by instruction against the
rules we keep (slim multi-stage, non-root, health check, no secrets), and the entrypoint's
``*_FILE`` handling is run for real with bash.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from collector.config import Settings  # noqa: E402 - after the importorskip on purpose

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"

COLLECTOR_SERVICES = ("migrate", "collector", "simulator")
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|API_?KEY|TOKEN|CREDENTIAL", re.IGNORECASE)


# --- helpers ---------------------------------------------------------------------------------


def load_compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" list form
        env = dict(item.split("=", 1) for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def default_of(value: str) -> str:
    """Resolve ``${VAR:-default}`` / ``${VAR-default}`` to the default, as compose would unset."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)


def seconds(duration: str | int) -> float:
    if isinstance(duration, int | float):
        return float(duration)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration):
        total += float(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def depends(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def health_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends with a continuation line"
    return out


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (global ARGs before the first FROM are dropped)."""
    result: list[list[tuple[str, str]]] = []
    for keyword, args in dockerfile_instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


def copy_sources(args: str) -> list[str]:
    """Context paths a COPY/ADD reads (none for COPY --from=...)."""
    words = shlex.split(args)
    if any(w.startswith("--from=") for w in words):
        return []
    words = [w for w in words if not w.startswith("--")]
    return words[:-1]


def dockerignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    """Enough of .dockerignore's matching for our patterns: globs, dirs, leading **/."""
    path = path.strip("/")
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        candidates = [pat] + ([pat[3:]] if pat.startswith("**/") else [])
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, c) for c in candidates for p in prefixes):
            result = not negate
    return result


# --- docker-compose.yml ----------------------------------------------------------------------


def test_compose_has_the_four_services_and_only_the_simulator_and_monitoring_are_optional():
    services = load_compose()["services"]
    assert set(services) == {"postgres", "migrate", "collector", "simulator", "prometheus", "grafana"}
    assert services["simulator"]["profiles"] == ["demo"]
    assert services["prometheus"]["profiles"] == services["grafana"]["profiles"] == ["monitoring"]
    for name in ("postgres", "migrate", "collector"):
        assert not services[name].get("profiles"), f"{name} must start without a profile"


def test_the_monitoring_profile_provisions_the_rules_the_scrape_and_the_dashboard():
    services = load_compose()["services"]
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in (
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/provisioning",
        "deploy/grafana/dashboards",
    ):
        assert f"./{path}:" in mounts and (REPO / path).exists(), path
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["collector:9108"]
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yml"]
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/jex-collector.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    from collector import metrics

    exported = {family.name for family in metrics.REGISTRY.collect()}
    for name in set(re.findall(r"\b(jex_[a-z_]+)", exprs)):  # every series the dashboard reads exists
        assert name.removesuffix("_total") in exported or name in exported, name


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (CI installs Debian's prometheus)")
def test_the_alerting_rules_are_valid_and_their_unit_tests_pass():
    rules = REPO / "deploy" / "prometheus"
    checked = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=rules, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=rules, capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    from collector import metrics

    exported = {family.name for family in metrics.REGISTRY.collect()}
    text = (rules / "alerts.yml").read_text()
    for name in set(re.findall(r"\b(jex_[a-z_]+)", text)):  # every series a rule reads exists
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert base in exported or name in exported, name


def test_postgres_has_a_named_volume_a_readiness_check_and_a_password_from_a_secret():
    compose = load_compose()
    pg = compose["services"]["postgres"]
    assert pg["image"].startswith("postgres:")
    volumes = [v.split(":") for v in pg["volumes"]]
    data = [v for v in volumes if v[1] == "/var/lib/postgresql/data"]
    assert data and data[0][0] in compose["volumes"], "the data directory must be a named volume"
    assert "pg_isready" in health_command(pg)
    assert "-h 127.0.0.1" in health_command(pg), "ready over TCP, not the init-time socket server"
    env = env_of(pg)
    assert "POSTGRES_PASSWORD" not in env
    assert env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert "postgres_password" in pg["secrets"]


def test_migrate_is_a_one_shot_upgrade_after_postgres_is_healthy():
    migrate = load_compose()["services"]["migrate"]
    assert migrate["command"] == ["collector", "db", "upgrade"]
    assert depends(migrate) == {"postgres": "service_healthy"}
    assert str(migrate["restart"]) == "no", "a restarting one-shot never 'completes successfully'"
    assert migrate["healthcheck"] == {"disable": True}, "the image's /healthz probe is the daemon's"


def test_daemon_waits_for_a_healthy_database_and_a_successful_migration():
    collector = load_compose()["services"]["collector"]
    assert collector["command"] == ["collector", "run"]
    assert depends(collector) == {
        "postgres": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    assert collector["restart"] in ("always", "unless-stopped", "on-failure")
    assert seconds(collector["stop_grace_period"]) >= 15, "time for a clean shutdown on SIGTERM"


def test_daemon_exposes_metrics_and_healthz_on_loopback_and_checks_healthz():
    collector = load_compose()["services"]["collector"]
    env = env_of(collector)
    port = env["COLLECTOR_METRICS_PORT"]
    assert env["COLLECTOR_METRICS_HOST"] == "0.0.0.0", "reachable from outside its container"
    published = [default_of(p).split(":") for p in collector["ports"]]
    assert published == [["127.0.0.1", "9108", port]]
    probe = health_command(collector)
    assert f"http://127.0.0.1:{port}/healthz" in probe
    assert "curl" not in probe and "wget" not in probe, "slim images have neither"
    assert seconds(collector["healthcheck"]["start_period"]) > 0


def test_every_published_port_is_bound_to_loopback():
    for name, service in load_compose()["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and default_of(port).startswith("127.0.0.1:"), (name, port)


def test_daemon_environment_names_real_settings_and_points_at_the_compose_services():
    services = load_compose()["services"]
    fields = {f"COLLECTOR_{name.upper()}" for name in Settings.model_fields}
    for name in ("migrate", "collector"):
        env = env_of(services[name])
        for key in env:
            if key.startswith("COLLECTOR_"):
                assert key.removesuffix("_FILE") in fields, f"{name}: {key} is no setting"
        url = default_of(env["COLLECTOR_DATABASE_URL"])
        assert re.fullmatch(r"postgresql://[A-Za-z0-9_]+@postgres:5432/[A-Za-z0-9_]+", url), url
        assert env["COLLECTOR_LOG_FORMAT"] == "json"
    env = env_of(services["collector"])
    assert env["COLLECTOR_EXCHANGE_URL"].startswith("${COLLECTOR_EXCHANGE_URL:-"), "overridable"
    assert default_of(env["COLLECTOR_EXCHANGE_URL"]) == "http://simulator:8080"


def test_simulator_listens_where_the_daemon_looks_by_default():
    services = load_compose()["services"]
    sim = services["simulator"]
    command = sim["command"]
    assert command[:2] == ["collector", "simulate"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert default_of(env_of(services["collector"])["COLLECTOR_EXCHANGE_URL"]) == f"http://simulator:{port}"
    assert f"127.0.0.1:{port}/api/v1/ping" in health_command(sim), "its own check, not /healthz"


def test_one_image_for_every_collector_role_built_from_this_repository():
    services = load_compose()["services"]
    images = {default_of(services[name]["image"]) for name in COLLECTOR_SERVICES}
    assert len(images) == 1
    for name in COLLECTOR_SERVICES:
        assert services[name]["build"]["context"] == "."


def test_secrets_are_files_mounted_by_the_services_that_name_them_and_never_values():
    compose = load_compose()
    declared = compose["secrets"]
    assert set(declared) == {"postgres_password", "jex_api_key", "jex_api_secret"}
    for spec in declared.values():
        assert set(spec) == {"file"}, "file-based secrets (environment: would put values in config)"
    for name, service in compose["services"].items():
        mounted = set(service.get("secrets", []))
        assert mounted <= set(declared), name
        for key, value in env_of(service).items():
            if key.endswith("_FILE"):
                assert value.startswith("/run/secrets/"), (name, key)
                assert value.removeprefix("/run/secrets/") in mounted, (name, key)
            else:
                assert not SECRET_WORDS.search(key), f"{name}: {key} would carry a secret value"
            assert "password" not in value.lower() or key.endswith("_FILE"), (name, key)
    # Only the daemon needs the exchange credentials.
    assert "jex_api_key" not in compose["services"]["migrate"].get("secrets", [])


def test_the_secrets_directory_and_env_files_never_reach_the_image():
    assert ignored("secrets/postgres_password", dockerignore_patterns())
    assert ignored(".env", dockerignore_patterns())


def compose_client() -> list[str] | None:
    """`docker compose` (v2 plugin) when it works, else `docker-compose` (v1), else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def run_compose(tmp_path: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    client = compose_client()
    if client is None:
        pytest.skip("no docker compose client installed")
    # Some clients check that secret files exist: give them empty ones, away from the repository.
    for name in load_compose()["secrets"]:
        (tmp_path / name).touch()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COLLECTOR_", "POSTGRES_", "SIMULATOR_", "COMPOSE_", "SECRETS_DIR"))
    }
    env.update({"SECRETS_DIR": str(tmp_path), **(extra_env or {})})
    return subprocess.run(
        [*client, "-f", str(COMPOSE), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )


def test_compose_client_accepts_the_file_and_interpolates_the_defaults(tmp_path):
    result = run_compose(tmp_path, "config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    collector = config["services"]["collector"]
    assert collector["environment"]["COLLECTOR_EXCHANGE_URL"] == "http://simulator:8080"
    assert collector["environment"]["COLLECTOR_DATABASE_URL"] == "postgresql://jex@postgres:5432/jex"
    # Compose v2 leaves out services of inactive profiles; v1 shows them with their profile.
    assert config["services"].get("simulator", {"profiles": ["demo"]})["profiles"] == ["demo"]

    assert config["secrets"]["postgres_password"]["file"] == str(tmp_path / "postgres_password")

    demo = run_compose(tmp_path, "--profile", "demo", "config", "--services")
    assert demo.returncode == 0, demo.stderr
    # v2 lists the active profiles' services; v1 every service, the monitoring profile's too
    listed = set(demo.stdout.split())
    assert {"postgres", "migrate", "collector", "simulator"} <= listed
    assert listed - {"postgres", "migrate", "collector", "simulator"} <= {"prometheus", "grafana"}

    monitoring = run_compose(tmp_path, "--profile", "monitoring", "config")
    assert monitoring.returncode == 0, monitoring.stderr


def test_compose_client_takes_the_exchange_url_from_the_environment(tmp_path):
    result = run_compose(tmp_path, "config", extra_env={"COLLECTOR_EXCHANGE_URL": "https://api.example.test"})
    assert result.returncode == 0, result.stderr
    env = yaml.safe_load(result.stdout)["services"]["collector"]["environment"]
    assert env["COLLECTOR_EXCHANGE_URL"] == "https://api.example.test"


# --- Dockerfile and .dockerignore ------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_a_slim_python_311_base():
    base = global_args()
    froms = [stage[0][1] for stage in stages()]
    assert len(froms) >= 2, "builder + runtime"
    for line in froms:
        image = line.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: base[m.group(1)], image)
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), line
    assert "--from=builder" in " ".join(args for k, args in stages()[-1] if k == "COPY")


def test_final_stage_runs_as_a_non_root_user():
    users = [args for keyword, args in stages()[-1] if keyword == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]


def test_final_stage_has_a_healthz_healthcheck_labels_and_the_entrypoint():
    final = stages()[-1]
    checks = [args for keyword, args in final if keyword == "HEALTHCHECK"]
    assert len(checks) == 1 and "/healthz" in checks[0] and "curl" not in checks[0]
    labels = " ".join(args for keyword, args in final if keyword == "LABEL")
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    entry = [args for keyword, args in final if keyword == "ENTRYPOINT"]
    assert entry == ['["/usr/local/bin/docker-entrypoint.sh"]']
    copies = [args for keyword, args in final if keyword == "COPY"]
    assert any("docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh" in c for c in copies)
    env = " ".join(args for keyword, args in final if keyword == "ENV")
    assert "COLLECTOR_METRICS_HOST=0.0.0.0" in env


def test_the_image_installs_the_locked_dependencies_and_the_projects_wheel():
    """The wheel carries the migrations and the default config (importlib.resources), so the image
    needs no source tree; the dependencies come from the lock, hashes checked."""
    from collector import config
    from collector.store import migrate

    assert config.DEFAULTS_FILE.name == "collector.toml" and config.DEFAULTS_FILE.exists()
    assert (Path(migrate.alembic_config().get_main_option("script_location")) / "env.py").exists()
    sources = {
        src.rstrip("/")
        for keyword, args in dockerfile_instructions()
        if keyword in ("COPY", "ADD")
        for src in copy_sources(args)
    }
    for needed in ("collector", "migrations", "config", "pyproject.toml", "requirements/runtime.lock"):
        assert needed in sources, needed
    installs = " ".join(args for keyword, args in stages()[0] if keyword == "RUN")
    assert "--require-hashes -r requirements/runtime.lock" in installs
    assert "pip wheel --no-deps" in installs and "-e " not in installs  # a regular install of the wheel
    final = " ".join(args for keyword, args in stages()[-1] if keyword == "COPY")
    assert "/opt/venv" in final and "/app" not in final and "/build" not in final


def test_dockerfile_bakes_in_no_secret():
    for keyword, args in dockerfile_instructions():
        if keyword in ("ENV", "ARG"):
            for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", " " + args) or [args.split("=")[0]]:
                assert not SECRET_WORDS.search(name), f"{keyword} {name}"
        if keyword in ("COPY", "ADD"):
            for src in copy_sources(args):
                assert not re.search(r"secret|\.env|\.pem|\.key$|id_rsa", src, re.I), src
                assert src not in (".", "./"), "copying the whole context could take secrets along"


def test_dockerignore_keeps_out_the_venv_data_git_and_secrets_but_not_what_is_copied():
    patterns = dockerignore_patterns()
    for path in (
        ".venv/bin/python",
        "data/pg/PG_VERSION",
        ".git/HEAD",
        "secrets/jex_api_key",
        ".env",
        "collector/__pycache__/x.pyc",
        "jex_collector.egg-info/PKG-INFO",
    ):
        assert ignored(path, patterns), path
    for keyword, args in dockerfile_instructions():
        if keyword in ("COPY", "ADD"):
            for src in copy_sources(args):
                assert not ignored(src, patterns), f"{src} is copied but .dockerignore drops it"


# --- docker/entrypoint.sh ---------------------------------------------------------------------

BASH = shutil.which("bash")
needs_bash = pytest.mark.skipif(BASH is None, reason="bash is not installed")


@pytest.fixture
def fake_collector(tmp_path):
    """A `collector` on PATH that prints its arguments, so the entrypoint's exec can be seen."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "collector"
    script.write_text('#!/bin/sh\necho "collector $*"\n')
    script.chmod(0o755)
    return bindir


def entrypoint(args: list[str], env: dict[str, str], bindir: Path) -> subprocess.CompletedProcess:
    base = {"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"}
    return subprocess.run(
        [BASH, str(ENTRYPOINT), *args], env={**base, **env}, capture_output=True, text=True, timeout=30
    )


def test_entrypoint_is_an_executable_bash_script():
    assert ENTRYPOINT.read_text().startswith("#!/usr/bin/env bash\n")
    assert ENTRYPOINT.stat().st_mode & stat.S_IXUSR
    if BASH:
        subprocess.run([BASH, "-n", str(ENTRYPOINT)], check=True)


@needs_bash
def test_entrypoint_exports_each_collector_file_secret_and_drops_the_file_variable(tmp_path, fake_collector):
    key = tmp_path / "key"
    key.write_text("k3y with 'quotes' $dollar \"and\" spaces\n\n")
    password = tmp_path / "pw"
    password.write_text("pg-pa55\n")
    result = entrypoint(
        ["env"],
        {
            "COLLECTOR_API_KEY_FILE": str(key),
            "PGPASSWORD_FILE": str(password),
            "OTHER_FILE": str(key),
            "COLLECTOR_LOG_LEVEL": "DEBUG",
        },
        fake_collector,
    )
    assert result.returncode == 0, result.stderr
    env = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert env["COLLECTOR_API_KEY"] == "k3y with 'quotes' $dollar \"and\" spaces"
    assert env["PGPASSWORD"] == "pg-pa55"
    assert "COLLECTOR_API_KEY_FILE" not in env and "PGPASSWORD_FILE" not in env
    assert env["OTHER_FILE"] == str(key) and "OTHER" not in env, "only COLLECTOR_* and PGPASSWORD"
    assert env["COLLECTOR_LOG_LEVEL"] == "DEBUG"


@needs_bash
def test_entrypoint_leaves_an_optional_secret_unset_when_its_file_is_empty(tmp_path, fake_collector):
    empty = tmp_path / "empty"
    empty.write_text("\n")
    result = entrypoint(["env"], {"COLLECTOR_API_SECRET_FILE": str(empty)}, fake_collector)
    assert result.returncode == 0, result.stderr
    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert "COLLECTOR_API_SECRET" not in names and "COLLECTOR_API_SECRET_FILE" not in names


@needs_bash
def test_entrypoint_refuses_a_secret_given_twice_without_printing_it(tmp_path, fake_collector):
    key = tmp_path / "key"
    key.write_text("from-file-value\n")
    result = entrypoint(
        ["env"], {"COLLECTOR_API_KEY": "from-env-value", "COLLECTOR_API_KEY_FILE": str(key)}, fake_collector
    )
    assert result.returncode == 2
    assert "COLLECTOR_API_KEY" in result.stderr and "COLLECTOR_API_KEY_FILE" in result.stderr
    assert "from-env-value" not in result.stderr + result.stdout
    assert "from-file-value" not in result.stderr + result.stdout


@needs_bash
def test_entrypoint_fails_on_a_missing_secret_file_instead_of_running_without_it(tmp_path, fake_collector):
    missing = tmp_path / "nope"
    result = entrypoint(["run"], {"COLLECTOR_API_KEY_FILE": str(missing)}, fake_collector)
    assert result.returncode == 2
    assert str(missing) in result.stderr and "collector" not in result.stdout


@needs_bash
@pytest.mark.parametrize(
    ("args", "ran"),
    [
        ([], "collector run"),
        (["db", "upgrade"], "collector db upgrade"),
        (["--help"], "collector --help"),
        (["collector", "simulate", "--port", "8080"], "collector simulate --port 8080"),
    ],
)
def test_entrypoint_runs_the_collector_by_default(args, ran, fake_collector):
    result = entrypoint(args, {}, fake_collector)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ran


@needs_bash
def test_entrypoint_runs_another_program_as_given(fake_collector):
    result = entrypoint(["echo", "hello"], {}, fake_collector)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello"
