//! Fuzzes AdmissionReview decoding: never panics; a decoded request has a
//! uid and the objects its operation needs; answers always encode to JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_admission::{Answer, Operation, decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = decode(data) {
        assert!(!request.uid.is_empty());
        match request.operation {
            Operation::Create => assert!(request.object.is_some()),
            Operation::Update => assert!(request.object.is_some() && request.old_object.is_some()),
            Operation::Delete => assert!(request.old_object.is_some()),
        }
        let answer = Answer::deny(&request.uid, "x").warn("y").to_json();
        let _: serde_json::Value = serde_json::from_str(&answer).expect("answers are JSON");
    }
});
