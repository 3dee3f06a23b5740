//! mq-core's shape, checked from its sources: the modules' references to each other form no
//! circle (every arrow points down a layer), and no file grows past a size a reader can hold,
//! except the ones listed with the reason.
//!
//! An arrow `a -> b` is any path in `a`'s code (outside comments and its `#[cfg(test)]`
//! module) that names module `b` or an item in it: `crate::b::..`, `super::..` (relative to
//! `a`'s parent), a child module's name in a folder's `mod.rs`, and `crate::Item` for an item
//! that `lib.rs` re-exports from `b`. `lib.rs` itself is the facade and is no node.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The longest a file may be, in lines.
const MAX_LINES: usize = 700;

/// Files allowed to be longer, each with the reason.
const LONG_FILES: &[(&str, &str)] = &[];

/// Every `.rs` file under `dir`, as (module path, file).
fn modules(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // A package's binaries are crate roots of their own.
            if path == root.join("bin") {
                continue;
            }
            modules(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
}

/// `src` without comments and without its `#[cfg(test)]` module (the rest of the file).
fn code(src: &str) -> String {
    let src = match src.find("#[cfg(test)]\nmod tests") {
        Some(i) => &src[..i],
        None => src,
    };
    src.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal (a URL) cuts the line short: harmless here.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path in `code` that starts with `head` (`crate::` or `super::`), with use-tree
/// groups (`{a, b::{c, d}}`) expanded: each as its segments after `head`.
fn paths(code: &str, head: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(head) {
        let before = rest[..i].chars().last();
        rest = &rest[i + head.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let b = rest.as_bytes();
        let mut at = 0;
        tree(b, &mut at, Vec::new(), &mut out);
    }
    out
}

/// Parses one use tree of `b` from `*at` (an identifier path, a `{..}` group, or both), adding
/// its paths with `prefix` to `out`.
fn tree(b: &[u8], at: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip = |at: &mut usize| {
        while *at < b.len() && b[*at].is_ascii_whitespace() {
            *at += 1;
        }
    };
    loop {
        skip(at);
        if b.get(*at) == Some(&b'{') {
            *at += 1;
            loop {
                skip(at);
                match b.get(*at) {
                    None => return,
                    Some(b'}') => {
                        *at += 1;
                        return;
                    }
                    Some(b',') => *at += 1,
                    Some(_) => {
                        let before = *at;
                        tree(b, at, prefix.clone(), out);
                        if *at == before {
                            *at += 1;
                        }
                    }
                }
            }
        }
        let start = *at;
        while *at < b.len() && (b[*at].is_ascii_alphanumeric() || b[*at] == b'_') {
            *at += 1;
        }
        let ident = String::from_utf8_lossy(&b[start..*at]).into_owned();
        if !ident.is_empty() && ident != "self" {
            prefix.push(ident);
        }
        if b[*at..].starts_with(b"::") {
            *at += 2;
            continue;
        }
        // `x as y`: the name is `x`'s.
        skip(at);
        if b[*at..].starts_with(b"as ") {
            *at += 3;
            skip(at);
            while *at < b.len() && (b[*at].is_ascii_alphanumeric() || b[*at] == b'_') {
                *at += 1;
            }
        }
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
}

/// The names each module re-exports (`pub use error::{Error, Result}` in `lib.rs`, `pub use
/// stats::QueueStats` in a folder's `mod.rs`), each with the module it comes from.
type Reexports = BTreeMap<String, BTreeMap<String, String>>;

/// The module that path `segments` (from the crate root) names: its longest module prefix,
/// unless the next segment is a name that module re-exports: then the module it comes from
/// (a facade is no dependency of its users).
fn resolve(
    segments: &[String],
    mods: &BTreeMap<String, PathBuf>,
    reexports: &Reexports,
) -> Option<String> {
    let mut segments = segments.to_vec();
    for _ in 0..8 {
        let n = (0..=segments.len())
            .rev()
            .find(|n| mods.contains_key(&segments[..*n].join("::")))?;
        let m = segments[..n].join("::");
        match segments
            .get(n)
            .and_then(|name| reexports.get(&m)?.get(name))
        {
            Some(target) if *target != m => {
                let mut next: Vec<String> = target.split("::").map(str::to_owned).collect();
                next.extend(segments[n..].iter().cloned());
                segments = next;
            }
            _ => return Some(m),
        }
    }
    None
}

/// The names module `m` (whose code is `src`) re-exports with `pub use` or `pub(crate) use`,
/// each with the module it names.
fn reexports_of(m: &str, src: &str, mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let here: Vec<String> = m
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for stmt in src.split(';') {
        let stmt = stmt.trim();
        let Some(body) = stmt
            .strip_prefix("pub use ")
            .or_else(|| stmt.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let (base, rel) = if let Some(b) = body.strip_prefix("crate::") {
            (Vec::new(), b)
        } else if let Some(b) = body.strip_prefix("super::") {
            (here[..here.len().saturating_sub(1)].to_vec(), b)
        } else {
            (here.clone(), body)
        };
        for p in paths(&format!(" @::{rel}"), "@::") {
            let Some(name) = p.last() else { continue };
            let mut full = base.clone();
            full.extend(p.iter().cloned());
            if let Some(target) = resolve(&full, mods, &Reexports::new()) {
                if target != m {
                    out.insert(name.clone(), target);
                }
            }
        }
    }
    out
}

/// The arrows between the modules of the package whose sources are in `src` (relative to
/// mq-core's directory).
fn graph(src: &str) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
    let mut mods = BTreeMap::new();
    modules(&root, &root, &mut mods);
    let mut reexports = Reexports::new();
    for (m, file) in &mods {
        let src = code(&fs::read_to_string(file).unwrap());
        reexports.insert(m.clone(), reexports_of(m, &src, &mods));
    }
    let mut edges = BTreeMap::new();
    for (m, file) in &mods {
        if m.is_empty() {
            continue;
        }
        let src = code(&fs::read_to_string(file).unwrap());
        let here: Vec<String> = m.split("::").map(str::to_owned).collect();
        let parent = &here[..here.len() - 1];
        let mut to = BTreeSet::new();
        for p in paths(&src, "crate::") {
            to.extend(resolve(&p, &mods, &reexports));
        }
        for p in paths(&src, "super::") {
            let mut full = parent.to_vec();
            full.extend(p);
            // `super::Item` names the parent module itself.
            to.insert(resolve(&full, &mods, &reexports).unwrap_or(parent.join("::")));
        }
        // A folder's `mod.rs` naming its children (`fetcher::Fetcher`).
        for child in mods.keys() {
            if let Some(name) = child.strip_prefix(&format!("{m}::")) {
                if !name.contains("::") && src.contains(&format!("{name}::")) {
                    to.insert(child.clone());
                }
            }
        }
        to.remove(m);
        to.remove("");
        edges.insert(m.clone(), to);
    }
    edges
}

/// The strongly connected components of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The circles among the modules of the package in `src`, as a report (empty: none).
fn circle_report(src: &str) -> String {
    let edges = graph(src);
    // `MQ_PRINT_LAYERS=1 cargo test -p mq-core --test layers -- --nocapture` prints them all.
    if std::env::var_os("MQ_PRINT_LAYERS").is_some() {
        for (m, to) in &edges {
            println!("{src}: {m} -> {to:?}");
        }
    }
    let mut report = String::new();
    for c in circles(&edges) {
        report.push_str(&format!("{src}: circle of {}: {}\n", c.len(), c.join(", ")));
        for m in &c {
            let inside: Vec<&String> = edges[m].iter().filter(|t| c.contains(t)).collect();
            report.push_str(&format!("  {m} -> {inside:?}\n"));
        }
    }
    report
}

#[test]
fn mq_core_has_no_import_circle() {
    let report = circle_report("src");
    assert!(report.is_empty(), "{report}");
}

#[test]
fn mq_cli_and_the_examples_have_no_import_circle() {
    let report = circle_report("../mq-cli/src") + &circle_report("../examples/src");
    assert!(report.is_empty(), "{report}");
}

/// The check itself finds a circle: two modules naming each other through `crate::`, `super::`
/// and a `lib.rs` re-export.
#[test]
fn the_circle_check_sees_each_kind_of_arrow() {
    let mut mods = BTreeMap::new();
    for m in [
        "",
        "error",
        "redis",
        "redis::conn",
        "worker",
        "worker::fetcher",
    ] {
        mods.insert(m.to_owned(), PathBuf::new());
    }
    let reexports = Reexports::from([(
        String::new(),
        BTreeMap::from([("Error".to_owned(), "error".to_owned())]),
    )]);
    let p = paths("use crate::{Error, redis::conn::{Tls, Url}};", "crate::");
    let to: BTreeSet<_> = p
        .iter()
        .filter_map(|p| resolve(p, &mods, &reexports))
        .collect();
    assert_eq!(
        to,
        BTreeSet::from(["error".to_owned(), "redis::conn".to_owned()])
    );
    let edges = BTreeMap::from([
        (
            "error".to_owned(),
            BTreeSet::from(["redis::conn".to_owned()]),
        ),
        (
            "redis::conn".to_owned(),
            BTreeSet::from(["error".to_owned()]),
        ),
        (
            "worker".to_owned(),
            BTreeSet::from(["worker::fetcher".to_owned()]),
        ),
        (
            "worker::fetcher".to_owned(),
            BTreeSet::from(["error".to_owned()]),
        ),
    ]);
    assert_eq!(
        circles(&edges),
        [vec!["error".to_owned(), "redis::conn".to_owned()]]
    );
}

#[test]
fn no_file_of_mq_core_is_over_700_lines_but_the_listed_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut mods = BTreeMap::new();
    modules(&root, &root, &mut mods);
    let mut long = Vec::new();
    for file in mods.values() {
        let lines = fs::read_to_string(file).unwrap().lines().count();
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if lines > MAX_LINES && !LONG_FILES.iter().any(|(f, _)| *f == rel) {
            long.push(format!("{rel}: {lines} lines"));
        }
    }
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}
