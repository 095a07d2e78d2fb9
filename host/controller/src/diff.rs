//! Whether an object already holds everything the controller would apply.
//!
//! The controller applies a child only when it is missing or when some field
//! of the desired child differs on the server: a steady state makes no
//! writes, and a field someone changed or removed is put back. Fields the
//! server or other managers add (defaults, status, extra labels) do not
//! count. A field the plugin stops setting is caught by the provenance
//! annotations, which change with the plugin and its input.

/// True when every field of `desired` is in `observed` with the same value
/// (the one partial match, shared with `tessera test`; see
/// [`tessera_types::json::is_subset`]).
pub use tessera_types::json::is_subset;

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
