//! Checks the floors table of `lib.rs` against the code: every module is in
//! the table, no module uses one on a higher floor, and the imports between
//! modules form no circle. It reads the source files, so a new `use` that
//! breaks the layering fails here, naming the file and the module it reached.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Floor of each module, from the table in `lib.rs`.
fn floors(lib: &str) -> BTreeMap<String, u32> {
    let mut floors = BTreeMap::new();
    for line in lib.lines() {
        let Some(row) = line.strip_prefix("//! | ") else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let Ok(floor) = cells[0].trim().parse::<u32>() else {
            continue;
        };
        for name in cells[1].split(", ") {
            let name = name.trim().trim_matches(['[', ']', '`']);
            floors.insert(name.to_string(), floor);
        }
    }
    floors
}

/// The top-level modules a piece of source names through `crate::`,
/// including those in grouped imports (`crate::{a, b::c}`). Comment lines
/// are skipped (doc links are not imports).
fn crate_references(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split at depth-0 commas.
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        names.insert(first_segment(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.insert(first_segment(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(first_segment(rest));
        }
    }
    names.remove("");
    names.remove("self");
    names
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Every `.rs` file under `dir`, with the top-level module it belongs to.
fn source_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let top = path
                    .strip_prefix(source_root())
                    .unwrap()
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string();
                out.push((top, path));
            }
        }
    }
    out.sort();
    out
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module graph: which top-level modules each one uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in source_files(&source_root()) {
        // The crate root, the binary and this check stand outside the floors.
        if matches!(module.as_str(), "lib" | "main" | "floors") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        uses.extend(
            crate_references(&source)
                .into_iter()
                .filter(|m| *m != module),
        );
    }
    graph
}

/// A circle in the graph, if there is one, as the path that closes it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn every_module_stands_on_a_floor_and_uses_none_above() {
    let lib = std::fs::read_to_string(source_root().join("lib.rs")).unwrap();
    let floors = floors(&lib);
    let graph = graph();
    let mut problems = Vec::new();
    for (module, uses) in &graph {
        let Some(floor) = floors.get(module) else {
            problems.push(format!("{module} is not in the floors table of lib.rs"));
            continue;
        };
        for used in uses {
            match floors.get(used) {
                Some(f) if f > floor => problems.push(format!(
                    "{module} (floor {floor}) uses {used} (floor {f}), which is above it"
                )),
                Some(_) => {}
                None => problems.push(format!("{module} uses {used}, which has no floor")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_imports_form_no_circle() {
    let graph = graph();
    assert!(graph.len() > 10, "the source files were not found");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("the imports form a circle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checker_sees_grouped_imports_and_circles() {
    let refs = crate_references(
        "use crate::{chat::{Engine, TurnError}, render};\n// crate::ignored\nlet x = crate::tokens::upper_bound(s);",
    );
    assert_eq!(
        refs.into_iter().collect::<Vec<_>>(),
        ["chat", "render", "tokens"]
    );
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_string()].into());
    graph.insert("b".into(), ["c".to_string()].into());
    graph.insert("c".into(), ["a".to_string()].into());
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    graph.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
}
