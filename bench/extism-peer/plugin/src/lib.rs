//! The `database` plugin's `expand` as an Extism plugin function, `compose`
//! (the name `expand` is taken by the component export the SDK also
//! generates): the same Rust function the Tessera component runs, behind
//! Extism's bytes-in/bytes-out calling convention. Input: `{"composite": {...}, "observed": [...],
//! "settings": {...}}`; output: the children as a JSON array.

use extism_pdk::{FnResult, plugin_fn};
use serde_json::Value;
use tessera_sdk::{CompositionRequest, Context, Object};

#[plugin_fn]
pub fn compose(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let mut request: Value = serde_json::from_slice(&input)?;
    let composite = Object::from_value("composite", request["composite"].take())
        .map_err(|e| extism_pdk::Error::msg(e.to_string()))?;
    let observed = match request["observed"].take() {
        Value::Array(items) => items
            .into_iter()
            .map(|item| Object::from_value("observed", item))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| extism_pdk::Error::msg(e.to_string()))?,
        _ => Vec::new(),
    };
    let request = CompositionRequest {
        composite,
        observed,
        settings: request["settings"].take(),
        context: Context {
            caller: "extism".into(),
            dry_run: true,
        },
    };
    let expansion = database::expand(request).map_err(|e| extism_pdk::Error::msg(e.to_string()))?;
    let children: Vec<&Value> = expansion.children().iter().map(Object::as_value).collect();
    Ok(serde_json::to_vec(&children)?)
}
