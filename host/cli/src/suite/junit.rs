//! The JUnit XML report of a run (`tessera test --output junit FILE`).

use std::collections::BTreeMap;

use super::{Case, Outcome};

/// A JUnit XML report of a run.
pub(crate) fn junit(results: &[(Case, Outcome)]) -> String {
    let escape = |s: &str| {
        // XML 1.0 allows no control characters but tab, newline and return.
        s.chars()
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
            .collect::<String>()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut by_suite: BTreeMap<String, Vec<&(Case, Outcome)>> = BTreeMap::new();
    for result in results {
        by_suite
            .entry(result.0.suite.display().to_string())
            .or_default()
            .push(result);
    }
    let failures = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .count();
    let skipped = results
        .iter()
        .filter(|(_, o)| *o == Outcome::Skipped)
        .count();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tessera\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        results.len()
    );
    for (suite, cases) in by_suite {
        let suite_failures = cases
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .count();
        let suite_skipped = cases.iter().filter(|(_, o)| *o == Outcome::Skipped).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{suite_failures}\" skipped=\"{suite_skipped}\">\n",
            escape(&suite),
            cases.len()
        ));
        for (case, outcome) in cases {
            xml.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                escape(&suite),
                escape(&case.name)
            ));
            match outcome {
                Outcome::Passed => xml.push_str("/>\n"),
                Outcome::Skipped => xml.push_str("><skipped/></testcase>\n"),
                Outcome::Failed(why) => xml.push_str(&format!(
                    "><failure message=\"{}\">{}</failure></testcase>\n",
                    escape(why.lines().next().unwrap_or("failed")),
                    escape(why)
                )),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::CaseKind;
    use crate::suite::format::{Expect, PolicyInput};

    #[test]
    fn junit_escapes() {
        let case = Case {
            suite: "s.tessera.yaml".into(),
            name: "a <b>".into(),
            kind: CaseKind::Policy(PolicyInput {
                plugin: "p".into(),
                settings: None,
                settings_file: None,
                operation: None,
                object: None,
                object_file: None,
                old_object: None,
                old_object_file: None,
                user_info: None,
            }),
            expect: Expect::default(),
            limits: tessera_runtime::Limits::default(),
        };
        let xml = junit(&[(case, Outcome::Failed("x & \"y\"".into()))]);
        assert!(xml.contains("name=\"a &lt;b&gt;\""), "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(xml.contains("x &amp; &quot;y&quot;"), "{xml}");
    }
}
