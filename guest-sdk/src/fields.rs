//! Reading fields of `spec` and settings with errors that name the field.

use serde_json::Value;

use crate::types::{Error, Result};

/// A read-only view of a JSON object at a dotted path (`spec`,
/// `spec.autoscaling`, `settings`). Every reader returns an [`Error`] that
/// names the full path of the field and shows the offending value.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    path: String,
    value: Option<&'a Value>,
}

impl<'a> Fields<'a> {
    /// A view of `value` (a JSON object, or none) at `path`.
    pub fn new(path: impl Into<String>, value: Option<&'a Value>) -> Self {
        Fields {
            path: path.into(),
            value,
        }
    }

    /// The dotted path of this view.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The dotted path of `key` in this view.
    pub fn path_of(&self, key: &str) -> String {
        format!("{}.{key}", self.path())
    }

    /// The raw value of `key`; `None` when absent or `null`.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.value?.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> Result<&'a Value> {
        self.get(key).ok_or_else(|| {
            Error::at(
                self.path_of(key),
                format!("{} is required", self.path_of(key)),
            )
        })
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> Error {
        let path = self.path_of(key);
        Error::at(
            path.clone(),
            format!("{path} must be {expected}, got {}", show(got)),
        )
    }

    /// A required string.
    pub fn str(&self, key: &str) -> Result<&'a str> {
        let value = self.required(key)?;
        value
            .as_str()
            .ok_or_else(|| self.wrong(key, "a string", value))
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a string", value)),
        }
    }

    /// A required string that must be one of `allowed`.
    pub fn one_of(&self, key: &str, allowed: &[&str]) -> Result<&'a str> {
        let value = self.str(key)?;
        if allowed.contains(&value) {
            Ok(value)
        } else {
            let path = self.path_of(key);
            Err(Error::at(
                path.clone(),
                format!(
                    "{path} must be one of {}, got {}",
                    allowed.join(", "),
                    show(&Value::String(value.into()))
                ),
            ))
        }
    }

    /// A required integer.
    pub fn int(&self, key: &str) -> Result<i64> {
        let value = self.required(key)?;
        value
            .as_i64()
            .ok_or_else(|| self.wrong(key, "an integer", value))
    }

    /// An optional integer.
    pub fn opt_int(&self, key: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "an integer", value)),
        }
    }

    /// An optional integer that must lie in `min..=max`.
    pub fn opt_int_in(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        let Some(n) = self.opt_int(key)? else {
            return Ok(None);
        };
        if (min..=max).contains(&n) {
            Ok(Some(n))
        } else {
            let path = self.path_of(key);
            Err(Error::at(
                path.clone(),
                format!("{path} must be between {min} and {max}, got {n}"),
            ))
        }
    }

    /// A required integer that must lie in `min..=max`.
    pub fn int_in(&self, key: &str, min: i64, max: i64) -> Result<i64> {
        self.required(key)?;
        Ok(self
            .opt_int_in(key, min, max)?
            .expect("checked present above"))
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "true or false", value)),
        }
    }

    /// A required Kubernetes quantity such as `20Gi` or `500m`.
    pub fn quantity(&self, key: &str) -> Result<&'a str> {
        let value = self.required(key)?;
        match value.as_str() {
            Some(q) if is_quantity(q) => Ok(q),
            _ => Err(self.wrong(key, "a quantity such as 20Gi", value)),
        }
    }

    /// An optional list of strings.
    pub fn opt_str_list(&self, key: &str) -> Result<Option<Vec<&'a str>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let items = value
            .as_array()
            .ok_or_else(|| self.wrong(key, "a list of strings", value))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .ok_or_else(|| self.wrong(&format!("{key}[{i}]"), "a string", item))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A view of an optional nested object.
    pub fn opt_object(&self, key: &str) -> Result<Option<Fields<'a>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        if !value.is_object() {
            return Err(self.wrong(key, "an object", value));
        }
        Ok(Some(Fields::new(self.path_of(key), Some(value))))
    }

    /// The keys of a nested object mapped to their values, in order.
    pub fn opt_map(&self, key: &str) -> Result<Option<&'a serde_json::Map<String, Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_object()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "an object", value)),
        }
    }
}

/// Shows a value in an error: strings quoted, long values cut.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Whether `text` is a DNS-1035 label of at most `max_len` characters:
/// lowercase letters, digits and `-`, starting with a letter and ending with
/// a letter or digit. Kubernetes requires it of Service names (`max_len` 63);
/// plugins that name children after the composite check the name with it.
/// The same check the host applies to the children it is given.
pub use tessera_types::names::is_dns1035_label;

/// Whether `text` is a Kubernetes resource quantity (`20Gi`, `1.5`, `500m`,
/// `1e3`): a signed decimal number followed by an optional binary suffix
/// (`Ki`..`Ei`), decimal suffix (`n u m k M G T P E`) or exponent.
pub fn is_quantity(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - digits_start;
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - frac_start;
    }
    if digits == 0 {
        return false;
    }
    let suffix = &text[i..];
    match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T"
        | "P" | "E" => true,
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'));
            match exp {
                Some(rest) => {
                    let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                }
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field_and_value() {
        let spec = json!({"replicas": "three", "engine": "oracle", "storage": "lots"});
        let f = Fields::new("spec", Some(&spec));
        let e = f.int("replicas").unwrap_err();
        assert_eq!(
            e.message(),
            r#"spec.replicas must be an integer, got "three""#
        );
        assert_eq!(e.field(), Some("spec.replicas"));
        let e = f.one_of("engine", &["postgres", "mysql"]).unwrap_err();
        assert_eq!(
            e.message(),
            r#"spec.engine must be one of postgres, mysql, got "oracle""#
        );
        let e = f.str("version").unwrap_err();
        assert_eq!(e.message(), "spec.version is required");
        let e = f.quantity("storage").unwrap_err();
        assert_eq!(
            e.message(),
            r#"spec.storage must be a quantity such as 20Gi, got "lots""#
        );
    }

    #[test]
    fn nested_objects_keep_their_path() {
        let spec = json!({"autoscaling": {"minReplicas": "x"}});
        let f = Fields::new("spec", Some(&spec));
        let auto = f.opt_object("autoscaling").unwrap().unwrap();
        let e = auto.opt_int("minReplicas").unwrap_err();
        assert_eq!(
            e.message(),
            r#"spec.autoscaling.minReplicas must be an integer, got "x""#
        );
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns1035_label("orders-2", 63));
        for bad in ["", "2x", "Orders", "a-", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1035_label(bad, 63), "{bad}");
        }
        assert!(!is_dns1035_label("abcdef", 5));
    }

    #[test]
    fn quantities() {
        for ok in ["20Gi", "1", "1.5", "500m", "1e3", "+2Ki", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "20GB", "lots", "1e", "1.2.3"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
