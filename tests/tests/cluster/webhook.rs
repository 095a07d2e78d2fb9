//! The admission webhook end to end: a ValidatingWebhookConfiguration
//! pointing at the webhook (URL + caBundle), objects created through the
//! API server, good ones admitted, bad ones refused with the policy's
//! message; audit mode, fail-closed and fail-open.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;
use tessera_controller::WebhookOptions;
use tessera_tests::plugins;

use crate::fixture::World;
use crate::harness::{apply_yaml, eventually};

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        data: Some([("key".to_string(), "value".to_string())].into()),
        ..ConfigMap::default()
    }
}

/// The API server's message when it refused `object`, or None if admitted.
async fn create(api: &Api<ConfigMap>, object: &ConfigMap) -> Option<String> {
    match api.create(&PostParams::default(), object).await {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.message),
        Err(other) => panic!("creating a ConfigMap: {other}"),
    }
}

#[tokio::test]
async fn webhook_admits_and_refuses_through_the_api_server() {
    let world = World::new("webhook").await;
    let (cert, key) = world.control_plane.serving_cert();
    let mut options = world.options();
    options.controller = false;
    options.webhook = Some(WebhookOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
        budget: Duration::from_secs(3),
        policy_deadline: Duration::from_millis(500),
    });
    let running = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the webhook");
    let address = running.webhook_addr.expect("webhook address");

    // Policies: labels enforced on ConfigMaps named enforce-*... by kind, so
    // each mode gets its own namespace label instead.
    let rules = json!([{"apiGroups": [""], "kinds": ["ConfigMap"]}]);
    world
        .apply_policy(
            "webhook-require-team",
            json!({
                "plugin": {"path": plugins::REQUIRE_LABELS},
                "settings": {"requiredLabels": ["team"]},
                "match": {"rules": rules, "namespaceSelector": {"matchLabels": {"tessera.dev/test": "webhook"}}},
                "mode": "Enforce",
            }),
        )
        .await;
    world
        .apply_policy(
            "webhook-audit-env",
            json!({
                "plugin": {"path": plugins::REQUIRE_LABELS},
                "settings": {"requiredLabels": ["env"]},
                "match": {"rules": rules},
                "mode": "Audit",
            }),
        )
        .await;
    // Labels the namespace so the enforcing policy's selector matches it.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(world.client.clone());
    namespaces
        .patch(
            &world.namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"labels": {"tessera.dev/test": "webhook"}}}),
            ),
        )
        .await
        .expect("labelling the namespace");

    let ca_bundle = base64(world.control_plane.ca_pem().as_bytes());
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": format!("tessera-{}", world.namespace)},
        "webhooks": [{
            "name": "policies.tessera.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "failurePolicy": "Fail",
            "clientConfig": {"url": format!("https://{address}/validate"), "caBundle": ca_bundle},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": world.namespace}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"],
                "operations": ["CREATE", "UPDATE"]}],
        }],
    });
    apply_yaml(&world.client, &configuration.to_string(), "tessera-tests")
        .await
        .expect("registering the webhook");

    let config_maps: Api<ConfigMap> = Api::namespaced(world.client.clone(), &world.namespace);
    // The API server picks the configuration up within a moment.
    let refused = eventually("the webhook to refuse", Duration::from_secs(30), || async {
        let name = format!("bad-{}", rand_suffix());
        create(&config_maps, &config_map(&name, &[])).await
    })
    .await;
    assert!(
        refused.contains("policy webhook-require-team denied ConfigMap"),
        "{refused}"
    );
    assert!(refused.contains("team"), "{refused}");

    // A good one is admitted, even though the audit policy finds a problem.
    assert_eq!(
        create(&config_maps, &config_map("good", &[("team", "payments")])).await,
        None
    );
    assert!(
        config_maps
            .get_opt("good")
            .await
            .expect("reading")
            .is_some()
    );

    // The audit policy's finding comes back as a warning (kubectl prints
    // those); asked directly, as the API server asks.
    let answer = post_review(&world, address, "audited", &[("team", "payments")]).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let warnings = answer["response"]["warnings"].to_string();
    assert!(
        warnings.contains("(audit) policy webhook-audit-env denied"),
        "{answer}"
    );
    assert!(warnings.contains("env"), "{answer}");
    let answer = post_review(&world, address, "unlabelled", &[]).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert_eq!(answer["response"]["status"]["code"], 403, "{answer}");

    // Fail closed: a policy that loops past its deadline refuses.
    world
        .apply_policy(
            "webhook-broken",
            json!({
                "plugin": {"path": plugins::FAULTY_POLICY},
                "settings": {"mode": "loop"},
                "limits": {"deadline": "200ms"},
                "match": {"rules": rules},
                "failurePolicy": "Fail",
            }),
        )
        .await;
    let refused = eventually(
        "the broken policy to be loaded",
        Duration::from_secs(30),
        || async {
            let name = format!("closed-{}", rand_suffix());
            let message = create(&config_maps, &config_map(&name, &[("team", "payments")])).await?;
            message.contains("webhook-broken").then_some(message)
        },
    )
    .await;
    assert!(
        refused.contains("policy webhook-broken failed"),
        "{refused}"
    );
    assert!(refused.contains("deadline"), "{refused}");

    // Fail open: the same plugin with failurePolicy Ignore lets it through.
    world
        .apply_policy(
            "webhook-broken",
            json!({
                "plugin": {"path": plugins::FAULTY_POLICY},
                "settings": {"mode": "loop"},
                "limits": {"deadline": "200ms"},
                "match": {"rules": rules},
                "failurePolicy": "Ignore",
            }),
        )
        .await;
    eventually("fail-open to admit", Duration::from_secs(30), || async {
        let name = format!("open-{}", rand_suffix());
        create(&config_maps, &config_map(&name, &[("team", "payments")]))
            .await
            .is_none()
            .then_some(())
    })
    .await;

    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = Api::all(world.client.clone());
    configurations
        .delete(&format!("tessera-{}", world.namespace), &Default::default())
        .await
        .expect("removing the webhook configuration");
    running.shutdown().await.expect("clean shutdown");
}

/// Sends an AdmissionReview for a ConfigMap straight to the webhook over
/// HTTPS (trusting the test CA) and returns the answer.
async fn post_review(
    world: &World,
    address: std::net::SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
) -> serde_json::Value {
    post_review_of(world, address, "ConfigMap", name, labels).await
}

/// An HTTPS client that trusts the test CA.
fn https_client(world: &World) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(world.control_plane.ca_pem().as_bytes()).expect("CA");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .expect("HTTPS client")
}

/// Like [`post_review`], for an object of the core group's `kind`.
async fn post_review_of(
    world: &World,
    address: std::net::SocketAddr,
    kind: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> serde_json::Value {
    let resource = format!("{}s", kind.to_lowercase());
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0d3e0b3c-review",
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": resource},
            "namespace": world.namespace,
            "name": name,
            "operation": "CREATE",
            "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": kind,
                "metadata": {"name": name, "namespace": world.namespace, "labels": labels}},
        },
    });
    let response = https_client(world)
        .post(format!("https://{address}/validate"))
        .header("content-type", "application/json")
        .body(review.to_string())
        .send()
        .await
        .expect("posting the review");
    assert!(response.status().is_success(), "{}", response.status());
    let answer: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON answer");
    assert_eq!(answer["response"]["uid"], "0d3e0b3c-review", "{answer}");
    answer
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// Standard base64, as the API server wants `caBundle` (k8s-openapi's
/// `ByteString` serializes that way).
fn base64(bytes: &[u8]) -> String {
    match serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec())) {
        Ok(serde_json::Value::String(text)) => text,
        other => panic!("ByteString serializes as a string: {other:?}"),
    }
}

/// Starts only the webhook for `world`, with `budget` for all policies of a
/// request and `policy_deadline` as the cap on each policy's deadline; on
/// `runtime` when given, else on the test's standard one.
async fn start_webhook(
    world: &World,
    budget: Duration,
    policy_deadline: Duration,
    runtime: Option<tessera_runtime::Runtime>,
) -> (tessera_controller::Running, std::net::SocketAddr) {
    let (cert, key) = world.control_plane.serving_cert();
    let mut options = world.options();
    if let Some(runtime) = runtime {
        options.runtime = runtime;
    }
    options.controller = false;
    options.webhook = Some(WebhookOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        cert_pem: cert.into_bytes(),
        key_pem: key.into_bytes(),
        budget,
        policy_deadline,
    });
    let running = tessera_controller::start(world.client.clone(), options)
        .await
        .expect("starting the webhook");
    let address = running.webhook_addr.expect("webhook address");
    (running, address)
}

/// A policy of faulty-policy in `mode`, for objects of the core group's
/// `kind`, with `deadline` and failurePolicy `failure`.
fn faulty_policy(mode: &str, kind: &str, deadline: &str, failure: &str) -> serde_json::Value {
    json!({
        "plugin": {"path": plugins::FAULTY_POLICY},
        "settings": {"mode": mode},
        "limits": {"deadline": deadline},
        "match": {"rules": [{"apiGroups": [""], "kinds": [kind]}]},
        "failurePolicy": failure,
    })
}

/// The warnings of a webhook answer, as strings.
fn warnings(answer: &serde_json::Value) -> Vec<String> {
    answer["response"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Three policies that each spin to a 1.9 s deadline run at the same time:
/// the webhook answers within its 3 s budget (one after another they would
/// take 5.7 s), with each policy's own deadline crash as its warning.
#[tokio::test]
async fn matching_policies_run_in_parallel_within_the_budget() {
    let world = World::new("webhook-parallel").await;
    let (running, address) =
        start_webhook(&world, Duration::from_secs(3), Duration::from_secs(2), None).await;
    let names: Vec<String> = (0..3).map(|i| format!("parallel-spin-{i}")).collect();
    for name in &names {
        world
            .apply_policy(name, faulty_policy("loop", "ConfigMap", "1900ms", "Ignore"))
            .await;
    }
    let loaded = |answer: &serde_json::Value| {
        let warnings = warnings(answer);
        names
            .iter()
            .all(|name| warnings.iter().any(|w| w.contains(name.as_str())))
    };
    eventually(
        "the three policies to be loaded",
        Duration::from_secs(60),
        || async {
            let answer = post_review(&world, address, "warm-up", &[]).await;
            loaded(&answer).then_some(())
        },
    )
    .await;

    let started = Instant::now();
    let answer = post_review(&world, address, "timed", &[]).await;
    let took = started.elapsed();
    eprintln!("three 1.9 s policies answered in {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "three 1.9 s policies took {took:?}, over the 3 s budget: {answer}"
    );
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let warnings = warnings(&answer);
    assert_eq!(warnings.len(), 3, "{answer}");
    for name in &names {
        // Each ran to its own deadline: none was cut off by the budget.
        assert!(
            warnings.iter().any(|w| w.starts_with(&format!(
                "policy {name} failed on ConfigMap {}/timed (failurePolicy Ignore): ",
                world.namespace
            )) && w.contains("ran past its deadline")),
            "{name}: {warnings:?}"
        );
    }
    running.shutdown().await.expect("clean shutdown");
}

/// While eight policies loop to their deadline on every Secret the webhook
/// reviews, its health check still answers within 100 ms and a good
/// ConfigMap is admitted through the API server (and a bad one refused):
/// guest code holds none of the webhook's async workers.
#[tokio::test]
async fn looping_policies_starve_neither_health_checks_nor_other_requests() {
    let world = World::new("webhook-busy").await;
    let (running, address) =
        start_webhook(&world, Duration::from_secs(3), Duration::from_secs(2), None).await;
    world
        .apply_policy(
            "busy-require-team",
            json!({
                "plugin": {"path": plugins::REQUIRE_LABELS},
                "settings": {"requiredLabels": ["team"]},
                "match": {"rules": [{"apiGroups": [""], "kinds": ["ConfigMap"]}]},
                "mode": "Enforce",
            }),
        )
        .await;
    let loopers: Vec<String> = (0..8).map(|i| format!("busy-loop-{i}")).collect();
    for name in &loopers {
        world
            .apply_policy(name, faulty_policy("loop", "Secret", "2s", "Ignore"))
            .await;
    }
    let ca_bundle = base64(world.control_plane.ca_pem().as_bytes());
    let configuration_name = format!("tessera-{}", world.namespace);
    let configuration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": configuration_name},
        "webhooks": [{
            "name": "policies.tessera.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "timeoutSeconds": 10,
            "failurePolicy": "Fail",
            "clientConfig": {"url": format!("https://{address}/validate"), "caBundle": ca_bundle},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": world.namespace}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"],
                "operations": ["CREATE", "UPDATE"]}],
        }],
    });
    apply_yaml(&world.client, &configuration.to_string(), "tessera-tests")
        .await
        .expect("registering the webhook");
    let config_maps: Api<ConfigMap> = Api::namespaced(world.client.clone(), &world.namespace);
    eventually("the webhook to refuse", Duration::from_secs(30), || async {
        let name = format!("busy-bad-{}", rand_suffix());
        create(&config_maps, &config_map(&name, &[])).await
    })
    .await;
    let all_looped = |answer: &serde_json::Value| {
        let warnings = warnings(answer);
        answer["response"]["allowed"] == true
            && loopers.iter().all(|name| {
                warnings
                    .iter()
                    .any(|w| w.contains(name.as_str()) && w.contains("ran past its deadline"))
            })
    };
    eventually(
        "the eight loopers to be loaded",
        Duration::from_secs(60),
        || async {
            let answer = post_review_of(&world, address, "Secret", "warm-up", &[]).await;
            all_looped(&answer).then_some(())
        },
    )
    .await;

    // Secrets under review, one after another, for the whole measurement:
    // eight guests spinning at every moment of it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (world, stop) = (&world, stop.clone());
        async move {
            let mut answers = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("busy-secret-{}", rand_suffix());
                answers.push(post_review_of(world, address, "Secret", &name, &[]).await);
            }
            answers
        }
    };
    let measure = async {
        // Let the first review start its eight guests.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let client = https_client(&world);
        let mut slowest = Duration::ZERO;
        for _ in 0..10 {
            let started = Instant::now();
            let response = client
                .get(format!("https://{address}/healthz"))
                .send()
                .await
                .expect("GET /healthz");
            let body = response.text().await.expect("a body");
            slowest = slowest.max(started.elapsed());
            assert_eq!(body, "ok");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let good = create(
            &config_maps,
            &config_map("busy-good", &[("team", "payments")]),
        )
        .await;
        let bad = create(&config_maps, &config_map("busy-unlabelled", &[])).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (slowest, good, bad)
    };
    let (answers, (slowest, good, bad)) = tokio::join!(load, measure);
    eprintln!(
        "slowest /healthz {slowest:?} over {} Secret reviews of eight loopers",
        answers.len()
    );
    assert!(
        slowest < Duration::from_millis(100),
        "/healthz took {slowest:?} while eight policies looped"
    );
    assert_eq!(good, None, "the good ConfigMap is admitted");
    let bad = bad.expect("the unlabelled ConfigMap is refused");
    assert!(bad.contains("policy busy-require-team denied"), "{bad}");
    assert!(
        !answers.is_empty() && answers.iter().all(all_looped),
        "every Secret review ran the eight loopers to their deadline: {answers:?}"
    );

    let configurations: Api<
        k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
    > = Api::all(world.client.clone());
    configurations
        .delete(&configuration_name, &Default::default())
        .await
        .expect("removing the webhook configuration");
    running.shutdown().await.expect("clean shutdown");
}

/// A policy the budget cuts off stops then, not at its own (later)
/// deadline: with a single guest thread, the next request's policy gets
/// that thread and answers within the budget. (Left running, the looping
/// guest would hold the thread for 10 s, and the next request would end
/// with the budget, its policy not done.)
#[tokio::test]
async fn a_policy_cut_off_by_the_budget_stops_with_it() {
    let world = World::new("webhook-cut-off").await;
    let runtime = tessera_runtime::Runtime::builder()
        .cache_dir(crate::cache_dir())
        .pooling(16)
        .guest_threads(1)
        .build()
        .expect("runtime");
    let (running, address) = start_webhook(
        &world,
        Duration::from_secs(1),
        Duration::from_secs(10),
        Some(runtime),
    )
    .await;
    world
        .apply_policy(
            "cut-off-loop",
            faulty_policy("loop", "Secret", "10s", "Ignore"),
        )
        .await;
    world
        .apply_policy(
            "cut-off-deny",
            faulty_policy("deny", "ConfigMap", "1s", "Fail"),
        )
        .await;
    let cut_off = |answer: &serde_json::Value| {
        answer["response"]["allowed"] == true
            && warnings(answer).iter().any(|w| {
                w.contains("policy cut-off-loop failed on Secret")
                    && w.contains("did not answer within the webhook's budget of 1s")
            })
    };
    eventually(
        "the looping policy to be loaded",
        Duration::from_secs(60),
        || async {
            let answer = post_review_of(&world, address, "Secret", "warm-up", &[]).await;
            cut_off(&answer).then_some(())
        },
    )
    .await;
    let denied = |answer: &serde_json::Value| {
        answer["response"]["allowed"] == false
            && answer["response"]["status"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("policy cut-off-deny denied ConfigMap"))
    };
    eventually(
        "the denying policy to be loaded",
        Duration::from_secs(60),
        || async {
            let answer = post_review(&world, address, "warm-up", &[]).await;
            denied(&answer).then_some(())
        },
    )
    .await;

    for round in 0..3 {
        let answer = post_review_of(&world, address, "Secret", &format!("cut-{round}"), &[]).await;
        assert!(cut_off(&answer), "{answer}");
        // Right after the cut-off: the denying policy needs the one thread.
        let answer = post_review(&world, address, &format!("next-{round}"), &[]).await;
        assert!(denied(&answer), "round {round}: {answer}");
        assert_eq!(
            answer["response"]["status"]["message"],
            format!(
                "policy cut-off-deny denied ConfigMap {}/next-{round}: denied on purpose",
                world.namespace
            ),
            "{answer}"
        );
    }
    running.shutdown().await.expect("clean shutdown");
}
