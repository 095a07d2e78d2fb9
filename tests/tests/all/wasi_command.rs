//! The `wasi-command` test component: a real component of another world
//! (`wasi:cli/command`), built from source, refused at load time.

use tessera_runtime::Error;
use tessera_tests::plugins::WASI_COMMAND;

#[tokio::test]
async fn a_wasi_command_is_not_a_plugin() {
    let runtime = tessera_runtime::Runtime::builder()
        .no_cache()
        .build()
        .unwrap();
    let err = runtime.load_file(WASI_COMMAND).await.unwrap_err();
    assert!(matches!(err, Error::Incompatible { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("exports neither `expand` (composition world) nor `validate` (policy world)"),
        "{text}"
    );
    assert!(
        text.contains("wasi:cli/run@0.2"),
        "lists what it does export: {text}"
    );
}
