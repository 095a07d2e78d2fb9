//! The `web-app` composition plugin.
//!
//! A `WebApp` (`platform.tessera.dev/v1alpha1`) becomes:
//! - Deployment `<name>` running the image in one container named `app`;
//! - Service `<name>` (ClusterIP, port 80 to the container's `http` port);
//! - Ingress `<name>` routing `spec.host` to the Service, only when
//!   `spec.host` is set;
//! - HorizontalPodAutoscaler `<name>` scaling the Deployment on CPU, only
//!   when `spec.autoscaling` is set (the Deployment then leaves `replicas` to
//!   the autoscaler).
//!
//! The status patch carries the URL and the desired replicas. A bad spec is
//! refused with an error that names the field.

use tessera_sdk::{
    CompositionRequest, Error, Expansion, Fields, Map, Metadata, Object, Result, json,
};

/// The apiVersion of the composite this plugin expands.
pub const API_VERSION: &str = "platform.tessera.dev/v1alpha1";

/// The most replicas a `WebApp` may ask for, directly or through autoscaling.
const MAX_REPLICAS: i64 = 100;

/// The plugin's metadata.
pub fn metadata() -> Metadata {
    Metadata::new("web-app", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .handles(API_VERSION, "WebApp")
        .settings_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "ingressClassName": {"type": "string", "minLength": 1},
                "defaultReplicas": {"type": "integer", "minimum": 0, "maximum": MAX_REPLICAS}
            }
        }))
}

/// `spec.autoscaling`, checked.
struct Autoscaling {
    min_replicas: i64,
    max_replicas: i64,
    target_cpu_utilization: i64,
}

impl Autoscaling {
    fn read(fields: &Fields<'_>) -> Result<Self> {
        let min_replicas = fields
            .opt_int_in("minReplicas", 1, MAX_REPLICAS)?
            .unwrap_or(1);
        let max_replicas = fields.int_in("maxReplicas", 1, MAX_REPLICAS)?;
        let target_cpu_utilization = fields
            .opt_int_in("targetCPUUtilization", 1, 100)?
            .unwrap_or(80);
        if max_replicas < min_replicas {
            let path = fields.path_of("maxReplicas");
            return Err(Error::at(
                path.clone(),
                format!(
                    "{path} must be at least {} ({min_replicas}), got {max_replicas}",
                    fields.path_of("minReplicas")
                ),
            ));
        }
        Ok(Autoscaling {
            min_replicas,
            max_replicas,
            target_cpu_utilization,
        })
    }
}

/// Expands a `WebApp`.
pub fn expand(request: CompositionRequest) -> Result<Expansion> {
    let spec = request.spec();
    let settings = request.settings();

    let name = request.composite.name().to_string();
    check_service_name(&name)?;
    let image = spec.str("image")?;
    if image.trim().is_empty() {
        return Err(Error::at("spec.image", "spec.image must not be empty"));
    }
    let default_replicas = settings
        .opt_int_in("defaultReplicas", 0, MAX_REPLICAS)?
        .unwrap_or(1);
    let replicas = spec
        .opt_int_in("replicas", 0, MAX_REPLICAS)?
        .unwrap_or(default_replicas);
    let port = spec.int_in("port", 1, 65535)?;
    let host = spec.opt_str("host")?;
    if let Some(host) = host {
        check_host(host)?;
    }
    let autoscaling = spec
        .opt_object("autoscaling")?
        .map(|fields| Autoscaling::read(&fields))
        .transpose()?;
    let ingress_class = settings.opt_str("ingressClassName")?;
    if ingress_class.is_some_and(str::is_empty) {
        return Err(Error::at(
            "settings.ingressClassName",
            "settings.ingressClassName must not be empty",
        ));
    }

    let selector = json!({
        "app.kubernetes.io/name": "web-app",
        "app.kubernetes.io/instance": name,
    });
    let labelled = |api_version: &str, kind: &str| -> Object {
        request
            .child(api_version, kind, &name)
            .with_label("app.kubernetes.io/name", "web-app")
            .with_label("app.kubernetes.io/instance", &name)
            .with_label("app.kubernetes.io/managed-by", "tessera")
    };

    // The autoscaler owns the replica count when there is one.
    let mut deployment_spec = Map::new();
    if autoscaling.is_none() {
        deployment_spec.insert("replicas".into(), json!(replicas));
    }
    deployment_spec.insert("selector".into(), json!({"matchLabels": selector}));
    deployment_spec.insert(
        "template".into(),
        json!({
            "metadata": {"labels": selector},
            "spec": {
                "containers": [{
                    "name": "app",
                    "image": image,
                    "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                }],
            },
        }),
    );
    let deployment = labelled("apps/v1", "Deployment").with("spec", deployment_spec.into());

    let service = labelled("v1", "Service").with(
        "spec",
        json!({
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        }),
    );

    let mut expansion = Expansion::new().child(deployment).child(service);

    if let Some(host) = host {
        let mut ingress_spec = Map::new();
        if let Some(class) = ingress_class {
            ingress_spec.insert("ingressClassName".into(), json!(class));
        }
        ingress_spec.insert(
            "rules".into(),
            json!([{
                "host": host,
                "http": {
                    "paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": name, "port": {"number": 80}}},
                    }],
                },
            }]),
        );
        let ingress = labelled("networking.k8s.io/v1", "Ingress").with("spec", ingress_spec.into());
        expansion = expansion.child(ingress);
    }

    if let Some(auto) = &autoscaling {
        let hpa = labelled("autoscaling/v2", "HorizontalPodAutoscaler").with(
            "spec",
            json!({
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": auto.min_replicas,
                "maxReplicas": auto.max_replicas,
                "metrics": [{
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": auto.target_cpu_utilization},
                    },
                }],
            }),
        );
        expansion = expansion.child(hpa);
    }

    let desired = autoscaling.as_ref().map_or(replicas, |a| a.min_replicas);
    let url = match host {
        Some(host) => format!("http://{host}"),
        None => {
            let namespace = request.composite.namespace().unwrap_or("default");
            format!("http://{name}.{namespace}.svc.cluster.local")
        }
    };
    // Kubernetes omits `availableReplicas` when it is zero.
    let ready = request
        .observed("apps/v1", "Deployment", &name)
        .map(|d| {
            d.as_value()
                .pointer("/status/availableReplicas")
                .and_then(|r| r.as_i64())
                .unwrap_or(0)
        })
        .is_some_and(|available| available >= desired);
    Ok(expansion
        .status(json!({"url": url, "replicas": desired}))
        .ready(ready))
}

/// The children are named after the composite, and a Service name must be a
/// DNS-1035 label: lowercase letters, digits and `-`, starting with a letter,
/// ending with a letter or digit, at most 63 characters.
fn check_service_name(name: &str) -> Result<()> {
    if tessera_sdk::is_dns1035_label(name, 63) {
        Ok(())
    } else {
        Err(Error::at(
            "metadata.name",
            format!(
                "metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', \
                 starting with a letter, at most 63 characters) to name the Service, got {name:?}"
            ),
        ))
    }
}

/// An Ingress host is a lowercase DNS name (RFC 1123 subdomain), optionally
/// with a leading `*.` wildcard; no scheme, port or path.
fn check_host(host: &str) -> Result<()> {
    let domain = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if host.len() <= 253 && domain.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(Error::at(
            "spec.host",
            format!(
                "spec.host must be a lowercase DNS name such as app.example.com \
                 (no scheme, port or path), got {host:?}"
            ),
        ))
    }
}

tessera_sdk::export_composition!(metadata = metadata, expand = expand);

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_sdk::{Context, Value};

    fn request(composite: Value, settings: Value) -> CompositionRequest {
        CompositionRequest {
            composite: Object::from_value("composite", composite).unwrap(),
            observed: vec![],
            settings,
            context: Context {
                caller: "test".into(),
                dry_run: true,
            },
        }
    }

    fn web_app(spec: Value) -> Value {
        json!({
            "apiVersion": API_VERSION,
            "kind": "WebApp",
            "metadata": {"name": "shop", "namespace": "prod", "labels": {"team": "web"}},
            "spec": spec,
        })
    }

    fn expand_spec(spec: Value) -> Result<Expansion> {
        expand(request(web_app(spec), json!({})))
    }

    fn kinds(expansion: &Expansion) -> Vec<&str> {
        expansion.children().iter().map(Object::kind).collect()
    }

    #[test]
    fn minimal_spec_gives_deployment_and_service() {
        let e = expand_spec(json!({"image": "nginx:1.27", "port": 8080})).unwrap();
        assert_eq!(kinds(&e), ["Deployment", "Service"]);

        let deployment = e.children()[0].as_value();
        assert_eq!(
            deployment,
            &json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "shop",
                    "namespace": "prod",
                    "labels": {
                        "team": "web",
                        "app.kubernetes.io/name": "web-app",
                        "app.kubernetes.io/instance": "shop",
                        "app.kubernetes.io/managed-by": "tessera",
                    },
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {
                        "app.kubernetes.io/name": "web-app",
                        "app.kubernetes.io/instance": "shop",
                    }},
                    "template": {
                        "metadata": {"labels": {
                            "app.kubernetes.io/name": "web-app",
                            "app.kubernetes.io/instance": "shop",
                        }},
                        "spec": {"containers": [{
                            "name": "app",
                            "image": "nginx:1.27",
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        }]},
                    },
                },
            })
        );

        let service = e.children()[1].as_value();
        assert_eq!(service["apiVersion"], "v1");
        assert_eq!(service["metadata"]["name"], "shop");
        assert_eq!(service["metadata"]["namespace"], "prod");
        assert_eq!(
            service["spec"],
            json!({
                "type": "ClusterIP",
                "selector": {
                    "app.kubernetes.io/name": "web-app",
                    "app.kubernetes.io/instance": "shop",
                },
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            })
        );

        assert_eq!(
            e.status_patch(),
            Some(&json!({"url": "http://shop.prod.svc.cluster.local", "replicas": 1}))
        );
        assert!(!e.is_ready());
    }

    #[test]
    fn replicas_and_default_namespace() {
        let mut composite = web_app(json!({"image": "nginx", "port": 80, "replicas": 3}));
        composite["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        let e = expand(request(composite, json!({}))).unwrap();
        assert_eq!(e.children()[0].as_value()["spec"]["replicas"], 3);
        assert_eq!(e.children()[0].namespace(), None);
        assert_eq!(
            e.status_patch(),
            Some(&json!({"url": "http://shop.default.svc.cluster.local", "replicas": 3}))
        );
    }

    #[test]
    fn host_adds_an_ingress() {
        let e = expand_spec(json!({"image": "nginx", "port": 8080, "host": "shop.example.com"}))
            .unwrap();
        assert_eq!(kinds(&e), ["Deployment", "Service", "Ingress"]);
        let ingress = e.children()[2].as_value();
        assert_eq!(ingress["apiVersion"], "networking.k8s.io/v1");
        assert_eq!(ingress["metadata"]["name"], "shop");
        assert_eq!(
            ingress["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "tessera"
        );
        assert_eq!(
            ingress["spec"],
            json!({"rules": [{
                "host": "shop.example.com",
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "shop", "port": {"number": 80}}},
                }]},
            }]})
        );
        assert_eq!(e.status_patch().unwrap()["url"], "http://shop.example.com");
    }

    #[test]
    fn settings_ingress_class_is_applied() {
        let composite =
            web_app(json!({"image": "nginx", "port": 8080, "host": "shop.example.com"}));
        let e = expand(request(composite, json!({"ingressClassName": "nginx"}))).unwrap();
        let spec = &e.children()[2].as_value()["spec"];
        assert_eq!(spec["ingressClassName"], "nginx");
        assert_eq!(spec["rules"][0]["host"], "shop.example.com");
    }

    #[test]
    fn settings_default_replicas_apply_only_when_absent() {
        let settings = json!({"defaultReplicas": 2});
        let composite = web_app(json!({"image": "nginx", "port": 8080}));
        let e = expand(request(composite, settings.clone())).unwrap();
        assert_eq!(e.children()[0].as_value()["spec"]["replicas"], 2);

        let composite = web_app(json!({"image": "nginx", "port": 8080, "replicas": 0}));
        let e = expand(request(composite, settings)).unwrap();
        assert_eq!(e.children()[0].as_value()["spec"]["replicas"], 0);
    }

    #[test]
    fn autoscaling_adds_an_hpa_and_drops_replicas() {
        let e = expand_spec(json!({
            "image": "nginx",
            "port": 8080,
            "replicas": 4,
            "autoscaling": {"minReplicas": 2, "maxReplicas": 10},
        }))
        .unwrap();
        assert_eq!(
            kinds(&e),
            ["Deployment", "Service", "HorizontalPodAutoscaler"]
        );
        assert!(e.children()[0].as_value()["spec"].get("replicas").is_none());
        let hpa = e.children()[2].as_value();
        assert_eq!(hpa["apiVersion"], "autoscaling/v2");
        assert_eq!(hpa["metadata"]["namespace"], "prod");
        assert_eq!(
            hpa["spec"],
            json!({
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"},
                "minReplicas": 2,
                "maxReplicas": 10,
                "metrics": [{
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }],
            })
        );
        assert_eq!(e.status_patch().unwrap()["replicas"], 2);
    }

    #[test]
    fn host_and_autoscaling_give_all_four_in_order() {
        let e = expand_spec(json!({
            "image": "nginx",
            "port": 8080,
            "host": "shop.example.com",
            "autoscaling": {"maxReplicas": 5, "targetCPUUtilization": 60},
        }))
        .unwrap();
        assert_eq!(
            kinds(&e),
            [
                "Deployment",
                "Service",
                "Ingress",
                "HorizontalPodAutoscaler"
            ]
        );
        let hpa = &e.children()[3].as_value()["spec"];
        assert_eq!(hpa["minReplicas"], 1);
        assert_eq!(
            hpa["metrics"][0]["resource"]["target"]["averageUtilization"],
            60
        );
    }

    #[test]
    fn max_replicas_below_min_is_refused() {
        let err = expand_spec(json!({
            "image": "nginx",
            "port": 8080,
            "autoscaling": {"minReplicas": 5, "maxReplicas": 3},
        }))
        .unwrap_err();
        assert_eq!(err.field(), Some("spec.autoscaling.maxReplicas"));
        assert_eq!(
            err.message(),
            "spec.autoscaling.maxReplicas must be at least spec.autoscaling.minReplicas (5), got 3"
        );
    }

    #[test]
    fn autoscaling_fields_are_checked() {
        let err =
            expand_spec(json!({"image": "nginx", "port": 8080, "autoscaling": {}})).unwrap_err();
        assert_eq!(err.message(), "spec.autoscaling.maxReplicas is required");
        let err = expand_spec(json!({
            "image": "nginx",
            "port": 8080,
            "autoscaling": {"maxReplicas": 3, "targetCPUUtilization": 150},
        }))
        .unwrap_err();
        assert_eq!(err.field(), Some("spec.autoscaling.targetCPUUtilization"));
        assert_eq!(
            err.message(),
            "spec.autoscaling.targetCPUUtilization must be between 1 and 100, got 150"
        );
        let err =
            expand_spec(json!({"image": "nginx", "port": 8080, "autoscaling": 3})).unwrap_err();
        assert_eq!(err.message(), "spec.autoscaling must be an object, got 3");
    }

    #[test]
    fn bad_port_is_refused() {
        let err = expand_spec(json!({"image": "nginx", "port": "http"})).unwrap_err();
        assert_eq!(err.field(), Some("spec.port"));
        assert_eq!(err.message(), r#"spec.port must be an integer, got "http""#);
        let err = expand_spec(json!({"image": "nginx", "port": 70000})).unwrap_err();
        assert_eq!(
            err.message(),
            "spec.port must be between 1 and 65535, got 70000"
        );
        let err = expand_spec(json!({"image": "nginx"})).unwrap_err();
        assert_eq!(err.message(), "spec.port is required");
    }

    #[test]
    fn bad_image_replicas_and_host_are_refused() {
        let err = expand_spec(json!({"port": 80})).unwrap_err();
        assert_eq!(err.message(), "spec.image is required");
        let err = expand_spec(json!({"image": "", "port": 80})).unwrap_err();
        assert_eq!(err.field(), Some("spec.image"));
        assert_eq!(err.message(), "spec.image must not be empty");
        let err = expand_spec(json!({"image": "nginx", "port": 80, "replicas": 101})).unwrap_err();
        assert_eq!(
            err.message(),
            "spec.replicas must be between 0 and 100, got 101"
        );
        let err = expand_spec(json!({"image": "nginx", "port": 80, "host": "https://x.io/"}))
            .unwrap_err();
        assert_eq!(err.field(), Some("spec.host"));
    }

    #[test]
    fn name_must_suit_a_service() {
        let mut composite = web_app(json!({"image": "nginx", "port": 80}));
        composite["metadata"]["name"] = json!("1shop.v2");
        let err = expand(request(composite, json!({}))).unwrap_err();
        assert_eq!(err.field(), Some("metadata.name"));
    }

    #[test]
    fn ready_when_enough_replicas_are_available() {
        let spec = json!({"image": "nginx", "port": 8080, "replicas": 2});
        let observed = |available: Option<i64>| {
            let mut status = json!({});
            if let Some(n) = available {
                status["availableReplicas"] = json!(n);
            }
            Object::from_value(
                "observed",
                json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": "shop", "namespace": "prod"},
                    "status": status,
                }),
            )
            .unwrap()
        };
        for (available, ready) in [
            (None, false),
            (Some(1), false),
            (Some(2), true),
            (Some(3), true),
        ] {
            let mut req = request(web_app(spec.clone()), json!({}));
            req.observed.push(observed(available));
            assert_eq!(expand(req).unwrap().is_ready(), ready, "{available:?}");
        }

        // Scaled to zero: ready once the Deployment exists.
        let mut req = request(
            web_app(json!({"image": "nginx", "port": 8080, "replicas": 0})),
            json!({}),
        );
        assert!(!expand(req.clone()).unwrap().is_ready());
        req.observed.push(observed(None));
        assert!(expand(req).unwrap().is_ready());
    }

    #[test]
    fn metadata_describes_the_plugin() {
        let meta = metadata();
        let expected = Metadata::new("web-app", env!("CARGO_PKG_VERSION"))
            .description(env!("CARGO_PKG_DESCRIPTION"))
            .handles(API_VERSION, "WebApp");
        assert_eq!(
            meta,
            expected.settings_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "ingressClassName": {"type": "string", "minLength": 1},
                    "defaultReplicas": {"type": "integer", "minimum": 0, "maximum": 100}
                }
            }))
        );
    }
}
