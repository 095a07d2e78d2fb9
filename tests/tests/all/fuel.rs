//! The CI gate on cost: fuel per evaluation (a count of executed WebAssembly
//! instructions, deterministic for the same plugin, toolchain and input) of
//! each example plugin on its example input, against the budget committed in
//! `tests/fuel-budget.json`. Wall time is never asserted.

use serde_json::{Value, json};
use tessera_runtime::{Binding, Context, Operation, Review, Runtime, UserInfo};
use tessera_tests::{example, plugins, workspace};

use crate::common::yaml_file;

async fn fuel_of(path: &str, settings: Value, input: &Value) -> u64 {
    let runtime = Runtime::builder().no_cache().fuel(true).build().unwrap();
    let plugin = runtime.load_file(path).await.unwrap();
    let policy = plugin.world() == tessera_runtime::World::Policy;
    let binding = Binding::new(plugin, settings).unwrap();
    let report = if policy {
        let review = Review {
            operation: Operation::Create,
            object: Some(input.clone()),
            old_object: None,
            user_info: UserInfo::default(),
        };
        binding.validate(&review).await.unwrap().report
    } else {
        binding
            .expand(input, &[], &Context::default())
            .await
            .unwrap()
            .report
    };
    report.fuel_consumed.expect("fuel is counted")
}

#[tokio::test]
async fn example_plugins_stay_within_their_fuel_budget() {
    let budget: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("tests/fuel-budget.json")).unwrap(),
    )
    .unwrap();
    let labels = yaml_file(&example("require-labels.settings.yaml"));
    let user = tessera_cli::documents::parse_stream(
        &std::fs::read_to_string(example("user-resources.yaml")).unwrap(),
    )
    .remove(0)
    .value
    .unwrap();
    let cases = [
        (
            "database",
            plugins::DATABASE,
            json!({}),
            yaml_file(&example("database.yaml")),
        ),
        (
            "web-app",
            plugins::WEB_APP,
            json!({}),
            yaml_file(&example("web-app.yaml")),
        ),
        (
            "service-binding",
            plugins::SERVICE_BINDING,
            json!({}),
            yaml_file(&example("service-instance.yaml")),
        ),
        (
            "require-labels",
            plugins::REQUIRE_LABELS,
            labels,
            user.clone(),
        ),
        (
            "provenance",
            plugins::PROVENANCE,
            json!({"requireOrigin": true}),
            user,
        ),
    ];
    let mut report = Vec::new();
    for (name, path, settings, input) in cases {
        let fuel = fuel_of(path, settings.clone(), &input).await;
        // Deterministic: the same evaluation costs the same again.
        assert_eq!(fuel, fuel_of(path, settings, &input).await, "{name}");
        let allowed = budget[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no budget for {name}"));
        report.push(format!("{name}: {fuel} of {allowed}"));
        assert!(
            fuel <= allowed,
            "{name} used {fuel} fuel; its budget is {allowed}. If the increase is intended, raise tests/fuel-budget.json"
        );
    }
    println!("{}", report.join("\n"));
}
