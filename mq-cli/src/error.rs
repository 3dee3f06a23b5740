//! [`CliError`]: everything that makes `mq` exit non-zero, printed as one `error: ...` line.

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// From mq-core: Redis unreachable or a command failed, bad URL, bad queue name.
    #[error(transparent)]
    Core(#[from] mq_core::Error),
    /// Connecting to Redis failed.
    #[error("cannot connect to Redis at {url}")]
    Unreachable {
        /// The URL, password hidden.
        url: String,
        /// Why.
        #[source]
        source: mq_core::Error,
    },
    /// The queue has no stream.
    #[error("no such queue {queue:?} (key {stream} does not exist)")]
    NoSuchQueue {
        /// The queue name.
        queue: String,
        /// Its stream key.
        stream: String,
    },
    /// `mq runs show` of a run that does not exist (or expired, a week after it ended).
    #[error("no such run {0:?}")]
    NoSuchRun(String),
    /// A command-line argument that clap cannot check (a deadline, say).
    #[error("{0}")]
    BadArgument(String),
    /// The argument of `mq enqueue` is not JSON.
    #[error("invalid JSON payload: {0}")]
    BadJson(String),
    /// The JSON could not be turned into MessagePack.
    #[error("cannot encode the payload as MessagePack: {0}")]
    Encode(String),
    /// Not a stream id.
    #[error("bad dead-letter id {0:?}: expected <unix-ms>-<seq> as shown by `mq dead list`")]
    BadId(String),
    /// A well-formed id that is not in the dead stream.
    #[error("no dead task {dead_id} in queue {queue:?}")]
    NoSuchDeadTask {
        /// The queue name.
        queue: String,
        /// The id asked for.
        dead_id: String,
    },
    /// `mq dead replay` with ids of which some were not found (the others were replayed).
    #[error("{missing} of the {requested} dead tasks given not found in queue {queue:?}")]
    ReplayMissing {
        /// The queue name.
        queue: String,
        /// Ids given.
        requested: usize,
        /// Ids not found.
        missing: usize,
    },
    /// `mq dead replay` with ids of dead entries that are not tasks (the others were
    /// replayed).
    #[error(
        "{} of the {requested} dead tasks given not replayed: not a task (no id, name, payload \
         or enqueued_at): {}",
        skipped.len(),
        skipped.join(" ")
    )]
    ReplaySkipped {
        /// Ids given.
        requested: usize,
        /// Ids of the entries that are not tasks.
        skipped: Vec<String>,
    },
    /// `mq dead replay` with ids of dead unique tasks whose unique key another live task holds
    /// by now (they stay dead; the others were replayed).
    #[error(
        "{} of the {requested} dead tasks given not replayed: another live task holds their \
         unique key (replay them once it is done): {}",
        duplicates.len(),
        duplicates.join(" ")
    )]
    ReplayDuplicates {
        /// Ids given.
        requested: usize,
        /// Ids of the dead unique tasks left dead.
        duplicates: Vec<String>,
    },
    /// `mq dead purge` or `mq dead replay --all` without `--yes` and without a terminal to ask on, or the answer was no.
    #[error("{0}")]
    NotConfirmed(String),
    /// `mq web` refused to start (an address without a token, a port in use).
    #[error("{0}")]
    Refused(String),
    /// Writing the output or reading the answer failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// `err` and its sources on one line, `: `-separated, without repeating a source whose text
/// is already part of the line, and with any password of `url` hidden.
pub(crate) fn one_line(err: &(dyn std::error::Error + 'static), url: &str) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = e.source();
    }
    let redacted = redact_url(url);
    if redacted != url {
        // As is, and as `{:?}` writes it inside quotes (mq-core's errors quote the URL).
        line = line
            .replace(url, &redacted)
            .replace(&escaped(url), &escaped(&redacted));
    }
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s` as `{:?}` writes it, without the quotes.
fn escaped(s: &str) -> String {
    let quoted = format!("{s:?}");
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_owned()
}

/// `url` with the password (if any) replaced by `***` (mq-core's, which the tests below
/// also hold the CLI to).
pub(crate) use mq_core::redis::conn::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn sources_are_joined_on_one_line() {
        let e = Outer(std::io::Error::other("inner\nwith newline"));
        assert_eq!(one_line(&e, "redis://h/"), "outer: inner with newline");
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact_url("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact_url("redis://:secret@h/"), "redis://:***@h/");
        assert_eq!(redact_url("redis://h:6379/"), "redis://h:6379/");
        let e = CliError::BadJson("at redis://u:secret@h/".into());
        assert_eq!(
            one_line(&e, "redis://u:secret@h/"),
            "invalid JSON payload: at redis://u:***@h/"
        );
        let url = r#"redis://:se"c\ret@h:x/"#;
        let e = CliError::BadJson(format!("bad url {url:?}"));
        assert_eq!(
            one_line(&e, url),
            r#"invalid JSON payload: bad url "redis://:***@h:x/""#
        );
    }
}
