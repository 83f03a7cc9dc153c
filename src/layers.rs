//! The layer test: reads `src/`, finds every import between its files (`use` trees,
//! `crate::`/`super::`/`self::` paths, child modules named by `mod x;`), and fails on
//! an import from a lower floor to a higher one, between two families of one floor,
//! between two commands, or on any cycle. Its data is the floor table in the doc
//! comment of `src/lib.rs`, so the table people read is the one enforced.
//!
//! Test code counts too (`#[cfg(test)]` modules): a test that needs a higher floor
//! lives on that floor. Comments and string literals are skipped; the source is
//! rustfmt'ed, which the inline-module tracking relies on (CI checks `cargo fmt`).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Imports allowed between two families of one floor (importer, imported).
const SIDEWAYS: &[(&str, &str)] = &[("messages", "sanitize")];
/// A family whose files may import only the family's root among themselves.
const ROOT_ONLY: &[&str] = &["commands"];
/// What the vault core must never name (`src/lib.rs`: no file system, network,
/// processes or prompts).
const CORE_FORBIDDEN: &[&str] = &["std::fs", "std::net", "std::process", "rpassword"];

/// The floor table of `src/lib.rs`: `//! | 4.5 | `file` | …` rows, floor → families.
fn floor_table(lib: &str) -> BTreeMap<String, f64> {
    let mut floors = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(floor) = cells.first().and_then(|c| c.parse::<f64>().ok()) else {
            continue;
        };
        for name in cells[1].split(',') {
            let name = name.trim().trim_matches('`');
            assert!(
                !name.is_empty(),
                "an empty module name in the floor table: {line}"
            );
            assert!(
                floors.insert(name.to_owned(), floor).is_none(),
                "{name} is in the floor table twice"
            );
        }
    }
    floors
}

/// Every `.rs` file under `dir`, as (module path, file).
fn modules(src: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            modules(src, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] || parts == ["layers"] {
                continue; // the root, which declares every module, and this test
            }
            out.insert(parts.join("::"), path);
        }
    }
}

/// The source without comments, string and character literals (each literal kept as
/// an empty one, and the line breaks inside them kept), so that text never reads as a
/// path and lines keep their numbers.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let len = rest.find("*/").map_or(rest.len(), |j| j + 2);
            out.extend(rest[..len].matches('\n'));
            i += len;
        } else if (b[i] == b'r' || rest.starts_with("br")) && (i == 0 || !ident(b[i - 1])) && {
            let s = rest.trim_start_matches('b').strip_prefix('r').unwrap_or("");
            s.trim_start_matches('#').starts_with('"')
        } {
            let after_r = rest.find('r').unwrap() + 1;
            let hashes = rest[after_r..].bytes().take_while(|&c| c == b'#').count();
            let open = after_r + hashes + 1;
            let close = format!("\"{}", "#".repeat(hashes));
            let end = rest[open..]
                .find(&close)
                .map_or(rest.len(), |j| open + j + close.len());
            out.push_str("\"\"");
            out.extend(rest[..end].matches('\n'));
            i += end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            out.push_str("\"\"");
            out.extend(src[i..j.min(b.len())].matches('\n'));
            i = j + 1;
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{1F600}'), else a lifetime or label.
            let lit = if rest[1..].starts_with('\\') {
                rest[2..].find('\'').map(|j| j + 3)
            } else {
                let mut cs = rest[1..].char_indices();
                match (cs.next(), cs.next()) {
                    (Some((_, _)), Some((j, '\''))) => Some(j + 2),
                    _ => None,
                }
            };
            match lit {
                Some(len) => {
                    out.push_str("' '");
                    i += len;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d as e}}`) into paths.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let mut base = prefix.to_vec();
        base.extend(
            head.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let (mut depth, mut start) = (0, 0);
        for (k, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..k], &base, out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &base, out);
        return;
    }
    let tree = tree.split(" as ").next().unwrap_or(tree);
    let mut path = prefix.to_vec();
    path.extend(
        tree.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from),
    );
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    out.push(path);
}

/// A path as written, and the inline modules (`mod tests {`) it was written in.
type Written = (Vec<String>, Vec<String>);

/// Each line's stack of inline modules (`mod tests {`, by rustfmt's indentation), and
/// the child modules the file declares (`mod x;`).
fn inline_modules(code: &str) -> (Vec<Vec<String>>, BTreeSet<String>) {
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut line_stack = Vec::new();
    let mut kids = BTreeSet::new();
    for line in code.lines() {
        if stack
            .last()
            .is_some_and(|(indent, _)| line == format!("{indent}}}"))
        {
            stack.pop();
        }
        line_stack.push(stack.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>());
        let trimmed = line.trim_start();
        let decl = trimmed
            .strip_prefix("pub ")
            .or_else(|| trimmed.strip_prefix("pub(crate) "))
            .or_else(|| trimmed.strip_prefix("pub(super) "))
            .unwrap_or(trimmed);
        if let Some(name) = decl.strip_prefix("mod ") {
            let indent = &line[..line.len() - trimmed.len()];
            if let Some(name) = name.strip_suffix(" {") {
                stack.push((indent.to_owned(), name.to_owned()));
            } else if let Some(name) = name.strip_suffix(';')
                && stack.is_empty()
            {
                kids.insert(name.to_owned());
            }
        }
    }
    (line_stack, kids)
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Every path of `code`'s `use` trees, with the byte offset of its `use`.
fn use_paths(code: &str) -> Vec<(Vec<String>, usize)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut offset = 0;
    while let Some(k) = code[offset..].find("use ") {
        let at = offset + k;
        offset = at + 4;
        if at > 0 && (is_ident(bytes[at - 1]) || bytes[at - 1] == b':') {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        let mut found = Vec::new();
        expand(&code[at + 4..at + end], &[], &mut found);
        out.extend(found.into_iter().map(|p| (p, at)));
    }
    out
}

/// Every `a::b…` path written anywhere in `code`, with its byte offset.
fn bare_paths(code: &str) -> Vec<(Vec<String>, usize)> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) || (i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut segs = Vec::new();
        loop {
            let s = j;
            while j < bytes.len() && is_ident(bytes[j]) {
                j += 1;
            }
            segs.push(code[s..j].to_owned());
            if code[j..].starts_with("::") && j + 2 < bytes.len() && is_ident(bytes[j + 2]) {
                j += 2;
            } else {
                break;
            }
        }
        if segs.len() > 1 {
            out.push((segs, i));
        }
        i = j.max(i + 1);
    }
    out
}

/// The module path `path` names, written in `module` inside the inline modules
/// `inline`; `None` for a path outside the crate.
fn resolve(module: &str, (path, inline): &Written, kids: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut cur: Vec<String> = module
        .split("::")
        .map(String::from)
        .chain(inline.iter().cloned())
        .collect();
    match path.first().map(String::as_str) {
        Some("crate") => Some(path[1..].to_vec()),
        Some("super" | "self") => {
            let mut rest = path.as_slice();
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        cur.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            cur.extend(rest.iter().cloned());
            Some(cur)
        }
        // A child module named bare (`parse::file(…)` in `vault/mod.rs`).
        Some(first) if inline.is_empty() && kids.contains(first) => {
            cur.extend(path.iter().cloned());
            Some(cur)
        }
        _ => None,
    }
}

/// The modules `module` (in file `text`) imports, resolved to the longest known
/// module path.
fn imports(module: &str, text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let code = strip(text);
    let (line_stack, kids) = inline_modules(&code);
    let mut line_of = Vec::with_capacity(code.len());
    for (n, l) in code.lines().enumerate() {
        line_of.extend(std::iter::repeat_n(n, l.len() + 1));
    }
    let inline_at = |pos: usize| line_stack[line_of[pos.min(line_of.len() - 1)]].clone();
    let written = use_paths(&code)
        .into_iter()
        .chain(bare_paths(&code))
        .map(|(path, at)| (path, inline_at(at)));
    let mut out = BTreeSet::new();
    for w in written {
        let Some(target) = resolve(module, &w, &kids) else {
            continue;
        };
        let found = (1..=target.len())
            .rev()
            .map(|len| target[..len].join("::"))
            .find(|m| known.contains_key(m));
        if let Some(m) = found.filter(|m| m != module) {
            out.insert(m);
        }
    }
    out
}

/// The import graph of the files under `src`: module → modules it imports.
fn graph(
    src: &Path,
) -> (
    BTreeMap<String, PathBuf>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let mut known = BTreeMap::new();
    modules(src, src, &mut known);
    let edges = known
        .iter()
        .map(|(m, path)| {
            let text = std::fs::read_to_string(path).unwrap();
            (m.clone(), imports(m, &text, &known))
        })
        .collect();
    (known, edges)
}

/// The cycles: strongly connected components of more than one file (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, (usize, usize)>,
        stack: Vec<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, (self.next, self.next));
            self.next += 1;
            self.stack.push(v);
            for w in &self.edges[v] {
                match self.index.get(w.as_str()).copied() {
                    None => {
                        self.visit(w);
                        let low = self.index[w.as_str()].1.min(self.index[v].1);
                        self.index.get_mut(v).unwrap().1 = low;
                    }
                    Some((wi, _)) if self.stack.contains(&w.as_str()) => {
                        let low = wi.min(self.index[v].1);
                        self.index.get_mut(v).unwrap().1 = low;
                    }
                    Some(_) => {}
                }
            }
            if self.index[v].0 == self.index[v].1 {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.found.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

/// Every broken rule, one line each.
fn violations(src: &Path, lib: &str) -> Vec<String> {
    let floors = floor_table(lib);
    assert!(floors.len() >= 10, "no floor table found in src/lib.rs");
    let (known, edges) = graph(src);
    let family = |m: &str| m.split("::").next().unwrap_or(m).to_owned();
    let mut bad = Vec::new();
    for (module, targets) in &edges {
        let Some(&floor) = floors.get(&family(module)) else {
            bad.push(format!("{module}: not in the floor table of src/lib.rs"));
            continue;
        };
        for target in targets {
            let (fam, tfam) = (family(module), family(target));
            let Some(&tfloor) = floors.get(&tfam) else {
                continue; // reported as its own module
            };
            if tfloor > floor {
                bad.push(format!(
                    "{module} (floor {floor}) imports {target} (floor {tfloor}): upward"
                ));
            } else if tfloor == floor
                && fam != tfam
                && !SIDEWAYS.contains(&(fam.as_str(), tfam.as_str()))
            {
                bad.push(format!(
                    "{module} imports {target}: two families of floor {floor}"
                ));
            } else if fam == tfam
                && ROOT_ONLY.contains(&fam.as_str())
                && module != &fam
                && target != &fam
            {
                bad.push(format!(
                    "{module} imports {target}: a sibling, not {fam}'s root"
                ));
            }
        }
    }
    for cycle in cycles(&edges) {
        bad.push(format!("a cycle between {}", cycle.join(", ")));
    }
    for (module, path) in &known {
        if family(module) == "vault" {
            let code = strip(&std::fs::read_to_string(path).unwrap());
            for word in CORE_FORBIDDEN {
                if code.contains(word) {
                    bad.push(format!("{module}: the vault core names {word}"));
                }
            }
        }
    }
    bad
}

/// Every `#[error(…)]` attribute of `src/`, with its file, that holds text of its own
/// instead of calling `messages` (the rule of `src/messages.rs`).
fn error_texts_outside_messages(src: &Path) -> Vec<String> {
    let mut known = BTreeMap::new();
    modules(src, src, &mut known);
    let mut bad = Vec::new();
    for (module, path) in &known {
        let text = std::fs::read_to_string(path).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("#[error(") {
            // rustfmt may break a long attribute over lines: compare it on one.
            let end = rest[at..].find(")]").map_or(rest.len(), |e| at + e + 2);
            let attr = rest[at + 8..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let ok =
                attr.starts_with("transparent)") || attr.starts_with("\"{}\", crate::messages::");
            if !ok {
                bad.push(format!(
                    "{module}: #[error({attr}: its text belongs in messages"
                ));
            }
            rest = &rest[at + 8..];
        }
    }
    bad
}

/// Longest a function of `src/` may be, in lines from its `fn` to its closing brace.
const MAX_FN_LINES: usize = 100;

/// Every function of `src/` longer than [`MAX_FN_LINES`], as "module::name: N lines"
/// (rustfmt'ed code: a body ends at the `}` of the `fn` line's indentation).
fn long_functions(src: &Path) -> Vec<String> {
    let mut known = BTreeMap::new();
    modules(src, src, &mut known);
    let mut long = Vec::new();
    for (module, path) in &known {
        let code = strip(&std::fs::read_to_string(path).unwrap());
        let lines: Vec<&str> = code.lines().collect();
        for (start, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            let Some(at) = trimmed.find("fn ") else {
                continue;
            };
            let head = &trimmed[..at];
            let words_ok = head
                .split_whitespace()
                .all(|w| w.starts_with("pub") || ["const", "async", "unsafe"].contains(&w));
            if !words_ok || !trimmed[at + 3..].starts_with(|c: char| c.is_alphabetic() || c == '_')
            {
                continue;
            }
            // A declaration without a body (a trait method) ends with `;` first.
            let Some(open) = (start..lines.len()).find(|&k| {
                let l = lines[k].trim_end();
                l.ends_with('{') || l.ends_with(';')
            }) else {
                continue;
            };
            if lines[open].trim_end().ends_with(';') {
                continue;
            }
            let close = format!("{indent}}}");
            let Some(end) = (open + 1..lines.len()).find(|&k| lines[k] == close) else {
                continue;
            };
            let n = end - start + 1;
            if n > MAX_FN_LINES {
                let name: String = trimmed[at + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                long.push(format!("{module}::{name}: {n} lines"));
            }
        }
    }
    long
}

#[test]
fn no_function_is_over_100_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long = long_functions(&src);
    assert!(
        long.is_empty(),
        "split these functions:\n{}",
        long.join("\n")
    );
}

#[test]
fn error_texts_live_in_messages() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = error_texts_outside_messages(&src);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn no_upward_import_and_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let bad = violations(&root.join("src"), &lib);
    assert!(
        bad.is_empty(),
        "src/ breaks its floors (src/lib.rs):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_reader_finds_what_it_must() {
    let known: BTreeMap<String, PathBuf> = ["a", "a::b", "a::c", "d", "e"]
        .iter()
        .map(|m| (m.to_string(), PathBuf::new()))
        .collect();
    let text = "//! crate::e in a comment\n\
        use crate::{d, a::{c as x, self}};\n\
        mod b;\n\
        fn f() { let s = \"crate::e\"; let c = 'x'; b::g(); }\n\
        fn g<'a>(x: &'a str) {}\n\
        #[cfg(test)]\n\
        mod tests {\n    use super::*;\n    fn t() { crate::e::f(); }\n}\n";
    let got = imports("a", text, &known);
    let want: BTreeSet<String> = ["a::b", "a::c", "d", "e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("x", &["y"][..]),
        ("y", &["z"]),
        ("z", &["x"]),
        ("w", &["x"]),
    ]
    .iter()
    .map(|(m, t)| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
    .collect();
    assert_eq!(cycles(&edges), vec![vec!["x", "y", "z"]]);
}
