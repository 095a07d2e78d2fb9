//! Fuzzes reading YAML/JSON streams: never panics, every document gets a
//! value or an error, indexes increase, and what is read writes back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let documents = tessera_documents::parse_stream(text);
    let mut last = None;
    let mut values = Vec::new();
    for document in documents {
        if let Some(previous) = last {
            assert!(document.index > previous, "indexes increase");
        }
        last = Some(document.index);
        assert!(document.line >= 1);
        if let Ok(value) = document.value {
            values.push(value);
        }
    }
    // Whatever was read can be written as YAML and JSON, and the JSON reads
    // back to the same values.
    let _ = tessera_documents::to_yaml_stream(&values);
    let json = tessera_documents::to_json_list(&values);
    let back: Vec<serde_json::Value> = serde_json::from_str(&json).expect("our JSON reads back");
    assert_eq!(back, values);
});
