//! Product records: the JSON-lines format ([`Product`], [`parse_line`]), the tasks a record
//! gives ([`EmbedImage`], [`EmbedText`]), the filter that judges each part of a record
//! ([`validate`], [`Reason`]) and the counts of filtering a whole file ([`Filtered`]).

use std::collections::BTreeMap;

use mq_core::Task;
use serde::{Deserialize, Serialize};

/// Longest image URL accepted, in bytes: 2,048.
pub const MAX_URL_LEN: usize = 2_048;

/// A product record as read from one JSON line. Fields other than `product_id` may be absent
/// or `null`; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Unique product id.
    pub product_id: u64,
    /// Short product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// URL of the product image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// Shop category (not used by the pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Price in cents (not used by the pipeline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_cents: Option<u64>,
}

/// Turn a product image into a vector (queue `images`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Task)]
#[task(
    queue = "images",
    max_retries = 3,
    timeout = "2m",
    backoff = "exponential(500ms, 30s)"
)]
pub struct EmbedImage {
    /// The product the image belongs to.
    pub product_id: u64,
    /// An `http`/`https` URL (see [`check_image_url`]).
    pub url: String,
}

/// Turn a product text into a vector (queue `texts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Task)]
#[task(
    queue = "texts",
    max_retries = 3,
    timeout = "1m",
    backoff = "exponential(500ms, 30s)"
)]
pub struct EmbedText {
    /// The product the text belongs to.
    pub product_id: u64,
    /// Title and description, see [`product_text`].
    pub text: String,
}

/// Why one part of a record (its image or its text) was filtered out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `image_url` absent, `null` or blank.
    ImageUrlMissing,
    /// `image_url` is not an `http://` or `https://` URL (`htp://x`, `not a url`, `ftp://..`).
    ImageUrlNotHttp,
    /// `image_url` has no host (`https://`, `http:///a.jpg`).
    ImageUrlNoHost,
    /// `image_url` is malformed otherwise: whitespace or control characters, a bad host or
    /// port, longer than [`MAX_URL_LEN`].
    ImageUrlMalformed,
    /// Neither `title` nor `description` is present.
    TextMissing,
    /// `title` and `description` are present but empty or whitespace only.
    TextEmpty,
}

impl Reason {
    /// Every reason, in report order.
    pub const ALL: [Reason; 6] = [
        Reason::ImageUrlMissing,
        Reason::ImageUrlNotHttp,
        Reason::ImageUrlNoHost,
        Reason::ImageUrlMalformed,
        Reason::TextMissing,
        Reason::TextEmpty,
    ];

    /// A short stable label, e.g. `image_url not http(s)`.
    pub fn label(self) -> &'static str {
        match self {
            Reason::ImageUrlMissing => "image_url missing",
            Reason::ImageUrlNotHttp => "image_url not http(s)",
            Reason::ImageUrlNoHost => "image_url without host",
            Reason::ImageUrlMalformed => "image_url malformed",
            Reason::TextMissing => "text missing",
            Reason::TextEmpty => "text empty",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The verdict on one record: a task or the reason against it, for each part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The image task, or why there is none.
    pub image: Result<EmbedImage, Reason>,
    /// The text task, or why there is none.
    pub text: Result<EmbedText, Reason>,
}

impl Validated {
    /// Both parts are valid.
    pub fn is_complete(&self) -> bool {
        self.image.is_ok() && self.text.is_ok()
    }
    /// No part is valid: the record gives no task.
    pub fn is_rejected(&self) -> bool {
        self.image.is_err() && self.text.is_err()
    }
    /// The reasons of the invalid parts (none, one or two).
    pub fn reasons(&self) -> impl Iterator<Item = Reason> + '_ {
        [self.image.as_ref().err(), self.text.as_ref().err()]
            .into_iter()
            .flatten()
            .copied()
    }
}

/// Parses one JSON line into a [`Product`].
///
/// # Errors
///
/// Invalid JSON, a missing or non-integer `product_id`, or a field of the wrong type.
pub fn parse_line(line: &str) -> Result<Product, serde_json::Error> {
    serde_json::from_str(line)
}

/// Validates both parts of a record and builds its tasks.
pub fn validate(p: &Product) -> Validated {
    let image = match p.image_url.as_deref() {
        None => Err(Reason::ImageUrlMissing),
        Some(u) => check_image_url(u).map(|url| EmbedImage {
            product_id: p.product_id,
            url: url.to_owned(),
        }),
    };
    let text = product_text(p).map(|text| EmbedText {
        product_id: p.product_id,
        text,
    });
    Validated { image, text }
}

/// The text to embed: the trimmed `title` and `description` that are not blank, joined by
/// `"\n"` (Python: `"\n".join(s.strip() for s in (title, description) if s and s.strip())`).
///
/// # Errors
///
/// [`Reason::TextMissing`] if both are absent, [`Reason::TextEmpty`] if what is present is
/// blank.
pub fn product_text(p: &Product) -> Result<String, Reason> {
    if p.title.is_none() && p.description.is_none() {
        return Err(Reason::TextMissing);
    }
    let parts: Vec<&str> = [p.title.as_deref(), p.description.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(Reason::TextEmpty);
    }
    Ok(parts.join("\n"))
}

/// Checks an image URL and returns it trimmed of surrounding whitespace.
///
/// Accepted: `http://` or `https://` (any case), then a host — a DNS name or IPv4 address of
/// letters, digits, `-` and `.` (non-ASCII letters allowed), or an IPv6 address in brackets —,
/// an optional port of 1 to 65535, then anything without whitespace or control characters.
/// An optional `user@` before the host is allowed.
///
/// # Errors
///
/// The [`Reason`] for a blank, non-http(s), hostless or malformed URL.
pub fn check_image_url(url: &str) -> Result<&str, Reason> {
    let url = url.trim();
    if url.is_empty() {
        return Err(Reason::ImageUrlMissing);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(Reason::ImageUrlNotHttp);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Reason::ImageUrlNotHttp);
    }
    if url.len() > MAX_URL_LEN || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Reason::ImageUrlMalformed);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(Reason::ImageUrlMalformed);
        };
        if addr.is_empty()
            || !addr
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(Reason::ImageUrlMalformed);
        }
        match after {
            "" => (addr, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return Err(Reason::ImageUrlMalformed),
            },
        }
    } else {
        match host_port.split_once(':') {
            Some((h, port)) => (h, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(Reason::ImageUrlNoHost);
    }
    if !host_port.starts_with('[') {
        let name = host.strip_suffix('.').unwrap_or(host);
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !name.split('.').all(label_ok) {
            return Err(Reason::ImageUrlMalformed);
        }
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65_535));
        if !valid {
            return Err(Reason::ImageUrlMalformed);
        }
    }
    Ok(url)
}

/// What reading and filtering a file of product records gave.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Lines read.
    pub lines: u64,
    /// Blank lines (skipped, not records).
    pub blank_lines: u64,
    /// Lines that are not a record: (1-based line number, parse error).
    pub unparseable: Vec<(u64, String)>,
    /// Parsed records with both parts valid.
    pub complete: u64,
    /// Parsed records with one valid part.
    pub partial: u64,
    /// Parsed records with no valid part.
    pub rejected: u64,
    /// Filtered parts by reason.
    pub filtered: BTreeMap<Reason, u64>,
    /// The image tasks of the valid parts, in file order.
    pub images: Vec<EmbedImage>,
    /// The text tasks of the valid parts, in file order.
    pub texts: Vec<EmbedText>,
}

impl Filtered {
    /// Non-blank lines: parsed records plus unparseable lines.
    pub fn records(&self) -> u64 {
        self.parsed() + self.unparseable.len() as u64
    }
    /// Records that parsed.
    pub fn parsed(&self) -> u64 {
        self.complete + self.partial + self.rejected
    }
    /// Filtered parts (images and texts), all reasons.
    pub fn filtered_parts(&self) -> u64 {
        self.filtered.values().sum()
    }
    /// Every part of every parsed record is either a task or a filtered part:
    /// `images + texts + filtered == 2 * parsed`.
    pub fn is_accounted(&self) -> bool {
        self.images.len() as u64 + self.texts.len() as u64 + self.filtered_parts()
            == 2 * self.parsed()
    }
    /// Counts one line (numbered from 1) and returns the verdict on its record, or `None` for
    /// a blank or unparseable line. The tasks are returned, not kept: [`filter_records`] keeps
    /// them, the producer enqueues them.
    pub fn count_line(&mut self, line_no: u64, line: &str) -> Option<Validated> {
        self.lines += 1;
        if line.trim().is_empty() {
            self.blank_lines += 1;
            return None;
        }
        let product = match parse_line(line) {
            Ok(p) => p,
            Err(e) => {
                self.unparseable.push((line_no, e.to_string()));
                return None;
            }
        };
        let v = validate(&product);
        if v.is_complete() {
            self.complete += 1;
        } else if v.is_rejected() {
            self.rejected += 1;
        } else {
            self.partial += 1;
        }
        for reason in v.reasons() {
            *self.filtered.entry(reason).or_default() += 1;
        }
        Some(v)
    }

    /// `image_url missing=3, image_url not http(s)=5, ...` (every reason, in report order).
    pub fn reasons_line(&self) -> String {
        Reason::ALL
            .iter()
            .map(|r| {
                format!(
                    "{}={}",
                    r.label(),
                    self.filtered.get(r).copied().unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads product records (JSON lines) and filters them, as the producer does.
///
/// # Errors
///
/// A read error.
pub fn filter_records(reader: impl std::io::BufRead) -> std::io::Result<Filtered> {
    let mut f = Filtered::default();
    for (i, line) in reader.lines().enumerate() {
        let Some(v) = f.count_line(i as u64 + 1, &line?) else {
            continue;
        };
        if let Ok(t) = v.image {
            f.images.push(t);
        }
        if let Ok(t) = v.text {
            f.texts.push(t);
        }
    }
    Ok(f)
}

/// Reads and filters a file of product records ([`filter_records`]).
///
/// # Errors
///
/// The file cannot be opened or read; the message names it.
pub fn filter_file(path: &std::path::Path) -> std::io::Result<Filtered> {
    let file = std::fs::File::open(path).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
    })?;
    filter_records(std::io::BufReader::new(file))
}

/// The default data file: `examples/data/products.jsonl` in this crate's source tree.
pub fn default_data_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/products.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(title: Option<&str>, desc: Option<&str>, url: Option<&str>) -> Product {
        Product {
            product_id: 7,
            title: title.map(Into::into),
            description: desc.map(Into::into),
            image_url: url.map(Into::into),
            ..Product::default()
        }
    }

    #[test]
    fn good_urls_pass_and_are_trimmed() {
        for u in [
            "https://img.example.com/p/1.jpg",
            "http://cdn3.example.net/i/ab12.png?w=512&h=512#top",
            "HTTPS://Example.COM",
            "https://images.example.org:8443/p/1.webp",
            "http://user@example.com/a.jpg",
            "http://[2001:db8::1]:8080/a.jpg",
            "http://127.0.0.1/a.jpg",
            "https://bücher.example/cover.jpg",
            "https://example.com./a.jpg",
        ] {
            assert_eq!(check_image_url(u), Ok(u), "{u}");
        }
        assert_eq!(
            check_image_url("  https://a.example/x.jpg\n"),
            Ok("https://a.example/x.jpg")
        );
    }

    #[test]
    fn bad_urls_are_rejected_with_their_reason() {
        use Reason::*;
        for (u, why) in [
            ("", ImageUrlMissing),
            ("   ", ImageUrlMissing),
            ("htp://x", ImageUrlNotHttp),
            ("not a url", ImageUrlNotHttp),
            ("ftp://files.example.com/a.jpg", ImageUrlNotHttp),
            ("//cdn.example.com/a.jpg", ImageUrlNotHttp),
            ("img.example.com/a.jpg", ImageUrlNotHttp),
            ("javascript:alert(1)", ImageUrlNotHttp),
            ("https://", ImageUrlNoHost),
            ("http:///a.jpg", ImageUrlNoHost),
            ("https://:443/a.jpg", ImageUrlNoHost),
            ("https://user@/a.jpg", ImageUrlNoHost),
            ("https://exa mple.com/a.jpg", ImageUrlMalformed),
            ("https://example.com/a b.jpg", ImageUrlMalformed),
            ("https://example..com/a.jpg", ImageUrlMalformed),
            ("https://-example.com/", ImageUrlMalformed),
            ("https://exa_mple.com/", ImageUrlMalformed),
            ("https://example.com:99999/", ImageUrlMalformed),
            ("https://example.com:0/", ImageUrlMalformed),
            ("https://example.com:/", ImageUrlMalformed),
            ("https://example.com:8o/", ImageUrlMalformed),
            ("http://[::1/a.jpg", ImageUrlMalformed),
            ("http://[zz]/a.jpg", ImageUrlMalformed),
        ] {
            assert_eq!(check_image_url(u), Err(why), "{u:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(check_image_url(&long), Err(Reason::ImageUrlMalformed));
    }

    #[test]
    fn text_joins_trimmed_non_blank_parts() {
        let p = product(Some("  Red shoe "), Some("\tLeather, size 42\n"), None);
        assert_eq!(product_text(&p).unwrap(), "Red shoe\nLeather, size 42");
        let p = product(None, Some("only a description"), None);
        assert_eq!(product_text(&p).unwrap(), "only a description");
        let p = product(Some("only a title"), Some("   "), None);
        assert_eq!(product_text(&p).unwrap(), "only a title");
        assert_eq!(
            product_text(&product(None, None, None)),
            Err(Reason::TextMissing)
        );
        assert_eq!(
            product_text(&product(Some(""), Some(" \t\n"), None)),
            Err(Reason::TextEmpty)
        );
        assert_eq!(
            product_text(&product(Some(" "), None, None)),
            Err(Reason::TextEmpty)
        );
    }

    #[test]
    fn validate_judges_each_part_on_its_own() {
        let v = validate(&product(
            Some("Shoe"),
            None,
            Some("https://a.example/1.jpg"),
        ));
        assert!(v.is_complete() && !v.is_rejected());
        assert_eq!(
            v.image,
            Ok(EmbedImage {
                product_id: 7,
                url: "https://a.example/1.jpg".into()
            })
        );
        assert_eq!(v.reasons().count(), 0);

        let v = validate(&product(Some("Shoe"), None, Some("htp://x")));
        assert!(!v.is_complete() && !v.is_rejected());
        assert!(v.text.is_ok());
        assert_eq!(v.reasons().collect::<Vec<_>>(), [Reason::ImageUrlNotHttp]);

        let v = validate(&product(Some(" "), None, None));
        assert!(v.is_rejected());
        assert_eq!(
            v.reasons().collect::<Vec<_>>(),
            [Reason::ImageUrlMissing, Reason::TextEmpty]
        );
    }

    #[test]
    fn lines_parse_with_absent_null_and_unknown_fields() {
        let p = parse_line(
            r#"{"product_id":3,"title":null,"extra":[1,2],"image_url":"https://a.b/c"}"#,
        )
        .unwrap();
        assert_eq!(p.product_id, 3);
        assert_eq!(p.title, None);
        assert_eq!(p.image_url.as_deref(), Some("https://a.b/c"));
        assert!(parse_line(r#"{"title":"no id"}"#).is_err());
        assert!(parse_line(r#"{"product_id":-1}"#).is_err());
        assert!(parse_line(r#"{"product_id":1,"title":"#).is_err());
    }

    #[test]
    fn payload_is_the_msgpack_map_other_languages_write() {
        // What Python's msgpack.packb({"product_id": 42, "text": "red shoe"}) produces.
        let mut want = vec![0x82, 0xaa];
        want.extend_from_slice(b"product_id");
        want.extend_from_slice(&[0x2a, 0xa4]);
        want.extend_from_slice(b"text");
        want.push(0xa8);
        want.extend_from_slice(b"red shoe");
        let task = EmbedText {
            product_id: 42,
            text: "red shoe".into(),
        };
        assert_eq!(rmp_serde::to_vec_named(&task).unwrap(), want);
        assert_eq!(rmp_serde::from_slice::<EmbedText>(&want).unwrap(), task);
        assert_eq!(EmbedText::QUEUE, "texts");
        assert_eq!(EmbedImage::QUEUE, "images");
        assert_eq!(EmbedImage::OPTIONS.max_retries, 3);
    }
}
