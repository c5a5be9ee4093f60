"""Static checks of the deployment manifests: docker-compose.yml, deploy/Dockerfile and the Helm
chart.  No container engine or cluster is needed: docker-compose 1.29 validates and resolves the
compose file without an engine, and `helm lint`/`helm template` render the chart offline when a
helm binary is on PATH (otherwise those two tests skip and the YAML-level checks still run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "compose.env.example"
DOCKERFILE = REPO / "deploy" / "Dockerfile"
CHART = REPO / "deploy" / "helm" / "rizzpay"

# Services that run once and exit; every other service is long-running and needs a healthcheck.
ONE_SHOT = {"migrate", "seed"}
# Secrets compose must refuse to run without.
REQUIRED_SECRETS = (
    "POSTGRES_PASSWORD",
    "CLICKHOUSE_PASSWORD",
    "REDIS_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
)
# Application services built from deploy/Dockerfile.
APP_SERVICES = {"migrate", "api", "worker", "warehouse-sink", "report-scheduler"}

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|REDISCLI_AUTH", re.IGNORECASE)
REQUIRED_REF = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")
URL_USERINFO = re.compile(r"://(?P<user>[^:@/\s]*):(?P<pw>[^@\s]+)@")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose (Debian package docker-compose 1.29) is not installed")
    return exe


def _clean_env() -> dict[str, str]:
    """The process environment without any variable the compose file interpolates, so only the
    env file given on the command line decides the result."""
    names = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}
    env["COMPOSE_PROJECT_NAME"] = "rizzpay"
    return env


def _compose(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_docker_compose(), "-f", str(COMPOSE_FILE), "--env-file", str(env_file), *args],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _raw_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def _resolved_compose() -> dict[str, Any]:
    result = _compose(ENV_EXAMPLE, "config")
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    return data


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(dotted.path, leaf) for every scalar in a YAML tree."""
    if isinstance(node, dict):
        out: list[tuple[str, Any]] = []
        for key, value in node.items():
            out.extend(_walk(value, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(node, list):
        out = []
        for i, value in enumerate(node):
            out.extend(_walk(value, f"{path}[{i}]"))
        return out
    return [(path, node)]


def _env_items(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# --------------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------------


def test_compose_config_is_valid_with_example_env() -> None:
    result = _compose(ENV_EXAMPLE, "config", "-q")
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_compose_without_env_file_fails_on_a_required_secret(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose(empty, "config", "-q")
    assert result.returncode != 0, "compose resolved with no secrets: some password has a default"
    named = [name for name in REQUIRED_SECRETS if name in result.stderr]
    assert named, f"error does not name a missing required variable:\n{result.stderr}"


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_each_secret_is_required(secret: str, tmp_path: Path) -> None:
    lines = [
        line
        for line in ENV_EXAMPLE.read_text().splitlines()
        if not line.strip().startswith(f"{secret}=")
    ]
    env_file = tmp_path / "partial.env"
    env_file.write_text("\n".join(lines) + "\n")
    result = _compose(env_file, "config", "-q")
    assert result.returncode != 0, f"compose resolved without {secret}: it has a default"
    assert secret in result.stderr, result.stderr


def test_env_example_lists_every_required_variable_with_placeholders() -> None:
    code = "\n".join(
        line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", code))
    assert set(REQUIRED_SECRETS) <= required
    example: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            example[key] = value
    assert required <= set(example), f"missing from compose.env.example: {required - set(example)}"
    for name in required:
        assert example[name] == "change-me", f"{name} should be the placeholder change-me"


def test_compose_secrets_only_come_from_required_variables() -> None:
    """No password literal in the file: every secret-named env var is a ${VAR:?...} reference,
    and every URL carrying a password takes it from one."""
    for name, service in _raw_compose()["services"].items():
        for key, value in _env_items(service).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_REF.match(value), f"{name}.{key} is not a ${{VAR:?...}}: {value!r}"
    for key, value in (_raw_compose().get("x-rizzpay-env") or {}).items():
        found = re.search(r"://(?P<userinfo>.*)@", str(value))
        if not found:
            continue
        # Replace variable references by markers, then look at the password part.
        userinfo = re.sub(r"\$\{[A-Z0-9_]+:\?[^}]*\}", "<required>", found.group("userinfo"))
        userinfo = re.sub(r"\$\{[^}]*\}", "<optional>", userinfo)
        if ":" in userinfo:
            assert userinfo.split(":", 1)[1] == "<required>", (
                f"{key}: password not from ${{VAR:?...}}"
            )


def test_every_image_is_pinned() -> None:
    for name, service in _resolved_compose()["services"].items():
        image = service.get("image")
        assert image, f"service {name} has no image"
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"{name}: image {image} has no tag"
        tag = last.rsplit(":", 1)[1]
        assert tag and tag != "latest", f"{name}: image {image} is not pinned"


def test_kafka_is_single_node_kraft() -> None:
    kafka = _resolved_compose()["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:4.1.1"
    env = _env_items(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CONTROLLER" in env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key


def test_long_running_services_have_healthchecks() -> None:
    services = _resolved_compose()["services"]
    assert set(services) >= ONE_SHOT
    long_running = set(services) - ONE_SHOT
    assert {
        "kafka",
        "timescaledb",
        "clickhouse",
        "redis",
        "grafana",
        "api",
        "worker",
        "warehouse-sink",
        "report-scheduler",
    } <= long_running
    for name in long_running:
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no", (
            f"{name} is one-shot: restart must be no"
        )


def test_start_order_waits_on_health_and_migrations() -> None:
    services = _resolved_compose()["services"]
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["kafka"]["condition"] == "service_healthy", name
    # migrate also creates the Kafka topics (the worker never declares them).
    migrate_deps = services["migrate"]["depends_on"]
    for dep in ("timescaledb", "clickhouse", "kafka"):
        assert migrate_deps[dep]["condition"] == "service_healthy", dep
    for name, service in services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert spec.get("condition") in {"service_healthy", "service_completed_successfully"}, (
                f"{name} -> {dep} starts without waiting"
            )


def test_app_services_are_wired_to_the_stack() -> None:
    services = _resolved_compose()["services"]
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"]["dockerfile"].endswith("deploy/Dockerfile"), name
        env = _env_items(service)
        assert env["RIZZPAY_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert (
            env["RIZZPAY_PG_DSN"].startswith("postgresql://")
            and "@timescaledb:5432/" in env["RIZZPAY_PG_DSN"]
        )
        assert (
            env["RIZZPAY_REDIS_URL"].startswith("redis://")
            and "@redis:6379/" in env["RIZZPAY_REDIS_URL"]
        )
        assert (
            env["RIZZPAY_CLICKHOUSE_DSN"].startswith("http://")
            and "@clickhouse:8123/" in env["RIZZPAY_CLICKHOUSE_DSN"]
        )
        assert "RIZZPAY_TOPIC_PREFIX" in env
    assert services["migrate"]["command"][0] == "migrate"
    assert services["api"]["command"] == ["api", "--host", "0.0.0.0", "--port", "8000"]
    assert services["worker"]["command"] == ["worker"]
    assert services["warehouse-sink"]["command"] == ["warehouse", "sink"]
    assert services["report-scheduler"]["command"] == ["reports", "schedule"]
    for name in ("warehouse-sink", "report-scheduler"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name


# --------------------------------------------------------------------------------------------
# deploy/Dockerfile (cannot be built here: no container engine; checked as text)
# --------------------------------------------------------------------------------------------


def test_dockerfile_is_pinned_multistage_non_root() -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(froms) >= 2, "expected a multi-stage build"
    for ref in froms:
        image = args.get(ref.strip("${}"), ref) if ref.startswith("$") else ref
        assert re.match(r"^python:3\.11(\.\d+)?-slim", image), (
            f"base image not pinned python:3.11-slim: {image}"
        )
    assert args.get("UV_VERSION") == "0.13.8" and "uv==${UV_VERSION}" in text
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0")), "final stage must not run as root"
    assert re.search(r'^ENTRYPOINT \["rizzpay"\]', text, re.MULTILINE)


def test_dockerignore_keeps_secrets_and_venv_out_of_the_context() -> None:
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".env", ".venv", ".git"} <= ignored


# --------------------------------------------------------------------------------------------
# Helm chart
# --------------------------------------------------------------------------------------------


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "rizzpay"
    for key in ("version", "appVersion", "description"):
        assert chart.get(key), key


def test_values_have_required_keys_and_no_default_secret() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["secrets"]["existingSecret"] == "", "existingSecret must be left for the user"
    assert isinstance(values["api"]["replicas"], int)
    assert values["api"]["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert values["api"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert values["api"]["resources"]["requests"] and values["api"]["resources"]["limits"]
    assert "enabled" in values["api"]["autoscaling"]
    assert isinstance(values["worker"]["replicas"], int)
    assert values["migrate"]["enabled"] is True
    assert values["kafka"]["bootstrap"]
    for svc in ("postgres", "redis", "clickhouse"):
        assert values[svc]["host"], svc
    for path, leaf in _walk(values):
        last = path.rsplit(".", 1)[-1]
        if path.startswith("secrets.keys."):
            # Names of keys inside the user's Secret, not values.
            assert re.fullmatch(r"[-._a-zA-Z0-9]+", str(leaf)), path
            continue
        if SECRET_NAME.search(last) and last != "existingSecret":
            assert leaf in ("", None), f"values.yaml sets a secret at {path}"
        if isinstance(leaf, str):
            assert not URL_USERINFO.search(leaf), f"credentials in a URL at {path}"
            assert leaf.lower() not in {"change-me", "changeme", "password", "secret"}, path


def test_chart_templates_are_balanced() -> None:
    templates = sorted((CHART / "templates").iterdir())
    names = {p.name for p in templates}
    assert {
        "api-deployment.yaml",
        "worker-deployment.yaml",
        "migrate-job.yaml",
        "api-service.yaml",
        "configmap.yaml",
        "api-hpa.yaml",
        "warehouse-sink-deployment.yaml",
        "report-scheduler-deployment.yaml",
    } <= names
    for path in templates:
        text = path.read_text()
        assert text.count("{{") == text.count("}}"), (
            f"unbalanced template delimiters in {path.name}"
        )
    job = (CHART / "templates" / "migrate-job.yaml").read_text()
    assert "pre-install,pre-upgrade" in job


def _helm() -> str:
    exe = shutil.which("helm")
    if exe is None:
        pytest.skip("helm is not installed (e.g. `go install helm.sh/helm/v3/cmd/helm@v3.19.0`)")
    return exe


def test_helm_lint() -> None:
    result = subprocess.run(
        [
            _helm(),
            "lint",
            "--strict",
            str(CHART),
            "-f",
            str(CHART / "ci" / "test-values.yaml"),
            "--kube-version",
            "1.30.0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_template_renders_the_workloads() -> None:
    helm = _helm()
    base = [helm, "template", "rp", str(CHART), "--kube-version", "1.30.0"]
    missing = subprocess.run(base, capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode != 0 and "secrets.existingSecret" in missing.stderr

    result = subprocess.run(
        [*base, "-f", str(CHART / "ci" / "test-values.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {
        ("Deployment", "rp-rizzpay-api"),
        ("Deployment", "rp-rizzpay-worker"),
        ("Job", "rp-rizzpay-migrate"),
        ("Service", "rp-rizzpay-api"),
        ("ConfigMap", "rp-rizzpay"),
        ("HorizontalPodAutoscaler", "rp-rizzpay-api"),
        ("Deployment", "rp-rizzpay-warehouse-sink"),
        ("Deployment", "rp-rizzpay-report-scheduler"),
    } <= kinds
    args = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["args"]
        for d in docs
        if d["kind"] == "Deployment"
    }
    assert args["rp-rizzpay-warehouse-sink"] == ["warehouse", "sink"]
    assert args["rp-rizzpay-report-scheduler"] == ["reports", "schedule"]
    assert "kind: Secret\n" not in result.stdout, "the chart must not create a Secret"
    for doc in docs:
        for path, leaf in _walk(doc):
            if isinstance(leaf, str):
                for match in URL_USERINFO.finditer(leaf):
                    assert match.group("pw").startswith("$(RIZZPAY_SECRET_"), f"{path}: {leaf}"


# --------------------------------------------------------------------------------------------
# Processor sandboxes (docs/connectors.md): the worker authorizes through them by default
# --------------------------------------------------------------------------------------------

SANDBOX_URLS = {
    "RIZZPAY_CONNECTORS_RAZORPAY_URL": 18100,
    "RIZZPAY_CONNECTORS_PAYU_URL": 18101,
    "RIZZPAY_CONNECTORS_STRIPE_URL": 18102,
    "RIZZPAY_CONNECTORS_BANK_URL": 18103,
}


def test_compose_worker_charges_through_the_sandbox_service() -> None:
    services = _resolved_compose()["services"]
    sandbox = services["sandbox"]
    assert sandbox["command"][:2] == ["sandbox", "serve"]
    assert sandbox["healthcheck"]["test"] and sandbox.get("restart") == "unless-stopped"
    worker = services["worker"]
    assert worker["depends_on"]["sandbox"]["condition"] == "service_healthy"
    env = _env_items(worker)
    assert env["RIZZPAY_AUTHORIZER"] == "connectors"
    for variable, port in SANDBOX_URLS.items():
        assert env[variable] == f"http://sandbox:{port}", variable
    # The worker keeps every other setting of the shared environment.
    assert env["RIZZPAY_KAFKA_BOOTSTRAP"] == "kafka:9092"


def _rendered(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_helm(), "template", "rp", str(CHART), "--kube-version", "1.30.0",
         "-f", str(CHART / "ci" / "test-values.yaml"), *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_helm_sandbox_serves_the_processor_urls_the_workers_read() -> None:
    result = _rendered()
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    config = by_kind[("ConfigMap", "rp-rizzpay")]["data"]
    assert config["RIZZPAY_AUTHORIZER"] == "connectors"
    for variable, port in SANDBOX_URLS.items():
        assert config[variable] == f"http://rp-rizzpay-sandbox:{port}", variable
    service_ports = {p["port"] for p in by_kind[("Service", "rp-rizzpay-sandbox")]["spec"]["ports"]}
    assert service_ports == set(SANDBOX_URLS.values())
    container = by_kind[("Deployment", "rp-rizzpay-sandbox")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["args"][:2] == ["sandbox", "serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/__sandbox/health"

    # Real processors: the sandbox goes away and the URLs are the ones given...
    real = _rendered(
        "--set", "sandbox.enabled=false",
        "--set", "processors.razorpayUrl=https://api.razorpay.com",
        "--set", "processors.payuUrl=https://secure.payu.in",
        "--set", "processors.stripeUrl=https://api.stripe.com",
        "--set", "processors.bankUrl=https://corporate.bank.example",
    )  # fmt: skip
    assert real.returncode == 0, real.stderr
    assert "rp-rizzpay-sandbox" not in real.stdout
    assert 'RIZZPAY_CONNECTORS_STRIPE_URL: "https://api.stripe.com"' in real.stdout
    # ...and a missing one is refused rather than pointed at a sandbox that is not there.
    missing = _rendered("--set", "sandbox.enabled=false")
    assert missing.returncode != 0 and "processors.razorpayUrl is required" in missing.stderr
