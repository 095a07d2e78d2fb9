//! Whether an object already holds everything the controller would apply.
//!
//! The controller applies a child only when it is missing or when some field
//! of the desired child differs on the server: a steady state makes no
//! writes, and a field someone changed or removed is put back. Fields the
//! server or other managers add (defaults, status, extra labels) do not
//! count. A field the plugin stops setting is caught by the provenance
//! annotations, which change with the plugin and its input.

use serde_json::Value;

/// True when every field of `desired` is in `observed` with the same value:
/// objects compare key by key (extra keys in `observed` are fine), lists
/// element by element with the same length, numbers by value.
pub fn is_subset(desired: &Value, observed: &Value) -> bool {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d
            .iter()
            .all(|(key, value)| o.get(key).is_some_and(|other| is_subset(value, other))),
        (Value::Array(d), Value::Array(o)) => {
            d.len() == o.len() && d.iter().zip(o).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        // An empty object or list the server drops, e.g. `emptyDir: {}` kept
        // as is but `labels: {}` removed.
        (Value::Object(d), Value::Null) => d.is_empty(),
        (Value::Array(d), Value::Null) => d.is_empty(),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_fields_on_the_server_are_fine() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 5432}]}});
        let observed = json!({"spec": {"replicas": 3, "ports": [{"port": 5432, "protocol": "TCP"}],
            "revisionHistoryLimit": 10}, "status": {}});
        assert!(is_subset(&desired, &observed));
    }

    #[test]
    fn a_changed_or_missing_field_is_not() {
        let desired = json!({"spec": {"replicas": 3, "ports": [{"port": 5432}]}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 5432}]}})
        ));
        assert!(!is_subset(&desired, &json!({"spec": {"replicas": 3}})));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3, "ports": []}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 3,
            "ports": [{"port": 5432}, {"port": 1}]}})
        ));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(is_subset(&json!({"a": 1}), &json!({"a": 1.0})));
        assert!(!is_subset(&json!({"a": 1}), &json!({"a": "1"})));
    }
}
