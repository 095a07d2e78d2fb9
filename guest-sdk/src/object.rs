//! A Kubernetes object as JSON, with the accessors plugins need.

use serde_json::{Map, Value};

use crate::types::{Error, Result};

/// A Kubernetes object: a JSON object with `apiVersion`, `kind` and
/// `metadata`. Field order is kept as built, so output is deterministic.
#[derive(Debug, Clone, PartialEq)]
pub struct Object(Value);

impl Object {
    /// A new object with `apiVersion`, `kind` and `metadata.name`.
    pub fn new(api_version: &str, kind: &str, name: impl Into<String>) -> Self {
        let mut metadata = Map::new();
        metadata.insert("name".into(), Value::String(name.into()));
        let mut object = Map::new();
        object.insert("apiVersion".into(), Value::String(api_version.into()));
        object.insert("kind".into(), Value::String(kind.into()));
        object.insert("metadata".into(), Value::Object(metadata));
        Object(Value::Object(object))
    }

    /// Wraps a JSON value; it must be an object.
    pub fn from_value(what: &str, value: Value) -> Result<Self> {
        if value.is_object() {
            Ok(Object(value))
        } else {
            Err(Error::new(format!("{what} must be a JSON object")))
        }
    }

    pub(crate) fn parse(what: &str, text: &str) -> Result<Self> {
        let value = serde_json::from_str(text)
            .map_err(|e| Error::new(format!("{what} is not valid JSON: {e}")))?;
        Self::from_value(what, value)
    }

    /// The JSON value.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The JSON value, owned.
    pub fn into_value(self) -> Value {
        self.0
    }

    pub(crate) fn to_json(&self) -> String {
        crate::types::json_text(&self.0)
    }

    fn str_at(&self, outer: &str, key: &str) -> Option<&str> {
        self.0.get(outer)?.get(key)?.as_str()
    }

    /// `apiVersion`, or `""`.
    pub fn api_version(&self) -> &str {
        self.0
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// `kind`, or `""`.
    pub fn kind(&self) -> &str {
        self.0.get("kind").and_then(Value::as_str).unwrap_or("")
    }

    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.str_at("metadata", "name").unwrap_or("")
    }

    /// `metadata.namespace`, when set and not empty.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at("metadata", "namespace")
            .filter(|ns| !ns.is_empty())
    }

    /// `metadata.labels` with string values, in their order.
    pub fn labels(&self) -> Vec<(&str, &str)> {
        self.string_map("labels")
    }

    /// `metadata.annotations` with string values, in their order.
    pub fn annotations(&self) -> Vec<(&str, &str)> {
        self.string_map("annotations")
    }

    /// One label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.0.get("metadata")?.get("labels")?.get(key)?.as_str()
    }

    /// One annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.0
            .get("metadata")?
            .get("annotations")?
            .get(key)?
            .as_str()
    }

    fn string_map(&self, which: &str) -> Vec<(&str, &str)> {
        self.0
            .get("metadata")
            .and_then(|m| m.get(which))
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn fields(&mut self) -> &mut Map<String, Value> {
        if !self.0.is_object() {
            self.0 = Value::Object(Map::new());
        }
        self.0.as_object_mut().expect("made an object above")
    }

    fn metadata_map(&mut self, which: &str) -> &mut Map<String, Value> {
        let metadata = self
            .fields()
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        let map = metadata
            .as_object_mut()
            .expect("made an object above")
            .entry(which)
            .or_insert_with(|| Value::Object(Map::new()));
        if !map.is_object() {
            *map = Value::Object(Map::new());
        }
        map.as_object_mut().expect("made an object above")
    }

    /// Sets `metadata.namespace`.
    #[must_use]
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        let metadata = self
            .fields()
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = metadata.as_object_mut() {
            m.insert("namespace".into(), Value::String(namespace.into()));
        }
        self
    }

    /// Sets a label.
    #[must_use]
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.metadata_map("labels")
            .insert(key.into(), Value::String(value.into()));
        self
    }

    /// Sets an annotation.
    #[must_use]
    pub fn with_annotation(mut self, key: &str, value: &str) -> Self {
        self.metadata_map("annotations")
            .insert(key.into(), Value::String(value.into()));
        self
    }

    /// Sets a top-level field such as `spec`, `data` or `type`.
    #[must_use]
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.fields().insert(key.into(), value);
        self
    }

    /// Sets `data` of a Secret from plain strings (base64-encoded here).
    #[must_use]
    pub fn with_secret_data<'a>(
        self,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        let data: Map<String, Value> = entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(base64_encode(v.as_bytes()))))
            .collect();
        self.with("data", Value::Object(data))
    }
}

/// Standard base64 (the RFC 4648 alphabet). Writes padding, as Kubernetes
/// does for Secret `data`; reads text with or without padding and with
/// nonzero unused bits in its last character, so loosely encoded values in
/// an observed Secret still decode.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Standard base64 with padding, as Kubernetes uses for Secret `data`.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    base64::Engine::encode(&BASE64, bytes)
}

/// Decodes standard base64; `None` when the text is not valid base64.
/// Any run of trailing `=` is accepted.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::Engine::decode(&BASE64, text.trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "p@ss/w+rd"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&encoded).unwrap(), text.as_bytes(), "{text}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn base64_decoding_takes_any_padding_and_loose_last_bits() {
        for text in ["Zm8", "Zm8=", "Zm8==", "Zm8===", "Zm9="] {
            assert_eq!(base64_decode(text).as_deref(), Some(&b"fo"[..]), "{text}");
        }
        for text in ["Zm8=Zm8=", "Zm 8=", "Zm8-", "Z"] {
            assert_eq!(base64_decode(text), None, "{text}");
        }
    }

    #[test]
    fn builder_keeps_field_order() {
        let o = Object::new("v1", "ConfigMap", "x")
            .with_namespace("ns")
            .with_label("a", "1")
            .with("data", serde_json::json!({"k": "v"}));
        assert_eq!(
            o.to_json(),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"ns","labels":{"a":"1"}},"data":{"k":"v"}}"#
        );
        assert_eq!(o.namespace(), Some("ns"));
        assert_eq!(o.labels(), vec![("a", "1")]);
    }
}
