//! The JUnit XML report of a run (`tessera test --output junit FILE`).
//!
//! Failure texts quote what plugins said. XML 1.0 allows no control
//! character but tab, newline and return, and a report is also read on a
//! terminal: attributes are one line ([`Untrusted`]), a failure's body keeps
//! its lines ([`text::lines`]), and neither keeps a control character.

use std::collections::BTreeMap;

use tessera_types::text::{self, Untrusted};

use super::{Case, Outcome};

/// `&`, `<`, `>` and `"` as XML entities.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A JUnit XML report of a run.
pub fn junit(results: &[(Case, Outcome)]) -> String {
    // An attribute: one line, no control character.
    let escape = |s: &str| xml(&Untrusted(s).to_string());
    // A failure's body: its lines, none with a control character.
    let body = |s: &str| xml(&text::lines(s).collect::<Vec<_>>().join("\n"));
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
                    body(why)
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
    use crate::CaseKind;
    use crate::format::{Expect, PolicyInput};

    fn a_case() -> Case {
        Case {
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
        }
    }

    #[test]
    fn junit_escapes() {
        let mut case = a_case();
        case.name = "a <b>".into();
        let xml = junit(&[(case, Outcome::Failed("x & \"y\"".into()))]);
        assert!(xml.contains("name=\"a &lt;b&gt;\""), "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(xml.contains("x &amp; &quot;y&quot;"), "{xml}");
    }

    #[test]
    fn junit_keeps_no_control_character_of_a_plugin() {
        let mut case = a_case();
        case.name = "c\x1b[2J".into();
        let why = "message: \x1b]0;pwned\x07\x1b[2J\r\nline two\x1b[31m\n";
        let xml = junit(&[(case, Outcome::Failed(why.into()))]);
        assert!(!xml.chars().any(|c| c.is_control() && c != '\n'), "{xml:?}");
        assert!(xml.contains("line two"), "{xml}");
        assert!(xml.contains("name=\"c\u{fffd}[2J\""), "{xml}");
    }
}
