"""launch/k8s against the real schemas: every Kubernetes object strictly against the API of
:data:`KUBERNETES_VERSION` (kubernetes-validate's bundled OpenAPI schemas, unknown fields rejected),
and the PyTorchJob against the fields of Kubeflow's training operator v1 (the generated models of
the ``kubeflow-training`` SDK), key by key, its pod template against Kubernetes' own schema as well.

A misspelt field is silently dropped by a lenient apply, so these checks are what catches it offline.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers import ROOT

kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]'")
kubeflow_models = pytest.importorskip("kubeflow.training.models", reason="pip install -e '.[test]'")

# The oldest release the manifests are meant for (the training operator v1.8/v1.9 era); a field
# that only newer clusters know fails here.
KUBERNETES_VERSION = "1.29.0"
MANIFESTS = sorted((ROOT / "launch" / "k8s").glob("*.yaml"))
# kubeflow.org/v1 kinds and the SDK model of each; anything else must be a Kubernetes kind.
KUBEFLOW_KINDS = {("kubeflow.org/v1", "PyTorchJob"): "KubeflowOrgV1PyTorchJob"}
_LIST = re.compile(r"list\[(.+)\]")
_DICT = re.compile(r"dict\(str, (.+)\)")


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def all_documents() -> list[tuple[str, dict]]:
    return [(f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
            for path in MANIFESTS for doc in documents(path)]


def cases(kubeflow: bool) -> list:
    """The documents of one family, as test cases named after them."""
    return [pytest.param(name, doc, id=name) for name, doc in all_documents()
            if ((doc["apiVersion"], doc["kind"]) in KUBEFLOW_KINDS) == kubeflow]


def schema_errors(resource: dict) -> list[str]:
    """Kubernetes' own verdict on ``resource``: strict (unknown fields fail), one line per problem."""
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


def model_errors(value: object, openapi_type: str, where: str) -> list[str]:
    """Every key of ``value`` that the SDK model ``openapi_type`` does not declare, recursively.

    Leaves are checked for their shape (mapping, list or scalar) and integers and booleans for their
    type; strings also accept numbers, since Kubernetes quantities (``cpu: 8``) are strings in the
    models but integers in YAML.
    """
    if (inner := _LIST.fullmatch(openapi_type)) is not None:
        if not isinstance(value, list):
            return [f"{where}: expected a list ({openapi_type}), got {type(value).__name__}"]
        return [e for i, item in enumerate(value) for e in model_errors(item, inner.group(1), f"{where}[{i}]")]
    if (inner := _DICT.fullmatch(openapi_type)) is not None:
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping ({openapi_type}), got {type(value).__name__}"]
        return [e for key, item in value.items() for e in model_errors(item, inner.group(1), f"{where}.{key}")]
    scalar = {"str": (str, int, float), "int": int, "bool": bool, "float": (int, float), "object": object,
              "datetime": str}
    if openapi_type in scalar:
        wrong = not isinstance(value, scalar[openapi_type]) or (openapi_type == "int" and isinstance(value, bool))
        return [f"{where}: expected {openapi_type}, got {value!r}"] if wrong else []
    model = getattr(kubeflow_models, openapi_type)
    if not isinstance(value, dict):
        return [f"{where}: expected a mapping ({openapi_type}), got {type(value).__name__}"]
    fields = {json_key: model.openapi_types[attr] for attr, json_key in model.attribute_map.items()}
    errors = [f"{where}.{key}: not a field of {openapi_type}" for key in value if key not in fields]
    return errors + [e for key, item in value.items() if key in fields
                     for e in model_errors(item, fields[key], f"{where}.{key}")]


def kubeflow_pod_templates(doc: dict) -> list[tuple[str, dict]]:
    return [(role, spec["template"]) for role, spec in doc["spec"]["pytorchReplicaSpecs"].items()]


def test_the_manifests_are_there():
    assert {p.name for p in MANIFESTS} >= {"job-service.yaml", "pytorchjob.yaml"}
    kinds = {(doc["apiVersion"], doc["kind"]) for _, doc in all_documents()}
    assert ("kubeflow.org/v1", "PyTorchJob") in kinds and ("apps/v1", "Deployment") in kinds


@pytest.mark.parametrize("name,doc", cases(kubeflow=False))
def test_kubernetes_objects_match_the_api_strictly(name, doc):
    assert not schema_errors(doc), f"{name}: {schema_errors(doc)}"


@pytest.mark.parametrize("name,doc", cases(kubeflow=True))
def test_kubeflow_objects_use_only_training_operator_v1_fields(name, doc):
    model = KUBEFLOW_KINDS[(doc["apiVersion"], doc["kind"])]
    assert not model_errors(doc, model, name), "\n".join(model_errors(doc, model, name))
    for role, template in kubeflow_pod_templates(doc):
        # the operator hands the template to Kubernetes as it is: its schema decides
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": role.lower()},
                        "template": template}
        assert not schema_errors(pod_template), f"{name} {role}: {schema_errors(pod_template)}"


def test_the_checks_reject_what_a_lenient_apply_would_drop():
    """Both checkers fail on an unknown key, a misplaced field and a wrongly typed value: a green run
    above means the manifests were looked at, not that nothing was."""
    (job,) = [d for _, d in all_documents() if d["kind"] == "PyTorchJob"]
    spec = job["spec"]
    bad_elastic = {**job, "spec": {**spec, "elasticPolicy": {**spec["elasticPolicy"], "maxRestart": 3}}}
    assert model_errors(bad_elastic, "KubeflowOrgV1PyTorchJob", "job") == [
        "job.spec.elasticPolicy.maxRestart: not a field of KubeflowOrgV1ElasticPolicy"]
    worker = spec["pytorchReplicaSpecs"]["Worker"]
    bad_replicas = {**job, "spec": {**spec, "pytorchReplicaSpecs": {"Worker": {**worker, "replicas": "2"}}}}
    assert model_errors(bad_replicas, "KubeflowOrgV1PyTorchJob", "job") == [
        "job.spec.pytorchReplicaSpecs.Worker.replicas: expected int, got '2'"]
    pod = worker["template"]["spec"]
    bad_pod = {**worker["template"], "spec": {**pod, "restartPolicy": "OnFailure", "shmSize": "8Gi"}}
    assert model_errors(bad_pod, "V1PodTemplateSpec", "template") == [
        "template.spec.shmSize: not a field of V1PodSpec"]
    (deployment,) = [d for _, d in all_documents() if d["kind"] == "Deployment"]
    misplaced = {**deployment, "spec": {**deployment["spec"], "terminationGracePeriodSeconds": 60}}
    assert schema_errors(misplaced) and not schema_errors(deployment)
