//! The `database` composition plugin.
//!
//! A `Database` (`platform.tessera.dev/v1alpha1`) becomes:
//! - Secret `<name>-credentials` (username, password, database);
//! - ConfigMap `<name>-config` (engine configuration);
//! - Service `<name>` (the endpoint);
//! - StatefulSet `<name>` with a volume claim template for the data;
//! - PodDisruptionBudget `<name>`, only when `replicas > 1`.
//!
//! The status patch carries the endpoint. A bad spec is refused with an error
//! that names the field.

use tessera_sdk::{CompositionRequest, Error, Expansion, Metadata, Object, Result, json};

/// The apiVersion of the composite this plugin expands.
pub const API_VERSION: &str = "platform.tessera.dev/v1alpha1";

/// The plugin's metadata.
pub fn metadata() -> Metadata {
    Metadata::new("database", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .handles(API_VERSION, "Database")
        .settings_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "storageClassName": {"type": "string", "minLength": 1},
                "maxReplicas": {"type": "integer", "minimum": 1, "maximum": 16}
            }
        }))
}

struct Engine {
    name: &'static str,
    image: &'static str,
    port: u16,
    data_dir: &'static str,
    config_file: &'static str,
    config: &'static str,
}

const POSTGRES: Engine = Engine {
    name: "postgres",
    image: "postgres",
    port: 5432,
    data_dir: "/var/lib/postgresql/data",
    config_file: "postgresql.conf",
    config: "listen_addresses = '*'\nmax_connections = 100\nshared_buffers = 128MB\n",
};

const MYSQL: Engine = Engine {
    name: "mysql",
    image: "mysql",
    port: 3306,
    data_dir: "/var/lib/mysql",
    config_file: "my.cnf",
    config: "[mysqld]\nbind-address = 0.0.0.0\nmax_connections = 100\n",
};

/// Expands a `Database`.
pub fn expand(request: CompositionRequest) -> Result<Expansion> {
    let spec = request.spec();
    let settings = request.settings();
    let engine = match spec.one_of("engine", &["postgres", "mysql"])? {
        "postgres" => &POSTGRES,
        _ => &MYSQL,
    };
    let version = spec.str("version")?;
    let max_replicas = settings.opt_int("maxReplicas")?.unwrap_or(9);
    let replicas = spec.opt_int_in("replicas", 1, max_replicas)?.unwrap_or(1);
    let storage = spec.quantity("storage")?;
    let storage_class = settings.opt_str("storageClassName")?;

    let name = request.composite.name().to_string();
    // The name becomes the Service's (a DNS-1035 label) and the StatefulSet's,
    // whose pods carry `controller-revision-hash: <name>-<10 chars>` (at most
    // 63 characters).
    if !tessera_sdk::is_dns1035_label(&name, 52) {
        return Err(Error::at(
            "metadata.name",
            format!(
                "metadata.name must be lowercase letters, digits and '-', starting with a letter, \
                 at most 52 characters (it names the Service and the StatefulSet), got {name:?}"
            ),
        ));
    }
    let secret_name = format!("{name}-credentials");
    let config_name = format!("{name}-config");
    let selector = json!({
        "app.kubernetes.io/name": engine.name,
        "app.kubernetes.io/instance": name,
    });
    let labelled = |api_version: &str, kind: &str, child_name: &str| -> Object {
        request
            .child(api_version, kind, child_name)
            .with_label("app.kubernetes.io/name", engine.name)
            .with_label("app.kubernetes.io/instance", &name)
            .with_label("app.kubernetes.io/managed-by", "tessera")
    };

    let username = "app";
    let password = request.credential(&secret_name, "password", 24);
    let secret = labelled("v1", "Secret", &secret_name)
        .with("type", json!("Opaque"))
        .with_secret_data([
            ("username", username),
            ("password", password.as_str()),
            ("database", name.as_str()),
        ]);

    let config = labelled("v1", "ConfigMap", &config_name)
        .with("data", json!({ engine.config_file: engine.config }));

    let service = labelled("v1", "Service", &name).with(
        "spec",
        json!({
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": engine.name, "port": engine.port, "targetPort": engine.port, "protocol": "TCP"}],
        }),
    );

    let env = match engine.name {
        "postgres" => json!([
            {"name": "POSTGRES_USER", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "username"}}},
            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}},
            {"name": "POSTGRES_DB", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "database"}}},
            {"name": "PGDATA", "value": format!("{}/pgdata", engine.data_dir)},
        ]),
        _ => json!([
            {"name": "MYSQL_USER", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "username"}}},
            {"name": "MYSQL_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}},
            {"name": "MYSQL_ROOT_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "password"}}},
            {"name": "MYSQL_DATABASE", "valueFrom": {"secretKeyRef": {"name": secret_name, "key": "database"}}},
        ]),
    };
    let mut claim_spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage}},
    });
    if let Some(class) = storage_class {
        claim_spec["storageClassName"] = json!(class);
    }
    let statefulset = labelled("apps/v1", "StatefulSet", &name).with(
        "spec",
        json!({
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": selector},
                "spec": {
                    "containers": [{
                        "name": engine.name,
                        "image": format!("{}:{version}", engine.image),
                        "ports": [{"name": engine.name, "containerPort": engine.port}],
                        "env": env,
                        "volumeMounts": [
                            {"name": "data", "mountPath": engine.data_dir},
                            {"name": "config", "mountPath": format!("/etc/tessera/{}", engine.config_file), "subPath": engine.config_file},
                        ],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": config_name}}],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": claim_spec,
            }],
        }),
    );

    let mut expansion = Expansion::new()
        .child(secret)
        .child(config)
        .child(service)
        .child(statefulset);
    if replicas > 1 {
        let pdb = labelled("policy/v1", "PodDisruptionBudget", &name).with(
            "spec",
            json!({"maxUnavailable": 1, "selector": {"matchLabels": selector}}),
        );
        expansion = expansion.child(pdb);
    }

    let namespace = request.composite.namespace().unwrap_or("default");
    let ready = request
        .observed("apps/v1", "StatefulSet", &name)
        .and_then(|s| s.as_value().pointer("/status/readyReplicas"))
        .and_then(|r| r.as_i64())
        .is_some_and(|ready| ready >= replicas);
    Ok(expansion
        .status(json!({
            "endpoint": format!("{name}.{namespace}.svc.cluster.local:{}", engine.port),
            "secretName": secret_name,
            "engine": engine.name,
        }))
        .ready(ready))
}

tessera_sdk::export_composition!(metadata = metadata, expand = expand);
