//! The `faulty-policy` test plugin: refusals and denials in the policy world
//! (its crashes are rows of the hostile-case table, see `hostile.rs`).

use serde_json::json;
use tessera_runtime::{Operation, Review, UserInfo};
use tessera_tests::plugins::FAULTY_POLICY;

use crate::common::bind;

fn review() -> Review {
    Review {
        operation: Operation::Update,
        object: Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})),
        old_object: Some(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
        ),
        user_info: UserInfo {
            username: "alice".into(),
            uid: "1".into(),
            groups: vec!["dev".into()],
        },
    }
}

#[tokio::test]
async fn denials_and_refusals_are_answers() {
    let deny = bind(FAULTY_POLICY, json!({"mode": "deny"}))
        .await
        .validate(&review())
        .await
        .unwrap();
    assert!(!deny.allowed);
    assert_eq!(deny.findings[0].message, "denied on purpose");
    let refuse = bind(FAULTY_POLICY, json!({"mode": "refuse"}))
        .await
        .validate(&review())
        .await
        .unwrap_err();
    assert!(refuse.is_refusal(), "{refuse:?}");
    assert!(
        refuse
            .to_string()
            .ends_with("refused the input in validate: cannot judge this object"),
        "{refuse}"
    );
}

#[tokio::test]
async fn policy_answers_and_refusals_are_held_to_the_output_cap() {
    for mode in ["big-findings", "big-refusal"] {
        let err = bind(FAULTY_POLICY, json!({"mode": mode}))
            .await
            .validate(&review())
            .await
            .unwrap_err();
        match &err {
            tessera_runtime::Error::Crashed { kind, phase, .. } => {
                assert_eq!(*kind, tessera_runtime::CrashKind::OutputTooLarge, "{mode}");
                assert_eq!(*phase, tessera_runtime::Phase::Output, "{mode}");
            }
            other => panic!("{mode}: expected a crash, got {other:?}"),
        }
        assert!(
            err.to_string().contains("over the limit of 4194304 bytes"),
            "{mode}: {err}"
        );
    }
}
