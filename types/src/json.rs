//! Partial matching of JSON values.

use serde_json::Value;

/// True when `actual` holds everything `expected` says: objects compare key
/// by key (extra keys in `actual` are fine), lists element by element with
/// the same length, numbers by value (`1` matches `1.0`), other scalars by
/// equality. An empty object or list in `expected` also matches `null`: the
/// API server drops some empty fields (`labels: {}`) and keeps others.
///
/// The controller uses it to decide whether a live child already holds the
/// desired one (no write at steady state); `tessera test` uses it for
/// `expect.partial` cases.
///
/// ```
/// use serde_json::json;
/// use tessera_types::json::is_subset;
/// let live = json!({"spec": {"replicas": 3, "ports": [{"port": 5432, "protocol": "TCP"}]}});
/// assert!(is_subset(&json!({"spec": {"ports": [{"port": 5432}]}}), &live));
/// assert!(!is_subset(&json!({"spec": {"replicas": 2}}), &live));
/// ```
pub fn is_subset(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(key, value)| a.get(key).is_some_and(|other| is_subset(value, other))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| is_subset(x, y))
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(e), Value::Null) => e.is_empty(),
        (Value::Array(e), Value::Null) => e.is_empty(),
        (x, y) => x == y,
    }
}
