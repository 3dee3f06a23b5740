//! Output helpers: aligned text tables, durations, times, JSON printing.

use std::{
    io::Write,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::error::CliError;

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A text table: a header row and rows of cells, padded to the widest cell of each column,
/// columns two spaces apart.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles and alignments.
    pub(crate) fn new(header: &[(&'static str, Align)]) -> Self {
        Self {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are blank, extra ones dropped).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines without trailing spaces, each ending in `\n`.
    pub(crate) fn render(&self) -> String {
        let widths: Vec<usize> = self
            .header
            .iter()
            .enumerate()
            .map(|(i, (title, _))| {
                self.rows
                    .iter()
                    .map(|r| cell(r, i).chars().count())
                    .chain([title.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|(t, _)| (*t).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.header.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let text = cell(row, i);
                let pad = widths[i].saturating_sub(text.chars().count());
                match align {
                    Align::Left => {
                        line.push_str(text);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(text);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Cell `i` of `row`, blank if missing.
fn cell(row: &[String], i: usize) -> &str {
    row.get(i).map(String::as_str).unwrap_or("")
}

/// Writes `text` to stdout.
pub(crate) fn print(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes `value` to stdout as pretty JSON and a newline.
pub(crate) fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    print(&format!("{text}\n"))
}

/// A short human duration: `850ms`, `4.2s`, `3m05s`, `2h07m`, `3d04h`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3_600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m", s / 3_600, s % 3_600 / 60)
    } else {
        format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600)
    }
}

/// The current unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How long ago unix-ms time `at` was: `3m05s ago` (`just now` for future times).
pub(crate) fn ago(at_ms: u64) -> String {
    match now_ms().checked_sub(at_ms) {
        Some(d) if d >= 1 => format!("{} ago", duration(Duration::from_millis(d))),
        _ => "just now".into(),
    }
}

/// Unix-ms time `at` as RFC 3339 UTC with milliseconds.
pub(crate) fn timestamp(at_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at_ms)).to_string()
}

/// A rate with one decimal, or `-` when unknown.
pub(crate) fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.1}"))
}

/// `text` cut to `max` characters with `...` at the end if longer, newlines as spaces.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max.saturating_sub(3)).collect();
        cut.push_str("...");
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_aligned() {
        let mut t = Table::new(&[("QUEUE", Align::Left), ("BACKLOG", Align::Right)]);
        t.row(vec!["images".into(), "12034".into()]);
        t.row(vec!["t".into(), "5".into()]);
        assert_eq!(
            t.render(),
            "QUEUE   BACKLOG\nimages    12034\nt             5\n"
        );
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(4_240)), "4.2s");
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(7_620)), "2h07m");
        assert_eq!(duration(Duration::from_secs(273_600)), "3d04h");
    }

    #[test]
    fn times_and_text() {
        assert_eq!(timestamp(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(truncate("abcdef", 5), "ab...");
        assert_eq!(truncate("a\nb", 5), "a b");
        assert_eq!(rate(None), "-");
        assert_eq!(rate(Some(2.25)), "2.2");
    }
}
