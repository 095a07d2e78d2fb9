//! A composition plugin that misbehaves on request, for the runtime's error
//! paths and the sandbox's guarantees. `settings.mode` picks the behaviour;
//! see [`expand`] and the hostile-case table in `SECURITY.md`.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

use tessera_sdk::{
    CompositionRequest, Error, Expansion, Finding, Metadata, Object, Result, host, json,
};

/// The plugin's metadata.
pub fn metadata() -> Metadata {
    Metadata::new("faulty", env!("CARGO_PKG_VERSION"))
        .description(env!("CARGO_PKG_DESCRIPTION"))
        .handles("test.tessera.dev/v1", "Faulty")
        .settings_schema(json!({
            "type": "object",
            "properties": {"mode": {"type": "string"}},
            "required": ["mode"]
        }))
}

fn config_map(request: &CompositionRequest, name: &str) -> Object {
    request
        .child("v1", "ConfigMap", name)
        .with("data", json!({"key": "value"}))
}

/// Misbehaves as `settings.mode` says.
pub fn expand(request: CompositionRequest) -> Result<Expansion> {
    let mode = request.settings().str("mode")?.to_string();
    let ok = Expansion::new().child(config_map(&request, "ok"));
    match mode.as_str() {
        "ok" => Ok(ok),
        "refuse" => Err(Error::at(
            "spec.size",
            "spec.size is too large for this test",
        )),
        "panic" => panic!("faulty plugin panicked on purpose"),
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "oom" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "exit" => std::process::exit(3),
        "abort" => std::process::abort(),
        "sleep-forever" => {
            // Parks in a WASI poll: no guest code runs, so only the host's
            // wall-clock bound can end the call.
            std::thread::sleep(std::time::Duration::from_secs(u64::MAX / 4));
            Ok(ok)
        }
        "unreachable" => unreachable_instruction(),
        "recurse" => Ok(ok.finding(Finding::info(format!("depth {}", recurse(0))))),
        "allocate" => {
            // Allocates and touches `settings.bytes` bytes, then succeeds.
            let bytes = request.settings().int("bytes")? as usize;
            let block = vec![7u8; bytes];
            let sum: u64 = block.iter().step_by(4096).map(|b| u64::from(*b)).sum();
            Ok(ok.finding(Finding::info(format!("touched {} pages", sum / 7))))
        }
        "arena-churn" => {
            // Works the allocator past its first region within one call: a
            // vector grown byte by byte to 2 MiB (in place while it is the
            // most recent block), strings held while others come and go,
            // then checks that every byte is still what was written. Reports
            // the address of its first block, which stays the same on every
            // call to a reused instance when the SDK's arena rewinds.
            let first = Box::new(0x5eed_u64);
            let first_address = std::ptr::from_ref::<u64>(&first) as usize;
            let held: Vec<String> = (0..2000).map(|i| format!("held {i}")).collect();
            let mut grown: Vec<u8> = Vec::new();
            for i in 0..(2usize << 20) {
                grown.push((i % 251) as u8);
                if i % 4096 == 0 {
                    drop(format!("passing {i}"));
                }
            }
            let intact = *first == 0x5eed
                && grown.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8)
                && held
                    .iter()
                    .enumerate()
                    .all(|(i, s)| *s == format!("held {i}"));
            Ok(
                Expansion::new().child(request.child("v1", "ConfigMap", "churn").with(
                    "data",
                    json!({"first": first_address.to_string(), "intact": intact.to_string()}),
                )),
            )
        }
        "loop-in-host-call" => {
            // Spins between host calls: the deadline must still hold while
            // most of the time is spent preparing and making host calls.
            let mut i = 0u64;
            loop {
                i = i.wrapping_add(1);
                let message = format!("iteration {i}");
                host::debug(&message);
                let _ = host::list_resources("v1", "Secret", None, None);
            }
        }
        "wasi-escape" => Ok(Expansion::new().child(
            request
                .child("v1", "ConfigMap", "escape-attempts")
                .with("data", escape_attempts()),
        )),
        "no-name" => Ok(ok.child(Object::from_value(
            "c",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
        )?)),
        "no-kind" => Ok(ok.child(Object::from_value(
            "c",
            json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
        )?)),
        "no-api-version" => Ok(ok.child(Object::from_value(
            "c",
            json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
        )?)),
        "duplicate" => Ok(ok.child(config_map(&request, "ok"))),
        "other-namespace" => {
            Ok(ok.child(config_map(&request, "elsewhere").with_namespace("kube-system")))
        }
        "escapes" => {
            // Terminal escapes (set the window title, clear the screen) and a
            // forged line in everything a plugin says: the host prints none
            // of them raw.
            println!("out{ESCAPES}\nforged: stdout line");
            eprintln!("err{ESCAPES}");
            host::info(&format!("log{ESCAPES}\ndigest: sha256:forged"));
            Ok(ok
                .finding(
                    Finding::warning(format!("message{ESCAPES}\ndenied: forged"))
                        .at(format!("spec{ESCAPES}")),
                )
                .condition(tessera_sdk::Condition {
                    type_: format!("Type{ESCAPES}"),
                    status: tessera_sdk::ConditionStatus::False,
                    reason: format!("Reason{ESCAPES}"),
                    message: format!("condition{ESCAPES}\nforged"),
                }))
        }
        "escapes-child" => {
            // A child whose name carries escapes: refused, and the refusal
            // quotes it escaped.
            println!("out{ESCAPES}");
            Ok(ok.child(request.child("v1", "ConfigMap", format!("name{ESCAPES}"))))
        }
        "cluster-scoped-child" => Ok(ok.child(request.child(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            "admin",
        ))),
        "bad-child-name" => {
            // `settings.name` (repeated `settings.repeat` times) as the name
            // of a child of `settings.kind` (default Secret).
            let settings = request.settings();
            let name = settings
                .str("name")?
                .repeat(settings.opt_int("repeat")?.unwrap_or(1) as usize);
            let kind = settings.opt_str("kind")?.unwrap_or("Secret").to_string();
            Ok(ok.child(request.child("v1", &kind, name)))
        }
        "bad-child-metadata" => {
            // `settings.labels` and `settings.annotations` on a child, and
            // `settings.annotationBytes` bytes of annotation.
            let settings = request.settings();
            let mut child = config_map(&request, "labelled").into_value();
            for field in ["labels", "annotations"] {
                if let Some(value) = settings.get(field) {
                    child["metadata"][field] = value.clone();
                }
            }
            if let Some(bytes) = settings.opt_int("annotationBytes")? {
                child["metadata"]["annotations"] = json!({"big": "b".repeat(bytes as usize)});
            }
            Ok(ok.child(Object::from_value("child", child)?))
        }
        "status-not-object" => Ok(ok.status(json!([1, 2]))),
        "big-output" => {
            // 8 children of 1 MiB each: over the default 4 MiB output cap.
            let blob = "x".repeat(1 << 20);
            let mut expansion = Expansion::new();
            for i in 0..8 {
                expansion = expansion.child(
                    request
                        .child("v1", "ConfigMap", format!("big-{i}"))
                        .with("data", json!({"blob": blob})),
                );
            }
            Ok(expansion)
        }
        "read-disallowed" => {
            // Both reads of a kind the binding does not allow get an `err`.
            let get = host::get_resource("v1", "Secret", Some("default"), "s").unwrap_err();
            let list = host::list_resources("v1", "Secret", None, None).unwrap_err();
            Ok(ok
                .finding(Finding::info(get.message().to_string()))
                .finding(Finding::info(list.message().to_string())))
        }
        "read-allowed" => {
            let found =
                host::get_resource("v1", "ConfigMap", request.composite.namespace(), "input")?
                    .ok_or_else(|| Error::new("fixture ConfigMap input not found"))?;
            let listed = host::list_resources("v1", "ConfigMap", None, Some("role=input"))?;
            let value = found.as_value()["data"]["value"].clone();
            Ok(
                Expansion::new().child(request.child("v1", "ConfigMap", "copied").with(
                    "data",
                    json!({"value": value, "listed": listed.len().to_string()}),
                )),
            )
        }
        "log-flood" => {
            for i in 0..100_000 {
                host::info(&format!("line {i}"));
            }
            Ok(ok)
        }
        "long-lines" => {
            // 200 lines of 4 KiB: each is cut to 1 KiB, and each spends 4 KiB
            // of the 64 KiB log budget, so 16 are kept.
            let line = "l".repeat(4 << 10);
            for _ in 0..200 {
                host::info(&line);
            }
            Ok(ok)
        }
        "huge-log" => {
            // A 16 MiB line, over what the host copies for one call, 200
            // times: the SDK sends only what can still be kept, so the first
            // is cut and counted like any long line and the rest dropped.
            let line = "h".repeat(16 << 20);
            for _ in 0..200 {
                host::info(&line);
            }
            Ok(ok)
        }
        "many-large-logs" => {
            // 1 MiB lines through the raw import (past the SDK's cut): each
            // is copied by the host before it is cut, so their sum must be
            // bounded per evaluation, not only each call.
            let line = "m".repeat(1 << 20);
            for _ in 0..64 {
                tessera_sdk::wit::composition::tessera::plugin::host::log(
                    host::LogLevel::Info,
                    &line,
                );
            }
            Ok(ok)
        }
        "many-large-reads" => {
            // Reads the binding refuses, each with a 1 MiB name: answered
            // with `err`, but the names are copied all the same.
            let name = "r".repeat(1 << 20);
            for _ in 0..64 {
                let _ = host::get_resource("v1", "Secret", None, &name);
            }
            Ok(ok)
        }
        "logs-then-big-answer" => {
            // 8 MiB of raw log lines, then a 2 MiB answer: each under its own
            // bound, together over the evaluation's copy budget.
            let line = "m".repeat(1 << 20);
            for _ in 0..8 {
                tessera_sdk::wit::composition::tessera::plugin::host::log(
                    host::LogLevel::Info,
                    &line,
                );
            }
            Ok(Expansion::new().child(
                request
                    .child("v1", "ConfigMap", "big")
                    .with("data", json!({"blob": "b".repeat(2 << 20)})),
            ))
        }
        "many-children" => {
            // 600 small children: far under the output cap, over the bound
            // on how many children one expansion may return.
            let mut expansion = Expansion::new();
            for i in 0..600 {
                expansion = expansion.child(config_map(&request, &format!("child-{i}")));
            }
            Ok(expansion)
        }
        "stderr" => {
            eprintln!("a note on stderr");
            println!("a note on stdout");
            Ok(ok)
        }
        "clock-random" => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(42);
            Ok(
                Expansion::new().child(request.child("v1", "ConfigMap", "entropy").with(
                    "data",
                    json!({"now": now.to_string(), "hash": hasher.finish().to_string()}),
                )),
            )
        }
        "count" => {
            // Counts calls in the instance's own memory: 1 in every fresh
            // instance, rising while an instance is reused. Panics when the
            // composite asks (`spec.panic: true`), after counting.
            static CALLS: AtomicU32 = AtomicU32::new(0);
            let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
            println!("call {calls}");
            host::info(&format!("call {calls}"));
            if request.spec().opt_bool("panic")? == Some(true) {
                panic!("asked to panic on call {calls}");
            }
            Ok(Expansion::new().child(
                request
                    .child("v1", "ConfigMap", "count")
                    .with("data", json!({"calls": calls.to_string()})),
            ))
        }
        other => Err(Error::at(
            "settings.mode",
            format!("unknown mode {other:?}"),
        )),
    }
}

/// OSC 0 (set the window title) ended by BEL, then CSI 2J (clear the
/// screen), a C1 CSI and DEL: what the `escapes` modes put in their text.
const ESCAPES: &str = "\x1b]0;pwned\x07\x1b[2J\u{9b}31m\x7f\r";

#[cfg(target_arch = "wasm32")]
fn unreachable_instruction() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn unreachable_instruction() -> ! {
    unreachable!("only meaningful on wasm32")
}

/// Recurses until the stack runs out. The call goes through a function
/// pointer hidden from the optimiser, so it can be neither inlined nor turned
/// into a loop, and each frame keeps its state in wasm locals (on the
/// engine's stack, which has a guard) rather than in linear memory.
fn recurse(depth: u64) -> u64 {
    let next: fn(u64) -> u64 = std::hint::black_box(recurse);
    1 + next(depth + 1)
}

/// Tries every way out of the sandbox a WASI program has and records what
/// happened. Every entry must be a denial.
fn escape_attempts() -> tessera_sdk::Value {
    use std::io::Read;
    fn outcome<T>(result: std::io::Result<T>, what: impl FnOnce(T) -> String) -> String {
        match result {
            Ok(value) => format!("ALLOWED: {}", what(value)),
            Err(e) => format!("denied: {:?}", e.kind()),
        }
    }
    let mut attempts = tessera_sdk::Map::new();
    let mut record = |name: &str, result: String| {
        attempts.insert(name.into(), tessera_sdk::Value::String(result));
    };
    record(
        "read /etc/passwd",
        outcome(std::fs::read("/etc/passwd"), |b| {
            format!("{} bytes", b.len())
        }),
    );
    record(
        "read relative file",
        outcome(std::fs::read("Cargo.toml"), |b| {
            format!("{} bytes", b.len())
        }),
    );
    record(
        "list /",
        outcome(std::fs::read_dir("/"), |d| format!("{} entries", d.count())),
    );
    record(
        "create file",
        outcome(std::fs::write("/tmp/tessera-escape", b"x"), |()| {
            "written".into()
        }),
    );
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    record(
        "environment",
        if vars.is_empty() {
            "denied: empty".into()
        } else {
            format!("ALLOWED: {}", vars.join(","))
        },
    );
    let args: Vec<String> = std::env::args().collect();
    record(
        "arguments",
        if args.is_empty() {
            "denied: empty".into()
        } else {
            format!("ALLOWED: {}", args.join(" "))
        },
    );
    record(
        "stdin",
        outcome(std::io::stdin().read(&mut [0u8; 16]), |n| {
            if n == 0 {
                "end of input".into()
            } else {
                format!("{n} bytes")
            }
        })
        .replace("ALLOWED: end of input", "denied: empty"),
    );
    record(
        "tcp connect 127.0.0.1:80",
        outcome(std::net::TcpStream::connect("127.0.0.1:80"), |_| {
            "connected".into()
        }),
    );
    record(
        "tcp listen 0.0.0.0:0",
        outcome(std::net::TcpListener::bind("0.0.0.0:0"), |_| {
            "listening".into()
        }),
    );
    record(
        "udp bind 0.0.0.0:0",
        outcome(std::net::UdpSocket::bind("0.0.0.0:0"), |_| "bound".into()),
    );
    record(
        "resolve example.com",
        outcome(
            std::net::ToSocketAddrs::to_socket_addrs("example.com:80"),
            |a| format!("{} addresses", a.count()),
        ),
    );
    tessera_sdk::Value::Object(attempts)
}

tessera_sdk::export_composition!(metadata = metadata, expand = expand);
