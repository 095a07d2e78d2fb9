//! Reading Kubernetes objects from YAML or JSON files (or stdin), one or many
//! documents per file, with errors that name the file, the document and the
//! line. Input is untrusted: this crate has no WebAssembly dependency so that
//! `fuzz/` can fuzz it cheaply.

#![deny(missing_docs)]

use std::io::Read;
use std::path::Path;

use serde_json::Value;

/// Largest input file accepted. Kubernetes objects are at most ~1.5 MiB
/// (etcd's request limit); 64 MiB leaves room for long multi-document
/// streams and refuses runaway input before it is parsed.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// One document of an input stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Its index in the stream, counting from 0 (empty documents count).
    pub index: usize,
    /// The line it starts on, counting from 1.
    pub line: usize,
    /// The parsed value, or why it could not be parsed.
    pub value: Result<Value, String>,
}

/// An input that could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ReadError {
    /// The file name, or `<stdin>`.
    pub source_name: String,
    /// What went wrong.
    pub message: String,
}

/// The name a path is shown with: `<stdin>` for `-`.
pub fn display_name(path: &Path) -> String {
    if path == Path::new("-") {
        "<stdin>".into()
    } else {
        path.display().to_string()
    }
}

/// Reads a file (or stdin for `-`) as UTF-8 text, refusing more than
/// [`MAX_INPUT_BYTES`].
pub fn read_text(path: &Path, stdin: &mut dyn Read) -> Result<String, ReadError> {
    let name = display_name(path);
    let fail = |message: String| ReadError {
        source_name: name.clone(),
        message,
    };
    let mut bytes = Vec::new();
    let reader: Box<dyn Read + '_> = if path == Path::new("-") {
        Box::new(stdin)
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| fail(io_message(&e)))?)
    };
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(io_message(&e)))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(fail(format!(
            "larger than {} MiB; refusing to read it",
            MAX_INPUT_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

fn io_message(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => error.to_string(),
    }
}

/// Splits a stream into documents and parses each on its own, so that one
/// bad document does not hide the others. JSON input (starting with `{` or
/// `[`) is read as a sequence of JSON values; a top-level JSON array or a
/// `kind: List` object contributes its items. Empty documents are skipped
/// but still counted.
pub fn parse_stream(text: &str) -> Vec<Document> {
    let trimmed = text.trim_start_matches('\u{feff}');
    let first = trimmed.trim_start().chars().next();
    let documents = if matches!(first, Some('{' | '[')) {
        parse_json_stream(trimmed)
    } else {
        split_yaml(trimmed)
            .into_iter()
            .enumerate()
            .filter_map(|(index, (line, chunk))| {
                let value = parse_yaml_document(chunk, line);
                match value {
                    Ok(Value::Null) => None,
                    value => Some(Document { index, line, value }),
                }
            })
            .collect()
    };
    flatten_lists(documents)
}

fn parse_yaml_document(chunk: &str, first_line: usize) -> Result<Value, String> {
    serde_yaml_ng::from_str::<Value>(chunk).map_err(|e| {
        let message = strip_location(&e.to_string());
        match e.location() {
            Some(loc) => format!("line {}: {message}", loc.line() + first_line - 1),
            None => message,
        }
    })
}

/// serde_yaml appends " at line L column C" with the line relative to the
/// document; we report the line in the file instead.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// Splits YAML text at document markers (`---` at the start of a line).
/// Returns each document with the line (from 1) its content starts on.
fn split_yaml(text: &str) -> Vec<(usize, &str)> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    let mut seen_marker = false;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t");
        if is_marker {
            // Text before the first marker is a document only if it holds
            // something.
            if seen_marker || !text[start..offset].trim().is_empty() {
                documents.push((start_line, &text[start..offset]));
            }
            seen_marker = true;
            // Content after `--- ` on the marker line belongs to the document.
            start = offset + 3;
            start_line = number + 1;
        } else if bare == "..." {
            documents.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = number + 2;
            seen_marker = false;
        }
        offset += line.len();
    }
    if seen_marker || !text[start..].trim().is_empty() {
        documents.push((start_line, &text[start..]));
    }
    documents
}

fn parse_json_stream(text: &str) -> Vec<Document> {
    let mut documents = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut index = 0;
    // Lines counted so far, up to `counted` bytes: each document's start is
    // found by scanning only the text since the previous one.
    let (mut counted, mut lines) = (0, 1);
    loop {
        let offset = stream.byte_offset();
        let rest = &text[offset..];
        let start = offset + (rest.len() - rest.trim_start().len());
        lines += text[counted..start].matches('\n').count();
        counted = start;
        let line = lines;
        match stream.next() {
            None => break,
            Some(Ok(value)) => documents.push(Document {
                index,
                line,
                value: Ok(value),
            }),
            Some(Err(e)) => {
                documents.push(Document {
                    index,
                    line,
                    value: Err(format!(
                        "line {}: {}",
                        e.line(),
                        strip_location(&e.to_string())
                    )),
                });
                // A JSON syntax error leaves no way to find where the next
                // value starts: stop here.
                break;
            }
        }
        index += 1;
    }
    documents
}

/// A top-level JSON array or a `kind: List` contributes its items, each
/// numbered as its own document.
fn flatten_lists(documents: Vec<Document>) -> Vec<Document> {
    let mut out = Vec::with_capacity(documents.len());
    let mut index = 0;
    for document in documents {
        let items = match &document.value {
            Ok(Value::Array(items)) => Some(items.clone()),
            Ok(v)
                if v.get("kind").and_then(Value::as_str) == Some("List")
                    && v.get("items").is_some_and(Value::is_array) =>
            {
                v["items"].as_array().cloned()
            }
            _ => None,
        };
        match items {
            Some(items) => {
                for item in items {
                    out.push(Document {
                        index,
                        line: document.line,
                        value: Ok(item),
                    });
                    index += 1;
                }
            }
            None => {
                out.push(Document {
                    index: index.max(document.index),
                    ..document
                });
                index = index.max(document.index) + 1;
            }
        }
    }
    out
}

/// Writes values as a YAML stream: documents separated by `---`.
pub fn to_yaml_stream(values: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(value).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// Writes values as one pretty JSON list.
pub fn to_json_list(values: &[Value]) -> String {
    let mut text = serde_json::to_string_pretty(values).expect("JSON values always serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_yaml_streams_and_keeps_going_after_a_bad_document() {
        let text = "a: 1\n---\nb: [\n---\n# only a comment\n---\nc: 3\n";
        let docs = parse_stream(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].value, Ok(json!({"a": 1})));
        assert_eq!((docs[1].index, docs[1].line), (1, 2));
        let err = docs[1].value.as_ref().unwrap_err();
        assert!(err.starts_with("line 4:"), "{err}");
        assert_eq!((docs[2].index, docs[2].line), (3, 6));
        assert_eq!(docs[2].value, Ok(json!({"c": 3})));
    }

    #[test]
    fn leading_marker_and_inline_content() {
        let docs = parse_stream("---\na: 1\n--- {b: 2}\n");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].value, Ok(json!({"a": 1})));
        assert_eq!(docs[1].value, Ok(json!({"b": 2})));
    }

    #[test]
    fn json_streams_and_lists() {
        let docs = parse_stream("[{\"a\":1},{\"b\":2}]\n{\"kind\":\"List\",\"items\":[{\"c\":3}]}");
        let values: Vec<_> = docs.iter().map(|d| d.value.clone().unwrap()).collect();
        assert_eq!(
            values,
            vec![json!({"a": 1}), json!({"b": 2}), json!({"c": 3})]
        );
        let docs = parse_stream("{\"a\":1}\n{\"b\":");
        assert_eq!(docs.len(), 2);
        assert!(docs[1].value.as_ref().unwrap_err().starts_with("line 2:"));
    }

    #[test]
    fn large_numbers_survive_a_json_round_trip() {
        // Found by `fuzz/` (documents target): without serde_json's
        // `float_roundtrip`, this number changed in its last digit when
        // written as JSON and read back, so output was not stable.
        let text = format!("  {}", "1".repeat(82));
        let values: Vec<_> = parse_stream(&text)
            .into_iter()
            .map(|d| d.value.unwrap())
            .collect();
        let back: Vec<serde_json::Value> = serde_json::from_str(&to_json_list(&values)).unwrap();
        assert_eq!(back, values);
    }

    #[test]
    fn yaml_bombs_are_refused() {
        let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
        let docs = parse_stream(bomb);
        assert!(docs[0].value.is_err());
    }
}
