"""deploy/k8s: every manifest kustomize would render is valid Kubernetes (the `kubernetes-validate`
package's offline schemas) and agrees with the code: the runner's service name, the ports the image
declares and listens on, the API's port from service.py, BentoML's /readyz and /livez, the config the
ConfigMap carries (validated by nailseg.config) and the key files the Secret provides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import torch
import yaml
from conftest import ROOT, randomised_model, users_checkpoint

K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.30.0"  # oldest release these manifests aim at (autoscaling/v2, startup probes)


def render() -> list[dict]:
    """What `kubectl apply -k deploy/k8s` applies: the kustomization's resources, its labels and images."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = [d for name in kustomization["resources"] for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    images = {i["name"]: f"{i['newName']}:{i['newTag']}" for i in kustomization.get("images", [])}
    for doc in docs:
        for group in kustomization.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(group["pairs"])
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            container["image"] = images.get(container["image"], container["image"])
    return docs


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in render()}


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> dict:
    """The runner's service name and the API's port, as the services declare them (importing service.py
    needs a model in the store: a tiny one in a temporary store)."""
    home = tmp_path_factory.mktemp("k8s_home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    torch.save(users_checkpoint(randomised_model()), home / "tiny.pth")
    subprocess.run([sys.executable, "-m", "models_import", "--checkpoint", str(home / "tiny.pth")], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    probe = ("import json, service; print(json.dumps({'runner': service.UNetRunner.name, "
             "'api_port': service.UNetAPI.config['http']['port']}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.splitlines()[-1])


def container(manifests, deployment: str) -> dict:
    (c,) = manifests["Deployment", deployment]["spec"]["template"]["spec"]["containers"]
    return c


def option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_every_manifest_is_valid_kubernetes(manifests):
    assert {kind for kind, _ in manifests} == {"ConfigMap", "Secret", "Deployment", "Service",
                                               "HorizontalPodAutoscaler"}
    for doc in manifests.values():
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)  # raises on any schema error


def test_a_broken_manifest_is_caught(manifests):
    broken = yaml.safe_load(yaml.safe_dump(manifests["Deployment", "nailseg-api"]))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "3000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_the_start_commands_are_the_ones_bentoml_accepts(manifests):
    """The image's entrypoint hands `start-http-server ARGS` to BentoML's start module (nailseg/compat/start.py)."""
    from nailseg.compat import start

    command = start.start_http_server()
    for deployment in ("nailseg-runner", "nailseg-api"):
        args = container(manifests, deployment)["args"]
        assert args[0] == start.COMMAND
        command.make_context("start-http-server", [*args[1:], "/home/bentoml/bento"])  # raises on a bad flag


def test_ports_probes_and_the_runner_url_agree_with_the_code(manifests, code):
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    image_port = int(next(e["value"] for e in bentofile["envs"] if e["name"] == "BENTOML_PORT"))
    for deployment in ("nailseg-runner", "nailseg-api"):
        c = container(manifests, deployment)
        (port,) = c["ports"]
        assert port["containerPort"] == int(option(c["args"], "--port")) == image_port
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port["name"]}
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    runner, api = container(manifests, "nailseg-runner"), container(manifests, "nailseg-api")
    assert option(runner["args"], "--service-name") == code["runner"]
    name, url = option(api["args"], "--depends").split("=", 1)
    assert name == code["runner"]
    runner_service = manifests["Service", urlparse(url).hostname]
    (runner_port,) = runner_service["spec"]["ports"]
    assert runner_port["port"] == urlparse(url).port and runner_port["targetPort"] == "http"
    (api_port,) = manifests["Service", "nailseg-api"]["spec"]["ports"]
    assert api_port["port"] == code["api_port"] and api_port["targetPort"] == "http"
    selectors = {"nailseg-runner": runner_service, "nailseg-api": manifests["Service", "nailseg-api"]}
    for deployment, service in selectors.items():
        labels = manifests["Deployment", deployment]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()


def test_the_runner_has_a_gpu_and_the_api_scales_on_cpu(manifests):
    assert container(manifests, "nailseg-runner")["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "nvidia.com/gpu" not in container(manifests, "nailseg-api")["resources"].get("limits", {})
    hpa = manifests["HorizontalPodAutoscaler", "nailseg-api"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nailseg-api"}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu" and 1 < hpa["minReplicas"] < hpa["maxReplicas"]


def test_the_configmap_config_is_valid_and_its_key_files_come_from_the_secret(manifests, tmp_path):
    from nailseg.config import Settings, load_settings

    config = yaml.safe_load(manifests["ConfigMap", "nailseg-config"]["data"]["config.yaml"])
    keys = config["unet"]["security"]
    secret = manifests["Secret", "nailseg-keys"]
    if "security" not in Settings.model_fields:  # issue 11 adds the section; until then check the rest
        config["unet"].pop("security")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    for deployment in ("nailseg-runner", "nailseg-api"):
        c = container(manifests, deployment)
        env = {e["name"]: e["value"] for e in c["env"]}
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert env["UNET_CONFIG"] == mounts["config"]["mountPath"] and mounts["config"]["subPath"] == "config.yaml"
        for key in ("api_keys_file", "admin_keys_file"):  # every process reads them at start (service.py)
            path = Path(keys[key])
            assert path.parent == Path(mounts["keys"]["mountPath"]) and path.name in secret["stringData"]
        load_settings(tmp_path / "config.yaml", environ={k: v for k, v in env.items() if k != "UNET_CONFIG"})
