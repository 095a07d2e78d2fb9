//! The validating admission webhook: HTTPS, `AdmissionReview` v1 on
//! `POST /validate`, every matching `Policy` run concurrently under one
//! budget well under the API server's webhook timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{ObjectRef, Store};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tessera_admission::{AdmissionRequest, Answer};
use tessera_runtime::{Operation, Review, UserInfo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::metrics;
use crate::policies::{Judgement, PolicyReads, PolicyStore, failed, judge, matches, one_line};

/// The largest AdmissionReview body read (the API server's own limit on an
/// object is 3 MiB; a review carries two).
const MAX_BODY: usize = 8 << 20;

/// What the webhook needs to answer.
#[derive(Debug)]
pub struct Webhook {
    /// Loaded policies.
    pub policies: Arc<PolicyStore>,
    /// Namespaces, for namespace selectors.
    pub namespaces: Store<Namespace>,
    /// Time for all matching policies together.
    pub budget: Duration,
    /// The read caches policies with `reads` read from (the controller's,
    /// shared); none: such policies fail, by their `failurePolicy`.
    pub reads: Option<Arc<crate::compose::Shared>>,
}

/// How much of the budget is kept back from waiting for read caches, so
/// that a policy whose cache is not ready says so before the budget ends.
const READS_MARGIN: Duration = Duration::from_millis(250);

/// A TLS server configuration from PEM files (certificate chain, key).
pub fn tls_config(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("webhook certificate: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("webhook certificate: no certificate in the PEM");
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| anyhow::anyhow!("webhook key: {e}"))?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| anyhow::anyhow!("webhook certificate and key: {e}"))?;
    Ok(Arc::new(config))
}

/// Serves until `cancel`, then stops accepting and lets open requests end.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    webhook: Arc<Webhook>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a webhook connection");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let webhook = webhook.clone();
        let cancel = cancel.clone();
        connections.spawn(async move {
            if let Err(error) = connection(stream, acceptor, webhook, cancel).await {
                tracing::debug!(%peer, %error, "webhook connection");
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), connections.wait()).await;
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    webhook: Arc<Webhook>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await??;
    let service = hyper::service::service_fn(move |request| {
        let webhook = webhook.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(&webhook, request).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(tls), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => result.map_err(|e| anyhow::anyhow!(e))?,
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await.map_err(|e| anyhow::anyhow!(e))?;
        }
    }
    Ok(())
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.into())));
    *response.status_mut() = status;
    response
}

/// The status answering a body that could not be read: 413 Payload Too
/// Large when it is over [`MAX_BODY`], 400 Bad Request for any other
/// failure (the client hung up, bad chunked encoding, I/O).
fn body_error_status(error: &(dyn std::error::Error + 'static)) -> StatusCode {
    // `Limited` reports its limit as a `LengthLimitError`; it passes the
    // body's own errors on boxed, so look down the chain of sources too.
    let mut error = Some(error);
    while let Some(e) = error {
        if e.is::<LengthLimitError>() {
            return StatusCode::PAYLOAD_TOO_LARGE;
        }
        error = e.source();
    }
    StatusCode::BAD_REQUEST
}

/// Answers one request. Generic over the body so that tests can drive it
/// with bodies that fail; the server hands it [`hyper::body::Incoming`].
async fn handle<B>(webhook: &Webhook, request: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz" | "/readyz") => text(StatusCode::OK, "ok"),
        (&Method::POST, "/validate") => {
            let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(error) => {
                    metrics::webhook_bad_request();
                    return text(
                        body_error_status(&*error),
                        format!("reading the body: {}", one_line(&error.to_string())),
                    );
                }
            };
            let admission = match tessera_admission::decode(&body) {
                Ok(admission) => admission,
                Err(error) => {
                    metrics::webhook_bad_request();
                    return text(StatusCode::BAD_REQUEST, format!("AdmissionReview: {error}"));
                }
            };
            let answer = metrics::webhook_reviewed(webhook.review(&admission)).await;
            let mut response = Response::new(Full::new(Bytes::from(answer.to_json())));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                "application/json".parse().expect("a header value"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

impl Webhook {
    /// Runs every policy matching `request`, all at once, and combines their
    /// answers: any deny denies (all deny messages, `; `-separated); warnings
    /// are passed on. A policy that has not answered when the budget runs
    /// out is stopped and counts as failed, by its `failurePolicy`: `Fail`
    /// denies naming it, `Ignore` allows with a warning naming it; the
    /// answers of the policies that did answer still count.
    pub async fn review(&self, request: &AdmissionRequest) -> Answer {
        // The admission decoder and the runtime share the type
        // (`tessera-types`).
        let operation: Operation = request.operation;
        let labels: Option<BTreeMap<String, String>> = if request.namespace.is_empty() {
            None
        } else {
            Some(
                self.namespaces
                    .get(&ObjectRef::new(&request.namespace))
                    .and_then(|ns| ns.metadata.labels.clone())
                    .unwrap_or_default(),
            )
        };
        let matched: Vec<_> = self
            .policies
            .all()
            .into_iter()
            .filter(|p| {
                matches(
                    &p.spec,
                    &request.kind.group,
                    &request.kind.kind,
                    operation,
                    labels.as_ref(),
                )
            })
            .collect();
        if matched.is_empty() {
            return Answer::allow(&request.uid);
        }
        let review = Review {
            operation,
            object: request.object.clone(),
            old_object: request.old_object.clone(),
            user_info: UserInfo {
                username: request.user_info.username.clone(),
                uid: request.user_info.uid.clone(),
                groups: request.user_info.groups.clone(),
            },
        };
        let subject = if request.namespace.is_empty() {
            format!("{} {}", request.kind.kind, request.name)
        } else {
            format!(
                "{} {}/{}",
                request.kind.kind, request.namespace, request.name
            )
        };
        // Each policy's guest code runs on its own thread (the runtime's
        // guest threads), so these really run in parallel; this task only
        // waits. Whatever has not answered when the budget runs out is
        // dropped, which stops its guest at the next epoch tick.
        let started = tokio::time::Instant::now();
        let budget_ends = tokio::time::sleep_until(started + self.budget);
        tokio::pin!(budget_ends);
        // Reads: the reviewed object's namespace is home; a cache not ready
        // is waited for within the budget only.
        let reads = self.reads.as_ref().map(|shared| PolicyReads {
            shared,
            home: (!request.namespace.is_empty()).then_some(request.namespace.as_str()),
            deadline: started + self.budget.saturating_sub(READS_MARGIN),
        });
        let mut pending: futures::stream::FuturesUnordered<_> = matched
            .iter()
            .enumerate()
            .map(|(index, policy)| {
                let (review, subject) = (&review, &subject);
                let judged = judge(policy, review, subject, reads.as_ref());
                async move { (index, metrics::policy_judged(&policy.name, judged).await) }
            })
            .collect();
        let mut judgements: Vec<Option<Judgement>> = vec![None; matched.len()];
        loop {
            tokio::select! {
                biased;
                next = futures::StreamExt::next(&mut pending) => match next {
                    Some((index, judgement)) => judgements[index] = Some(judgement),
                    None => break,
                },
                () = &mut budget_ends => break,
            }
        }
        drop(pending);
        let judgements = judgements
            .into_iter()
            .zip(&matched)
            .map(|(judgement, policy)| {
                judgement.unwrap_or_else(|| {
                    failed(
                        policy,
                        &subject,
                        &format!(
                            "did not answer within the webhook's budget of {:?}",
                            self.budget
                        ),
                    )
                })
            })
            .collect();
        combine(&request.uid, judgements)
    }
}

/// The answer of the judgements of every matching policy: any deny denies
/// (all deny messages, `; `-separated); warnings are passed on. The API
/// server shows both to the user's terminal (`kubectl`), and both quote
/// what plugins said: each goes through `tessera_types::text::one_line`.
fn combine(uid: &str, judgements: Vec<Judgement>) -> Answer {
    let mut denials = Vec::new();
    let mut warnings = Vec::new();
    for judgement in judgements {
        match judgement {
            Judgement::Allow { warnings: w } => warnings.extend(w),
            Judgement::Deny { message, .. } => denials.push(one_line(&message)),
        }
    }
    let mut answer = if denials.is_empty() {
        Answer::allow(uid)
    } else {
        Answer::deny(uid, denials.join("; "))
    };
    for warning in warnings {
        answer = answer.warn(one_line(&warning));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    use http_body_util::StreamBody;
    use hyper::body::Frame;

    /// A webhook with no policy and no namespace.
    fn webhook() -> Webhook {
        Webhook {
            policies: Arc::new(PolicyStore::new(Duration::from_secs(1))),
            namespaces: kube::runtime::reflector::store::Writer::<Namespace>::default().as_reader(),
            budget: Duration::from_secs(1),
            reads: None,
        }
    }

    /// `POST /validate` with `body`: the status and the body of the answer.
    async fn post<B>(body: B) -> (StatusCode, String)
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request = Request::post("/validate").body(body).expect("a request");
        let response = handle(&webhook(), request).await;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a full body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// The error `Limited` reports past its limit (`LengthLimitError` is
    /// `non_exhaustive`: only `Limited` makes one).
    fn over_the_limit() -> Box<dyn std::error::Error + Send + Sync> {
        let body = Limited::new(Full::new(Bytes::from_static(b"ab")), 1);
        futures::executor::block_on(body.collect()).expect_err("over the limit")
    }

    #[test]
    fn only_an_oversized_body_is_too_large() {
        let over = over_the_limit();
        assert!(over.is::<LengthLimitError>());
        assert_eq!(body_error_status(&*over), StatusCode::PAYLOAD_TOO_LARGE);
        let hung_up = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(body_error_status(&hung_up), StatusCode::BAD_REQUEST);
        // As `Limited` passes on the body's own errors: boxed.
        let boxed: Box<dyn std::error::Error + Send + Sync> = hung_up.into();
        assert_eq!(body_error_status(&*boxed), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_body_that_fails_to_read_is_a_bad_request() {
        let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"{\"apiVersion\":"))),
            Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the client hung up\nmid-body",
            )),
        ];
        let (status, body) = post(StreamBody::new(futures::stream::iter(chunks))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body, "reading the body: the client hung up | mid-body");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_too_large() {
        let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from(vec![b' '; MAX_BODY]))),
            Ok(Frame::data(Bytes::from_static(b" "))),
        ];
        let (status, body) = post(StreamBody::new(futures::stream::iter(chunks))).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert_eq!(body, "reading the body: length limit exceeded");
        // At the limit exactly it is read (and then is no AdmissionReview).
        let (status, _) = post(Full::new(Bytes::from(vec![b' '; MAX_BODY]))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn answers_carry_no_control_character_of_a_plugin() {
        let escapes = "\x1b]0;pwned\x07\x1b[2J\u{9b}31m\x7f\r\ndenied: forged";
        let answer = combine(
            "u",
            vec![
                Judgement::Allow {
                    warnings: vec![format!("policy a: {escapes}")],
                },
                Judgement::Deny {
                    message: format!("policy b denied ConfigMap t/c: {escapes}"),
                    failed: false,
                },
            ],
        );
        let json = answer.to_json();
        // serde_json escapes control characters; none may be there to escape.
        assert!(!json.contains("\\u001b") && !json.contains("\\r"), "{json}");
        assert!(!json.chars().any(char::is_control), "{json:?}");
        assert_eq!(
            answer,
            Answer::deny(
                "u",
                "policy b denied ConfigMap t/c: \u{fffd}]0;pwned\u{fffd}\u{fffd}[2J\u{fffd}31m\u{fffd} | denied: forged"
            )
            .warn("policy a: \u{fffd}]0;pwned\u{fffd}\u{fffd}[2J\u{fffd}31m\u{fffd} | denied: forged")
        );
        // Well-formed answers are unchanged.
        assert_eq!(
            combine(
                "u",
                vec![Judgement::Allow {
                    warnings: vec!["policy a: careful".into()]
                }]
            ),
            Answer::allow("u").warn("policy a: careful")
        );
    }
}
