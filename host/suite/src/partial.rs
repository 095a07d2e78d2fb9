//! Partial matching: a case names only the fields it cares about, and a
//! difference is shown as a diff of only those fields.

use serde_json::Value;

use super::diff::unified_diff;

/// Whether `actual` holds everything `expected` says: the same partial
/// match the controller uses to see whether a live child is up to date.
pub(crate) use tessera_types::json::is_subset as matches_partially;

/// `actual` cut down to the shape of `expected`, so a diff shows only what
/// the case asserts.
fn project(expected: &Value, actual: &Value) -> Value {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => Value::Object(
            e.iter()
                .filter_map(|(k, ev)| a.get(k).map(|av| (k.clone(), project(ev, av))))
                .collect(),
        ),
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            Value::Array(e.iter().zip(a).map(|(ev, av)| project(ev, av)).collect())
        }
        _ => actual.clone(),
    }
}

pub(super) fn partial_diff(expected: &Value, actual: &Value) -> Option<String> {
    if matches_partially(expected, actual) {
        return None;
    }
    let to_yaml = |v: &Value| serde_yaml_ng::to_string(v).unwrap_or_else(|_| v.to_string());
    Some(unified_diff(
        &to_yaml(expected),
        &to_yaml(&project(expected, actual)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_matching() {
        let actual = json!({"kind": "Service", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"ports": [{"port": 80, "name": "http"}]}});
        assert!(matches_partially(&json!({"kind": "Service"}), &actual));
        assert!(matches_partially(
            &json!({"spec": {"ports": [{"port": 80}]}}),
            &actual
        ));
        assert!(!matches_partially(
            &json!({"spec": {"ports": [{"port": 81}]}}),
            &actual
        ));
        assert!(!matches_partially(&json!({"spec": {"ports": []}}), &actual));
        assert!(!matches_partially(&json!({"missing": null}), &actual));
    }

    #[test]
    fn diffs_show_only_asserted_fields() {
        let actual = json!({"kind": "Service", "metadata": {"name": "a"}, "spec": {"type": "ClusterIP", "port": 80}});
        let diff = partial_diff(&json!({"spec": {"port": 81}}), &actual).unwrap();
        assert!(
            diff.contains("-  port: 81") && diff.contains("+  port: 80"),
            "{diff}"
        );
        assert!(!diff.contains("ClusterIP"), "{diff}");
    }
}
