"""The ``database`` composition plugin, in Python: a port of plugins/database
(src/lib.rs) on the Python SDK (guest-sdk/python).

A ``Database`` (``platform.tessera.dev/v1alpha1``) becomes:

- Secret ``<name>-credentials`` (username, password, database);
- ConfigMap ``<name>-config`` (engine configuration);
- Service ``<name>`` (the endpoint);
- StatefulSet ``<name>`` with a volume claim template for the data;
- PodDisruptionBudget ``<name>``, only when ``replicas > 1``.

The status patch carries the endpoint. A bad spec is refused with an error
that names the field. The children are byte for byte the Rust plugin's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from tessera_sdk import (
    CompositionRequest,
    Error,
    Expansion,
    Metadata,
    Object,
    composition,
    is_dns1035_label,
    rust_debug,
)

#: The apiVersion of the composite this plugin expands.
API_VERSION = "platform.tessera.dev/v1alpha1"
#: The Rust plugin's `CARGO_PKG_VERSION` and `CARGO_PKG_DESCRIPTION`.
VERSION = "0.1.0"
DESCRIPTION = "Expands a Database composite into a Secret, ConfigMap, Service, StatefulSet and PodDisruptionBudget."

METADATA = (
    Metadata("database", VERSION)
    .description(DESCRIPTION)
    .handles(API_VERSION, "Database")
    .settings_schema(
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "storageClassName": {"type": "string", "minLength": 1},
                "maxReplicas": {"type": "integer", "minimum": 1, "maximum": 16},
            },
        }
    )
)


@dataclass(frozen=True)
class Engine:
    """One database engine's image, port and files."""

    name: str
    image: str
    port: int
    data_dir: str
    config_file: str
    config: str


POSTGRES = Engine(
    name="postgres",
    image="postgres",
    port=5432,
    data_dir="/var/lib/postgresql/data",
    config_file="postgresql.conf",
    config="listen_addresses = '*'\nmax_connections = 100\nshared_buffers = 128MB\n",
)

MYSQL = Engine(
    name="mysql",
    image="mysql",
    port=3306,
    data_dir="/var/lib/mysql",
    config_file="my.cnf",
    config="[mysqld]\nbind-address = 0.0.0.0\nmax_connections = 100\n",
)


def _secret_env(name: str, secret_name: str, key: str) -> Dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


@composition(METADATA)
def expand(request: CompositionRequest) -> Expansion:
    """Expands a ``Database``."""
    spec = request.spec()
    settings = request.settings()
    engine = POSTGRES if spec.one_of("engine", ["postgres", "mysql"]) == "postgres" else MYSQL
    version = spec.string("version")
    max_replicas = settings.opt_integer("maxReplicas")
    if max_replicas is None:
        max_replicas = 9
    replicas = spec.opt_integer_in("replicas", 1, max_replicas)
    if replicas is None:
        replicas = 1
    storage = spec.quantity("storage")
    storage_class = settings.opt_string("storageClassName")
    name = request.composite.name
    # The name becomes the Service's (a DNS-1035 label) and the StatefulSet's,
    # whose pods carry `controller-revision-hash: <name>-<10 chars>` (at most
    # 63 characters).
    if not is_dns1035_label(name, 52):
        raise Error.at(
            "metadata.name",
            "metadata.name must be lowercase letters, digits and '-', starting with a letter, "
            "at most 52 characters (it names the Service and the StatefulSet), "
            f"got {rust_debug(name)}",
        )
    secret_name = f"{name}-credentials"
    config_name = f"{name}-config"

    def selector() -> Dict[str, Any]:
        return {"app.kubernetes.io/name": engine.name, "app.kubernetes.io/instance": name}

    def labelled(api_version: str, kind: str, child_name: str) -> Object:
        return (
            request.child(api_version, kind, child_name)
            .with_label("app.kubernetes.io/name", engine.name)
            .with_label("app.kubernetes.io/instance", name)
            .with_label("app.kubernetes.io/managed-by", "tessera")
        )

    username = "app"
    password = request.credential(secret_name, "password", 24)
    secret = (
        labelled("v1", "Secret", secret_name)
        .with_field("type", "Opaque")
        .with_secret_data([("username", username), ("password", password), ("database", name)])
    )
    config = labelled("v1", "ConfigMap", config_name).with_field("data", {engine.config_file: engine.config})
    service = labelled("v1", "Service", name).with_field(
        "spec",
        {
            "type": "ClusterIP",
            "selector": selector(),
            "ports": [{"name": engine.name, "port": engine.port, "targetPort": engine.port, "protocol": "TCP"}],
        },
    )
    env: List[Dict[str, Any]]
    if engine.name == "postgres":
        env = [
            _secret_env("POSTGRES_USER", secret_name, "username"),
            _secret_env("POSTGRES_PASSWORD", secret_name, "password"),
            _secret_env("POSTGRES_DB", secret_name, "database"),
            {"name": "PGDATA", "value": f"{engine.data_dir}/pgdata"},
        ]
    else:
        env = [
            _secret_env("MYSQL_USER", secret_name, "username"),
            _secret_env("MYSQL_PASSWORD", secret_name, "password"),
            _secret_env("MYSQL_ROOT_PASSWORD", secret_name, "password"),
            _secret_env("MYSQL_DATABASE", secret_name, "database"),
        ]
    claim_spec: Dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage}},
    }
    if storage_class is not None:
        claim_spec["storageClassName"] = storage_class
    statefulset = labelled("apps/v1", "StatefulSet", name).with_field(
        "spec",
        {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": selector()},
            "template": {
                "metadata": {"labels": selector()},
                "spec": {
                    "containers": [
                        {
                            "name": engine.name,
                            "image": f"{engine.image}:{version}",
                            "ports": [{"name": engine.name, "containerPort": engine.port}],
                            "env": env,
                            "volumeMounts": [
                                {"name": "data", "mountPath": engine.data_dir},
                                {
                                    "name": "config",
                                    "mountPath": f"/etc/tessera/{engine.config_file}",
                                    "subPath": engine.config_file,
                                },
                            ],
                        }
                    ],
                    "volumes": [{"name": "config", "configMap": {"name": config_name}}],
                },
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim_spec}],
        },
    )
    expansion = Expansion().child(secret).child(config).child(service).child(statefulset)
    if replicas > 1:
        pdb = labelled("policy/v1", "PodDisruptionBudget", name).with_field(
            "spec", {"maxUnavailable": 1, "selector": {"matchLabels": selector()}}
        )
        expansion.child(pdb)

    namespace = request.composite.namespace or "default"
    ready = False
    observed = request.observed("apps/v1", "StatefulSet", name)
    if observed is not None:
        status = observed.value.get("status")
        count = status.get("readyReplicas") if isinstance(status, dict) else None
        ready = isinstance(count, int) and not isinstance(count, bool) and count >= replicas
    return expansion.status(
        {
            "endpoint": f"{name}.{namespace}.svc.cluster.local:{engine.port}",
            "secretName": secret_name,
            "engine": engine.name,
        }
    ).ready(ready)
