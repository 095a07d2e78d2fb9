//! Kubernetes name syntax, as apimachinery's `validation` package checks it:
//! the one implementation behind the host's checks of children
//! (`tessera-runtime`) and the SDK's helpers for plugins (`tessera-sdk`).

/// Whether `text` is shaped like a DNS-1123 label: lowercase letters, digits
/// and `-`, starting and ending with a letter or digit, at most `max_len`
/// bytes (Kubernetes: 63).
///
/// ```
/// use tessera_types::names::is_dns1123_label;
/// assert!(is_dns1123_label("2-orders", 63));
/// assert!(!is_dns1123_label("Orders", 63));
/// assert!(!is_dns1123_label("a-", 63));
/// ```
pub fn is_dns1123_label(text: &str, max_len: usize) -> bool {
    let bytes = text.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    bytes.len() <= max_len && edge(bytes.first()) && edge(bytes.last()) && bytes.iter().all(inner)
}

/// Whether `text` is a DNS-1035 label of at most `max_len` bytes: a DNS-1123
/// label that starts with a letter. Kubernetes requires it of Service names
/// (63).
///
/// ```
/// use tessera_types::names::is_dns1035_label;
/// assert!(is_dns1035_label("orders-2", 63));
/// assert!(!is_dns1035_label("2x", 63));
/// ```
pub fn is_dns1035_label(text: &str, max_len: usize) -> bool {
    is_dns1123_label(text, max_len) && text.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Whether `text` is a DNS-1123 subdomain of at most `max_len` bytes
/// (Kubernetes: 253): DNS-1123 labels joined by `.`.
///
/// ```
/// use tessera_types::names::is_dns1123_subdomain;
/// assert!(is_dns1123_subdomain("db.example.com", 253));
/// assert!(!is_dns1123_subdomain("db..example", 253));
/// ```
pub fn is_dns1123_subdomain(text: &str, max_len: usize) -> bool {
    text.len() <= max_len
        && text
            .split('.')
            .all(|label| is_dns1123_label(label, usize::MAX))
}
