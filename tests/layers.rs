//! The layer rule of docs/architecture.md, checked by reading the sources: which top-level
//! module may name which (`crate::x` in code, comments ignored), no file over 400 lines and no
//! function over 60 lines under src/. Plain Rust, no parser: a rough scan is enough to keep the
//! shape from drifting, and every deliberate exception is listed here with its reason.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Shared leaves: they may name each other, never a job, app or ops.
const LEAVES: &[&str] = &["config", "counters", "lock", "net", "rate", "shutdown"];
/// The three jobs: they may name leaves, and each other only through [`JOB_TO_JOB`].
const JOBS: &[&str] = &["signaling", "turn", "web"];
/// Documented paths from one job into another (docs/architecture.md, "The layer rule").
const JOB_TO_JOB: &[(&str, &str)] = &[
    // The web listener's per-connection slot rides on each request; a WebSocket handler holds
    // it until the socket closes.
    ("signaling", "web::limits"),
];
/// Edges left out of the circle check, with why (none: the service driver that runs
/// `app::start` lives in app itself, `app/service.rs`).
const CIRCLE_EXCEPTIONS: &[(&str, &str)] = &[];
const MAX_FILE_LINES: usize = 400;
const MAX_FN_LINES: usize = 60;
/// Functions still over 60 lines, in files other helpers were rewriting while the layers were
/// drawn; to be split by their owners (file, fn name).
const LONG_FN_EXCEPTIONS: &[(&str, &str)] = &[];

/// Files (or folders, ending in '/') under src/ whose std mutexes do not go through
/// `crate::lock::lock`, with why.
const LOCK_EXCEPTIONS: &[(&str, &str)] = &[
    // The one policy itself.
    ("lock.rs", "it is crate::lock::lock"),
];

fn sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read src")
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out
}

/// `src/turn/guard.rs` -> "turn", `src/config.rs` -> "config", `src/lib.rs` -> "lib".
fn top_module(path: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let rel = path.strip_prefix(&src).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| match l.find("//") {
            Some(at) if !l[..at].contains('"') => &l[..at],
            _ => l,
        })
}

/// Every `crate::a::b` a file names, as "a::b" (or "a"), `use crate::{a, b}` groups included.
fn named_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code_lines(text) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let item = item.trim();
                    if !item.is_empty() {
                        out.insert(path_head(item));
                    }
                }
            } else {
                out.insert(path_head(rest));
            }
        }
    }
    out
}

/// The first two segments of a path: "web::limits::ConnectionSlot" -> "web::limits".
fn path_head(path: &str) -> String {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let first = ident(path);
    match path[first.len()..].strip_prefix("::") {
        Some(rest) if !ident(rest).is_empty() => format!("{first}::{}", ident(rest)),
        _ => first,
    }
}

/// Top module -> (named path -> files naming it).
fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for path in sources() {
        let from = top_module(&path);
        let text = std::fs::read_to_string(&path).expect("read source");
        for named in named_paths(&text) {
            let to = named.split("::").next().unwrap_or_default().to_string();
            if to != from && to != "lib" && !to.is_empty() {
                let file = path.to_string_lossy().into_owned();
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(named)
                    .or_default()
                    .insert(file);
            }
        }
    }
    graph
}

#[test]
fn leaves_name_no_job_and_jobs_name_no_app_or_ops() {
    let mut wrong = Vec::new();
    for (from, edges) in graph() {
        for (named, files) in edges {
            let to = named.split("::").next().unwrap_or_default();
            let leaf_breaks = LEAVES.contains(&from.as_str()) && !LEAVES.contains(&to);
            let job_breaks = JOBS.contains(&from.as_str())
                && (to == "app" || to == "ops" || JOBS.contains(&to))
                && !JOB_TO_JOB.contains(&(from.as_str(), named.as_str()));
            if leaf_breaks || job_breaks {
                wrong.push(format!("{from} -> crate::{named} in {files:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer rule:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn top_level_modules_form_no_circle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, named) in graph() {
        for path in named.keys() {
            let to = path.split("::").next().unwrap_or_default().to_string();
            if !CIRCLE_EXCEPTIONS.contains(&(from.as_str(), to.as_str())) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    // Depth-first search from every module, reporting the first circle found.
    fn visit(
        at: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|m| m == at) {
            let mut circle = stack[pos..].to_vec();
            circle.push(at.to_string());
            return Some(circle);
        }
        if !done.insert(at.to_string()) {
            return None;
        }
        stack.push(at.to_string());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in edges.keys() {
        if let Some(circle) = visit(start, &edges, &mut Vec::new(), &mut done) {
            panic!("import circle: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn no_source_file_is_over_400_lines_except_test_files() {
    // `*_tests.rs` files hold unit tests moved out of the module they test; a long list of
    // cases is easier to read than to split, so they are exempt.
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("_tests.rs"))
        .filter_map(|p| {
            let lines = std::fs::read_to_string(&p).expect("read").lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", p.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// Functions (outside `#[cfg(test)]` modules and test files) and their length in lines, found
/// by brace counting from each `fn` line: rough, but strings with braces are rare in this code.
fn long_functions(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = code_lines(text).collect();
    let test_start = lines.iter().position(|l| l.trim() == "#[cfg(test)]");
    let mut out = Vec::new();
    let mut i = 0;
    while i < test_start.unwrap_or(lines.len()) {
        let line = lines[i].trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) fn ",
        ]
        .iter()
        .chain(["pub(super) fn ", "pub(crate) async fn ", "const fn "].iter())
        .any(|p| line.starts_with(p));
        if !is_fn {
            i += 1;
            continue;
        }
        let name: String = line[line.find("fn ").unwrap_or(0) + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened, mut j) = (0i32, false, i);
        while j < lines.len() {
            for c in lines[j].chars() {
                match c {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    ';' if !opened && depth == 0 => break,
                    _ => {}
                }
            }
            if (opened && depth <= 0) || (!opened && lines[j].trim_end().ends_with(';')) {
                break;
            }
            j += 1;
        }
        let len = j.saturating_sub(i) + 1;
        if opened && len > MAX_FN_LINES {
            out.push((name, len));
        }
        i = j.max(i) + 1;
    }
    out
}

#[test]
fn no_function_is_over_60_lines_except_the_listed_ones() {
    let mut long = Vec::new();
    for path in sources() {
        let shown = path.to_string_lossy().into_owned();
        if shown.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for (name, len) in long_functions(&text) {
            let file = shown.rsplit_once("/src/").map(|(_, f)| f).unwrap_or(&shown);
            if !LONG_FN_EXCEPTIONS.contains(&(file, name.as_str())) {
                long.push(format!("src/{file}: fn {name} ({len} lines)"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_scanners_see_what_they_should() {
    let text = "use crate::{config, net::client_key};\n// crate::app in a comment\nlet x = crate::web::limits::Slot;\n";
    let named = named_paths(text);
    assert!(
        named.contains("config") && named.contains("net::client_key"),
        "{named:?}"
    );
    assert!(
        named.contains("web::limits") && !named.iter().any(|n| n == "app"),
        "{named:?}"
    );
    let body = "    x();\n".repeat(MAX_FN_LINES);
    let long = format!("fn long() {{\n{body}}}\nfn short() {{\n    y();\n}}\n");
    assert_eq!(
        long_functions(&long),
        vec![("long".to_string(), MAX_FN_LINES + 2)]
    );
}

/// Where non-test code under src/ calls `.lock()` on something other than an async mutex
/// (`.lock().await`, which is a different tool: it may be held across an await), as
/// "file:line". Comments and everything from the first `#[cfg(test)]` on are left out.
fn std_lock_calls(file: &str, text: &str) -> Vec<String> {
    // Line by line as in the file (comment lines kept, blank), so the numbers are the file's.
    let lines: Vec<&str> = text
        .lines()
        .map(|l| code_lines(l).next().unwrap_or_default())
        .collect();
    let end = lines
        .iter()
        .position(|l| l.trim() == "#[cfg(test)]")
        .unwrap_or(lines.len());
    let mut out = Vec::new();
    for (i, line) in lines[..end].iter().enumerate() {
        let mut rest = *line;
        while let Some(at) = rest.find(".lock()") {
            rest = &rest[at + ".lock()".len()..];
            // The `.await` may sit on the next line when rustfmt breaks a chain.
            let after = std::iter::once(rest)
                .chain(lines[i + 1..end].iter().copied())
                .map(str::trim_start)
                .find(|l| !l.is_empty())
                .unwrap_or_default();
            if !after.starts_with(".await") {
                out.push(format!("src/{file}:{}", i + 1));
            }
        }
    }
    out
}

#[test]
fn std_mutexes_are_locked_through_the_one_poison_policy() {
    let mut wrong = Vec::new();
    for path in sources() {
        let shown = path.to_string_lossy().into_owned();
        let file = shown.rsplit_once("/src/").map(|(_, f)| f).unwrap_or(&shown);
        let excepted = LOCK_EXCEPTIONS
            .iter()
            .any(|(e, _)| file == *e || (e.ends_with('/') && file.starts_with(e)));
        if excepted || file.ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        wrong.extend(std_lock_calls(file, &text));
    }
    assert!(
        wrong.is_empty(),
        "std Mutex::lock() outside crate::lock::lock (use crate::lock::lock(&m, \"what\")):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_lock_scanner_sees_what_it_should() {
    let text = "fn a() {\n    let g = m.lock().unwrap();\n    // m.lock() in a comment\n    \
                let w = w.lock().await;\n    let v = v\n        .lock()\n        .await;\n    \
                let s = s\n        .lock()\n        .unwrap_or_else(|p| p.into_inner());\n}\n\
                #[cfg(test)]\nmod tests {\n    fn t() { m.lock().unwrap(); }\n}\n";
    assert_eq!(
        std_lock_calls("x.rs", text),
        vec!["src/x.rs:2".to_string(), "src/x.rs:9".to_string()]
    );
}
