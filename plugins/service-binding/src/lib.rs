//! The `service-binding` composition plugin.
//!
//! The Open Service Broker model: a `ServiceInstance`
//! (`platform.tessera.dev/v1alpha1`) names a service *class* and a *plan*,
//! and the plugin provisions the backing service and a *binding* Secret with
//! everything an application needs to connect.
//!
//! - class `postgresql`: Service `<name>` (port 5432), StatefulSet `<name>`
//!   (`postgres:<version>`);
//! - class `redis`: ConfigMap `<name>-config` (`redis.conf`), Service `<name>`
//!   (port 6379), StatefulSet `<name>` (`redis:<version>`);
//! - either class: PodDisruptionBudget `<name>` when the plan runs more than
//!   one replica (the `large` plan);
//! - always, last: Secret `<name>-binding` with `host`, `port`, `username`,
//!   `password` and `uri` (and `database` for postgresql).
//!
//! The password is kept from the observed binding Secret when there is one,
//! otherwise derived by the host. The status patch names the class, plan,
//! binding Secret and host. A bad spec is refused with an error that names the
//! field.

use tessera_sdk::{CompositionRequest, Error, Expansion, Fields, Metadata, Object, Result, json};

/// The apiVersion of the composite this plugin expands.
pub const API_VERSION: &str = "platform.tessera.dev/v1alpha1";

/// The kind of the composite this plugin expands.
pub const KIND: &str = "ServiceInstance";

/// The length of a password the host derives.
const PASSWORD_LENGTH: u32 = 32;

/// The plugin's metadata.
pub fn metadata() -> Metadata {
    Metadata::new("service-binding", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .handles(API_VERSION, KIND)
        .settings_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "storageClassName": {"type": "string", "minLength": 1}
            }
        }))
}

/// What a plan provisions.
struct Plan {
    name: &'static str,
    replicas: i64,
    /// The CPU request (no CPU limit is set).
    cpu: &'static str,
    /// The memory request and limit.
    memory: &'static str,
    /// `memory` in MiB, for redis' `maxmemory`.
    memory_mib: u32,
    /// The size of each replica's volume claim.
    storage: &'static str,
}

/// The plans. The same for both classes.
///
/// | plan   | replicas | cpu  | memory | storage |
/// |--------|----------|------|--------|---------|
/// | small  | 1        | 250m | 256Mi  | 5Gi     |
/// | medium | 1        | 1    | 1Gi    | 20Gi    |
/// | large  | 3        | 2    | 4Gi    | 100Gi   |
#[rustfmt::skip]
const PLANS: [Plan; 3] = [
    Plan { name: "small",  replicas: 1, cpu: "250m", memory: "256Mi", memory_mib: 256,  storage: "5Gi" },
    Plan { name: "medium", replicas: 1, cpu: "1",    memory: "1Gi",   memory_mib: 1024, storage: "20Gi" },
    Plan { name: "large",  replicas: 3, cpu: "2",    memory: "4Gi",   memory_mib: 4096, storage: "100Gi" },
];

/// The service classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Postgresql,
    Redis,
}

impl Class {
    const NAMES: [&'static str; 2] = ["postgresql", "redis"];

    fn name(self) -> &'static str {
        match self {
            Class::Postgresql => "postgresql",
            Class::Redis => "redis",
        }
    }

    /// The keys allowed in `spec.parameters`.
    fn parameters(self) -> &'static [&'static str] {
        match self {
            Class::Postgresql => &["version", "databaseName"],
            Class::Redis => &["version", "maxmemoryPolicy"],
        }
    }

    fn default_version(self) -> &'static str {
        match self {
            Class::Postgresql => "16",
            Class::Redis => "7.2",
        }
    }

    fn image(self) -> &'static str {
        match self {
            Class::Postgresql => "postgres",
            Class::Redis => "redis",
        }
    }

    fn port(self) -> u16 {
        match self {
            Class::Postgresql => 5432,
            Class::Redis => 6379,
        }
    }

    fn username(self) -> &'static str {
        match self {
            Class::Postgresql => "app",
            Class::Redis => "default",
        }
    }
}

/// The redis eviction policies a `ServiceInstance` may choose.
const MAXMEMORY_POLICIES: [&str; 3] = ["allkeys-lru", "volatile-lru", "noeviction"];

/// Where postgres keeps its data: a directory below the volume's mount point,
/// since the volume's root may hold `lost+found`.
const PGDATA_MOUNT: &str = "/var/lib/postgresql/data";

/// Expands a `ServiceInstance`.
pub fn expand(request: CompositionRequest) -> Result<Expansion> {
    let spec = request.spec();
    let class = match spec.one_of("class", &Class::NAMES)? {
        "postgresql" => Class::Postgresql,
        _ => Class::Redis,
    };
    let plan = read_plan(&spec)?;
    let parameters = read_parameters(&request, class)?;
    let storage_class = request.settings().opt_str("storageClassName")?;

    let name = request.composite.name().to_string();
    check_name(&name)?;
    let namespace = request.composite.namespace().unwrap_or("default");
    let host = format!("{name}.{namespace}.svc.cluster.local");
    let binding_name = format!("{name}-binding");
    let port = class.port();

    let selector = json!({
        "app.kubernetes.io/name": class.name(),
        "app.kubernetes.io/instance": name,
    });
    let labelled = |api_version: &str, kind: &str, child_name: &str| -> Object {
        request
            .child(api_version, kind, child_name)
            .with_label("app.kubernetes.io/name", class.name())
            .with_label("app.kubernetes.io/instance", &name)
            .with_label("app.kubernetes.io/managed-by", "tessera")
    };
    let secret_env = |env_name: &str, key: &str| json!({"name": env_name, "valueFrom": {"secretKeyRef": {"name": binding_name, "key": key}}});

    let mut claim_spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": plan.storage}},
    });
    if let Some(storage_class) = storage_class {
        claim_spec["storageClassName"] = json!(storage_class);
    }
    let resources = json!({
        "requests": {"cpu": plan.cpu, "memory": plan.memory},
        "limits": {"memory": plan.memory},
    });
    let container_port = json!([{"name": class.name(), "containerPort": port, "protocol": "TCP"}]);
    let image = format!("{}:{}", class.image(), parameters.version);

    let mut expansion = Expansion::new();
    // The pod template: its annotations, containers and volumes.
    let (template_annotations, container, volumes) = match class {
        Class::Postgresql => {
            let container = json!({
                "name": class.name(),
                "image": image,
                "ports": container_port,
                "env": [
                    secret_env("POSTGRES_USER", "username"),
                    secret_env("POSTGRES_PASSWORD", "password"),
                    secret_env("POSTGRES_DB", "database"),
                    {"name": "PGDATA", "value": format!("{PGDATA_MOUNT}/pgdata")},
                ],
                "resources": resources,
                "readinessProbe": {
                    "exec": {"command": [
                        "pg_isready", "-h", "127.0.0.1", "-p", port.to_string(),
                        "-U", class.username(), "-d", parameters.database,
                    ]},
                    "periodSeconds": 10,
                },
                "volumeMounts": [{"name": "data", "mountPath": PGDATA_MOUNT}],
            });
            (None, container, None)
        }
        Class::Redis => {
            let config_name = format!("{name}-config");
            let config = redis_config(plan, &parameters.maxmemory_policy);
            // Redis reads its configuration only at start: a new checksum
            // rolls the pods when the configuration changes.
            let annotations = json!({"tessera.dev/config-checksum": fnv1a(&config)});
            expansion = expansion.child(
                labelled("v1", "ConfigMap", &config_name)
                    .with("data", json!({"redis.conf": config})),
            );
            let container = json!({
                "name": class.name(),
                "image": image,
                "args": ["redis-server", "/etc/redis/redis.conf", "--requirepass", "$(REDIS_PASSWORD)"],
                "ports": container_port,
                "env": [secret_env("REDIS_PASSWORD", "password")],
                "resources": resources,
                "readinessProbe": {"tcpSocket": {"port": class.name()}, "periodSeconds": 10},
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "config", "mountPath": "/etc/redis", "readOnly": true},
                ],
            });
            let volumes = json!([{"name": "config", "configMap": {"name": config_name}}]);
            (Some(annotations), container, Some(volumes))
        }
    };

    let service = labelled("v1", "Service", &name).with(
        "spec",
        json!({
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": class.name(), "port": port, "targetPort": class.name(), "protocol": "TCP"}],
        }),
    );

    let mut template_metadata = json!({"labels": selector});
    if let Some(annotations) = template_annotations {
        template_metadata["annotations"] = annotations;
    }
    let mut pod_spec = json!({"containers": [container]});
    if let Some(volumes) = volumes {
        pod_spec["volumes"] = volumes;
    }
    let statefulset = labelled("apps/v1", "StatefulSet", &name).with(
        "spec",
        json!({
            "serviceName": name,
            "replicas": plan.replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": template_metadata, "spec": pod_spec},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim_spec}],
        }),
    );
    expansion = expansion.child(service).child(statefulset);

    if plan.replicas > 1 {
        let pdb = labelled("policy/v1", "PodDisruptionBudget", &name).with(
            "spec",
            json!({"maxUnavailable": 1, "selector": {"matchLabels": selector}}),
        );
        expansion = expansion.child(pdb);
    }

    let username = class.username();
    let password = request.credential(&binding_name, "password", PASSWORD_LENGTH);
    let userinfo = format!("{username}:{}", percent_encode(&password));
    let port_text = port.to_string();
    let binding = labelled("v1", "Secret", &binding_name).with("type", json!("Opaque"));
    let binding = match class {
        Class::Postgresql => {
            let database = parameters.database.as_str();
            let uri = format!("postgresql://{userinfo}@{host}:{port}/{database}");
            binding.with_secret_data([
                ("host", host.as_str()),
                ("port", port_text.as_str()),
                ("username", username),
                ("password", password.as_str()),
                ("database", database),
                ("uri", uri.as_str()),
            ])
        }
        Class::Redis => {
            let uri = format!("redis://{userinfo}@{host}:{port}/0");
            binding.with_secret_data([
                ("host", host.as_str()),
                ("port", port_text.as_str()),
                ("username", username),
                ("password", password.as_str()),
                ("uri", uri.as_str()),
            ])
        }
    };
    expansion = expansion.child(binding);

    let ready = request
        .observed("apps/v1", "StatefulSet", &name)
        .and_then(|s| s.as_value().pointer("/status/readyReplicas"))
        .and_then(|r| r.as_i64())
        .is_some_and(|ready| ready >= plan.replicas);
    Ok(expansion
        .status(json!({
            "class": class.name(),
            "plan": plan.name,
            "bindingSecret": binding_name,
            "host": host,
        }))
        .ready(ready))
}

/// `spec.plan`, looked up in [`PLANS`].
fn read_plan(spec: &Fields<'_>) -> Result<&'static Plan> {
    let names = PLANS.map(|p| p.name);
    let chosen = spec.one_of("plan", &names)?;
    PLANS
        .iter()
        .find(|p| p.name == chosen)
        .ok_or_else(|| Error::at("spec.plan", format!("spec.plan {chosen:?} has no size")))
}

/// `spec.parameters`, checked against the class and with defaults filled in.
struct Parameters {
    version: String,
    /// The postgresql database (empty for redis).
    database: String,
    /// The redis eviction policy (empty for postgresql).
    maxmemory_policy: String,
}

fn read_parameters(request: &CompositionRequest, class: Class) -> Result<Parameters> {
    let spec = request.spec();
    let fields = spec
        .opt_object("parameters")?
        .unwrap_or_else(|| Fields::new(spec.path_of("parameters"), None));
    for key in spec
        .opt_map("parameters")?
        .into_iter()
        .flat_map(|m| m.keys())
    {
        if !class.parameters().contains(&key.as_str()) {
            let path = fields.path_of(key);
            return Err(Error::at(
                path.clone(),
                format!(
                    "{path} is not a parameter of class {} (allowed: {})",
                    class.name(),
                    class.parameters().join(", ")
                ),
            ));
        }
    }

    let version = fields
        .opt_str("version")?
        .unwrap_or(class.default_version());
    if !is_image_tag(version) {
        let path = fields.path_of("version");
        return Err(Error::at(
            path.clone(),
            format!(
                "{path} must be an image tag such as {} (letters, digits, '_', '.' and '-'), got {}",
                class.default_version(),
                json!(version)
            ),
        ));
    }

    let mut database = String::new();
    let mut maxmemory_policy = String::new();
    match class {
        Class::Postgresql => {
            database = match fields.opt_str("databaseName")? {
                Some(given) => {
                    if !is_database_name(given) {
                        let path = fields.path_of("databaseName");
                        return Err(Error::at(
                            path.clone(),
                            format!(
                                "{path} must be 1 to 63 letters, digits, '_', '.' or '-', got {}",
                                json!(given)
                            ),
                        ));
                    }
                    given.to_string()
                }
                // A valid composite name (checked later) is a valid database name.
                None => request.composite.name().to_string(),
            };
        }
        Class::Redis => {
            // `Fields::one_of` reads a required field: check presence first.
            maxmemory_policy = match fields.get("maxmemoryPolicy") {
                Some(_) => fields.one_of("maxmemoryPolicy", &MAXMEMORY_POLICIES)?,
                None => MAXMEMORY_POLICIES[0],
            }
            .to_string();
        }
    }
    Ok(Parameters {
        version: version.to_string(),
        database,
        maxmemory_policy,
    })
}

/// The children are named after the composite: the Service needs a DNS-1035
/// label, and a StatefulSet's pods carry a `controller-revision-hash` label
/// of `<name>-<10 characters>`, which must fit in 63 characters.
fn check_name(name: &str) -> Result<()> {
    if tessera_sdk::is_dns1035_label(name, 52) {
        Ok(())
    } else {
        Err(Error::at(
            "metadata.name",
            format!(
                "metadata.name must be lowercase letters, digits and '-', starting with a letter, \
                 at most 52 characters (it names the Service and the StatefulSet), got {}",
                json!(name)
            ),
        ))
    }
}

/// An OCI image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_image_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A database name that fits postgres' 63-byte identifiers and needs no
/// escaping in a URI.
fn is_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `redis.conf` for a plan: `maxmemory` is 75% of the plan's memory, leaving
/// room for redis' own overhead. The password is not here: it is passed
/// with `--requirepass` from the binding Secret.
fn redis_config(plan: &Plan, maxmemory_policy: &str) -> String {
    format!(
        "# Written by the tessera service-binding plugin.\n\
         dir /data\n\
         appendonly yes\n\
         maxmemory {}mb\n\
         maxmemory-policy {maxmemory_policy}\n",
        plan.memory_mib * 3 / 4
    )
}

/// Every byte but URI unreserved characters (RFC 3986: letters, digits,
/// `-`, `.`, `_`, `~`); non-ASCII bytes are always encoded.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes (`%XX`, upper-case hex) everything but URI unreserved
/// characters, for the password in a URI's userinfo (a derived password
/// needs none, an observed one might).
fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

/// 64-bit FNV-1a, as 16 hex digits: a stable checksum, not a secure hash.
fn fnv1a(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

tessera_sdk::export_composition!(metadata = metadata, expand = expand);

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::{Context, Value};

    /// base64 of `s3cret`, the password in the observed binding Secret.
    const PASSWORD_B64: &str = "czNjcmV0";

    fn context() -> Context {
        Context {
            caller: "test".into(),
            dry_run: true,
        }
    }

    fn secret(name: &str, password_b64: &str) -> Object {
        Object::from_value(
            "o",
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "data": {"password": password_b64},
            }),
        )
        .unwrap()
    }

    /// A request for the composite `name` (in `namespace`, if any), with an
    /// observed binding Secret so that no host call is needed.
    fn request_in(name: &str, namespace: Option<&str>, spec: Value) -> CompositionRequest {
        let mut metadata = json!({"name": name, "labels": {"team": "payments"}});
        if let Some(namespace) = namespace {
            metadata["namespace"] = json!(namespace);
        }
        CompositionRequest {
            composite: Object::from_value(
                "composite",
                json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}),
            )
            .unwrap(),
            observed: vec![secret(&format!("{name}-binding"), PASSWORD_B64)],
            settings: json!({}),
            context: context(),
        }
    }

    fn request(spec: Value) -> CompositionRequest {
        request_in("orders", Some("shop"), spec)
    }

    fn kinds(expansion: &Expansion) -> Vec<(&str, &str)> {
        expansion
            .children()
            .iter()
            .map(|c| (c.kind(), c.name()))
            .collect()
    }

    fn child<'a>(expansion: &'a Expansion, kind: &str) -> &'a Value {
        expansion
            .children()
            .iter()
            .find(|c| c.kind() == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .as_value()
    }

    /// The decoded `data[key]` of the Secret `name` among the children,
    /// decoded by the SDK itself.
    fn secret_value(expansion: &Expansion, name: &str, key: &str) -> String {
        let probe = CompositionRequest {
            composite: Object::new(API_VERSION, KIND, "probe"),
            observed: expansion.children().to_vec(),
            settings: json!({}),
            context: context(),
        };
        probe
            .observed_secret_value(name, key)
            .unwrap_or_else(|| panic!("no {key} in {name}"))
    }

    fn secret_keys(expansion: &Expansion) -> Vec<&str> {
        child(expansion, "Secret")["data"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn postgresql_small() {
        let e = expand(request(json!({"class": "postgresql", "plan": "small"}))).unwrap();
        assert_eq!(
            kinds(&e),
            [
                ("Service", "orders"),
                ("StatefulSet", "orders"),
                ("Secret", "orders-binding")
            ]
        );
        for c in e.children() {
            assert_eq!(c.namespace(), Some("shop"));
            assert_eq!(
                c.labels(),
                [
                    ("team", "payments"),
                    ("app.kubernetes.io/name", "postgresql"),
                    ("app.kubernetes.io/instance", "orders"),
                    ("app.kubernetes.io/managed-by", "tessera"),
                ]
            );
        }
        let selector = json!({
            "app.kubernetes.io/name": "postgresql",
            "app.kubernetes.io/instance": "orders",
        });

        assert_eq!(
            child(&e, "Service")["spec"],
            json!({
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "postgresql", "port": 5432, "targetPort": "postgresql", "protocol": "TCP"}],
            })
        );

        let sts = child(&e, "StatefulSet");
        assert_eq!(sts["apiVersion"], "apps/v1");
        assert_eq!(
            sts["spec"],
            json!({
                "serviceName": "orders",
                "replicas": 1,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": selector},
                    "spec": {"containers": [{
                        "name": "postgresql",
                        "image": "postgres:16",
                        "ports": [{"name": "postgresql", "containerPort": 5432, "protocol": "TCP"}],
                        "env": [
                            {"name": "POSTGRES_USER", "valueFrom": {"secretKeyRef": {"name": "orders-binding", "key": "username"}}},
                            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "orders-binding", "key": "password"}}},
                            {"name": "POSTGRES_DB", "valueFrom": {"secretKeyRef": {"name": "orders-binding", "key": "database"}}},
                            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                        ],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "readinessProbe": {
                            "exec": {"command": ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "app", "-d", "orders"]},
                            "periodSeconds": 10,
                        },
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                    }]},
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "5Gi"}},
                    },
                }],
            })
        );

        let binding = child(&e, "Secret");
        assert_eq!(binding["type"], "Opaque");
        assert_eq!(
            secret_keys(&e),
            ["host", "port", "username", "password", "database", "uri"]
        );
        assert_eq!(
            secret_value(&e, "orders-binding", "host"),
            "orders.shop.svc.cluster.local"
        );
        assert_eq!(secret_value(&e, "orders-binding", "port"), "5432");
        assert_eq!(secret_value(&e, "orders-binding", "username"), "app");
        assert_eq!(secret_value(&e, "orders-binding", "database"), "orders");
        assert_eq!(
            secret_value(&e, "orders-binding", "uri"),
            "postgresql://app:s3cret@orders.shop.svc.cluster.local:5432/orders"
        );

        assert_eq!(
            e.status_patch(),
            Some(&json!({
                "class": "postgresql",
                "plan": "small",
                "bindingSecret": "orders-binding",
                "host": "orders.shop.svc.cluster.local",
            }))
        );
        assert!(!e.is_ready());
    }

    #[test]
    fn postgresql_parameters_and_large_plan() {
        let e = expand(request(json!({
            "class": "postgresql",
            "plan": "large",
            "parameters": {"version": "17.2", "databaseName": "orders_main"},
        })))
        .unwrap();
        assert_eq!(
            kinds(&e),
            [
                ("Service", "orders"),
                ("StatefulSet", "orders"),
                ("PodDisruptionBudget", "orders"),
                ("Secret", "orders-binding")
            ]
        );
        let sts = &child(&e, "StatefulSet")["spec"];
        assert_eq!(sts["replicas"], 3);
        let container = &sts["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "postgres:17.2");
        assert_eq!(
            container["resources"],
            json!({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi"}})
        );
        assert_eq!(
            sts["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "100Gi"
        );
        let pdb = child(&e, "PodDisruptionBudget");
        assert_eq!(pdb["apiVersion"], "policy/v1");
        assert_eq!(pdb["spec"]["maxUnavailable"], 1);
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"],
            json!({"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "orders"})
        );
        assert_eq!(
            secret_value(&e, "orders-binding", "database"),
            "orders_main"
        );
        assert_eq!(
            secret_value(&e, "orders-binding", "uri"),
            "postgresql://app:s3cret@orders.shop.svc.cluster.local:5432/orders_main"
        );
    }

    #[test]
    fn redis_large() {
        let e = expand(request_in(
            "cache",
            None,
            json!({"class": "redis", "plan": "large"}),
        ))
        .unwrap();
        assert_eq!(
            kinds(&e),
            [
                ("ConfigMap", "cache-config"),
                ("Service", "cache"),
                ("StatefulSet", "cache"),
                ("PodDisruptionBudget", "cache"),
                ("Secret", "cache-binding")
            ]
        );
        for c in e.children() {
            assert_eq!(c.namespace(), None);
            assert_eq!(c.label("app.kubernetes.io/name"), Some("redis"));
        }

        let config = child(&e, "ConfigMap")["data"]["redis.conf"]
            .as_str()
            .unwrap();
        assert_eq!(
            config,
            "# Written by the tessera service-binding plugin.\n\
             dir /data\n\
             appendonly yes\n\
             maxmemory 3072mb\n\
             maxmemory-policy allkeys-lru\n"
        );
        assert!(!config.contains("requirepass"));
        assert!(!config.contains("s3cret"));

        let service = &child(&e, "Service")["spec"];
        assert_eq!(
            service["ports"],
            json!([{"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}])
        );

        let sts = &child(&e, "StatefulSet")["spec"];
        assert_eq!(sts["replicas"], 3);
        let template = &sts["template"];
        assert_eq!(
            template["metadata"]["annotations"]["tessera.dev/config-checksum"],
            fnv1a(config)
        );
        assert_eq!(
            template["spec"]["volumes"],
            json!([{"name": "config", "configMap": {"name": "cache-config"}}])
        );
        assert_eq!(
            template["spec"]["containers"][0],
            json!({
                "name": "redis",
                "image": "redis:7.2",
                "args": ["redis-server", "/etc/redis/redis.conf", "--requirepass", "$(REDIS_PASSWORD)"],
                "ports": [{"name": "redis", "containerPort": 6379, "protocol": "TCP"}],
                "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "cache-binding", "key": "password"}}}],
                "resources": {
                    "requests": {"cpu": "2", "memory": "4Gi"},
                    "limits": {"memory": "4Gi"},
                },
                "readinessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10},
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "config", "mountPath": "/etc/redis", "readOnly": true},
                ],
            })
        );
        assert_eq!(
            sts["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "100Gi"
        );

        assert_eq!(
            secret_keys(&e),
            ["host", "port", "username", "password", "uri"]
        );
        assert_eq!(secret_value(&e, "cache-binding", "username"), "default");
        assert_eq!(secret_value(&e, "cache-binding", "port"), "6379");
        assert_eq!(
            secret_value(&e, "cache-binding", "uri"),
            "redis://default:s3cret@cache.default.svc.cluster.local:6379/0"
        );
        assert_eq!(
            e.status_patch(),
            Some(&json!({
                "class": "redis",
                "plan": "large",
                "bindingSecret": "cache-binding",
                "host": "cache.default.svc.cluster.local",
            }))
        );
    }

    #[test]
    fn redis_small_with_parameters() {
        let e = expand(request(json!({
            "class": "redis",
            "plan": "small",
            "parameters": {"version": "7.4-alpine", "maxmemoryPolicy": "noeviction"},
        })))
        .unwrap();
        assert_eq!(
            kinds(&e),
            [
                ("ConfigMap", "orders-config"),
                ("Service", "orders"),
                ("StatefulSet", "orders"),
                ("Secret", "orders-binding")
            ]
        );
        let config = child(&e, "ConfigMap")["data"]["redis.conf"]
            .as_str()
            .unwrap();
        assert!(config.contains("maxmemory 192mb\n"), "{config}");
        assert!(config.contains("maxmemory-policy noeviction\n"), "{config}");
        let container = &child(&e, "StatefulSet")["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "redis:7.4-alpine");

        // medium: 75% of 1Gi.
        let e = expand(request(json!({"class": "redis", "plan": "medium"}))).unwrap();
        let config = child(&e, "ConfigMap")["data"]["redis.conf"]
            .as_str()
            .unwrap();
        assert!(config.contains("maxmemory 768mb\n"), "{config}");
    }

    #[test]
    fn config_change_changes_the_checksum() {
        let checksum = |policy: &str| {
            let e = expand(request(json!({
                "class": "redis",
                "plan": "small",
                "parameters": {"maxmemoryPolicy": policy},
            })))
            .unwrap();
            child(&e, "StatefulSet")["spec"]["template"]["metadata"]["annotations"]
                ["tessera.dev/config-checksum"]
                .clone()
        };
        assert_ne!(checksum("allkeys-lru"), checksum("noeviction"));
        assert_eq!(checksum("noeviction"), checksum("noeviction"));
    }

    #[test]
    fn unknown_parameter_is_refused() {
        let err = expand(request(json!({
            "class": "redis",
            "plan": "small",
            "parameters": {"version": "7.2", "foo": 1},
        })))
        .unwrap_err();
        assert_eq!(err.field(), Some("spec.parameters.foo"));
        assert_eq!(
            err.message(),
            "spec.parameters.foo is not a parameter of class redis (allowed: version, maxmemoryPolicy)"
        );

        // A parameter of the other class.
        let err = expand(request(json!({
            "class": "postgresql",
            "plan": "small",
            "parameters": {"maxmemoryPolicy": "noeviction"},
        })))
        .unwrap_err();
        assert_eq!(err.field(), Some("spec.parameters.maxmemoryPolicy"));
        assert_eq!(
            err.message(),
            "spec.parameters.maxmemoryPolicy is not a parameter of class postgresql (allowed: version, databaseName)"
        );
    }

    #[test]
    fn bad_class_and_plan_are_refused() {
        let err = expand(request(json!({"class": "postgresql", "plan": "huge"}))).unwrap_err();
        assert_eq!(err.field(), Some("spec.plan"));
        assert_eq!(
            err.message(),
            r#"spec.plan must be one of small, medium, large, got "huge""#
        );
        let err = expand(request(json!({"class": "postgresql"}))).unwrap_err();
        assert_eq!(err.message(), "spec.plan is required");
        let err = expand(request(json!({"class": "mysql", "plan": "small"}))).unwrap_err();
        assert_eq!(err.field(), Some("spec.class"));
        assert_eq!(
            err.message(),
            r#"spec.class must be one of postgresql, redis, got "mysql""#
        );
        let err = expand(request(json!({"plan": "small"}))).unwrap_err();
        assert_eq!(err.message(), "spec.class is required");
    }

    #[test]
    fn bad_parameter_values_are_refused() {
        let refuse = |class: &str, parameters: Value| {
            expand(request(
                json!({"class": class, "plan": "small", "parameters": parameters}),
            ))
            .unwrap_err()
        };
        let err = refuse("redis", json!({"maxmemoryPolicy": "allkeys-random"}));
        assert_eq!(err.field(), Some("spec.parameters.maxmemoryPolicy"));
        assert_eq!(
            err.message(),
            r#"spec.parameters.maxmemoryPolicy must be one of allkeys-lru, volatile-lru, noeviction, got "allkeys-random""#
        );
        let err = refuse("redis", json!({"version": 7}));
        assert_eq!(
            err.message(),
            "spec.parameters.version must be a string, got 7"
        );
        let err = refuse("postgresql", json!({"version": "16 ; rm"}));
        assert_eq!(err.field(), Some("spec.parameters.version"));
        assert_eq!(
            err.message(),
            r#"spec.parameters.version must be an image tag such as 16 (letters, digits, '_', '.' and '-'), got "16 ; rm""#
        );
        let err = refuse("postgresql", json!({"databaseName": "a/b"}));
        assert_eq!(err.field(), Some("spec.parameters.databaseName"));
        let err = refuse("postgresql", json!("fast"));
        assert_eq!(
            err.message(),
            r#"spec.parameters must be an object, got "fast""#
        );
    }

    #[test]
    fn bad_composite_name_is_refused() {
        let long = "a".repeat(53);
        for name in ["Orders", "1orders", "orders.v2", long.as_str()] {
            let err = expand(request_in(
                name,
                None,
                json!({"class": "redis", "plan": "small"}),
            ))
            .unwrap_err();
            assert_eq!(err.field(), Some("metadata.name"), "{name}");
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        let text: String = (0u8..128).map(char::from).chain(['é', '€']).collect();
        let expected: String = text
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        assert_eq!(percent_encode(&text), expected);
    }

    #[test]
    fn password_is_reused_from_the_observed_secret() {
        let e = expand(request(json!({"class": "postgresql", "plan": "medium"}))).unwrap();
        assert_eq!(child(&e, "Secret")["data"]["password"], PASSWORD_B64);
        assert_eq!(secret_value(&e, "orders-binding", "password"), "s3cret");

        // Another observed password flows into the password and the URI,
        // percent-encoded there.
        let mut req = request(json!({"class": "redis", "plan": "medium"}));
        req.observed = vec![secret("orders-binding", "cEBzcy93OnJk")]; // "p@ss/w:rd"
        let e = expand(req).unwrap();
        assert_eq!(secret_value(&e, "orders-binding", "password"), "p@ss/w:rd");
        assert_eq!(
            secret_value(&e, "orders-binding", "uri"),
            "redis://default:p%40ss%2Fw%3Ard@orders.shop.svc.cluster.local:6379/0"
        );
    }

    #[test]
    fn storage_class_setting_is_applied() {
        let mut req = request(json!({"class": "redis", "plan": "small"}));
        req.settings = json!({"storageClassName": "fast-ssd"});
        let e = expand(req).unwrap();
        assert_eq!(
            child(&e, "StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"],
            json!({
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}},
                "storageClassName": "fast-ssd",
            })
        );
    }

    #[test]
    fn ready_when_the_statefulset_has_enough_ready_replicas() {
        let statefulset = |ready: Option<i64>| {
            let mut status = json!({"replicas": 3});
            if let Some(n) = ready {
                status["readyReplicas"] = json!(n);
            }
            Object::from_value(
                "o",
                json!({
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "metadata": {"name": "orders", "namespace": "shop"},
                    "status": status,
                }),
            )
            .unwrap()
        };
        for (ready, expected) in [(None, false), (Some(2), false), (Some(3), true)] {
            let mut req = request(json!({"class": "postgresql", "plan": "large"}));
            req.observed.push(statefulset(ready));
            assert_eq!(expand(req).unwrap().is_ready(), expected, "{ready:?}");
        }
    }

    #[test]
    fn output_is_deterministic() {
        let spec = json!({"class": "redis", "plan": "large", "parameters": {"maxmemoryPolicy": "volatile-lru"}});
        let a = expand(request(spec.clone())).unwrap();
        let b = expand(request(spec)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn plans_are_consistent() {
        for plan in &PLANS {
            let mib = match plan.memory.strip_suffix("Gi") {
                Some(gi) => gi.parse::<u32>().unwrap() * 1024,
                None => plan.memory.strip_suffix("Mi").unwrap().parse().unwrap(),
            };
            assert_eq!(mib, plan.memory_mib, "{}", plan.name);
            assert!(tessera_sdk::is_quantity(plan.cpu), "{}", plan.name);
            assert!(tessera_sdk::is_quantity(plan.storage), "{}", plan.name);
        }
    }

    #[test]
    fn metadata_describes_the_plugin() {
        let expected = Metadata::new("service-binding", env!("CARGO_PKG_VERSION"))
            .description(env!("CARGO_PKG_DESCRIPTION"))
            .handles(API_VERSION, "ServiceInstance")
            .settings_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {"storageClassName": {"type": "string", "minLength": 1}}
            }));
        assert_eq!(metadata(), expected);
    }
}
