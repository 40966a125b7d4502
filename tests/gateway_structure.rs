//! The gateway's modules import each other without a loop (issue 9, point 1): each
//! file's `super::` imports form a graph, and that graph has no cycle; the relay of a
//! paired session lives with the session, refusals in a leaf.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The `super::<module>` names a gateway file imports, outside its tests.
fn imports(src: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let code = src.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("super::") {
        let rest = &code[i + "super::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if modules.contains(&name) {
            found.insert(name);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gateway");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .expect("src/gateway")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_owned))
        .filter(|m| m != "mod")
        .collect();
    let mut g = BTreeMap::new();
    for p in &files {
        let name = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if name == "mod" {
            continue;
        }
        let src = std::fs::read_to_string(p).expect("read");
        let mut deps = imports(&src, &modules);
        deps.remove(name);
        g.insert(name.to_owned(), deps);
    }
    g
}

/// A cycle through `start`, if any (depth-first).
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut c = path[i..].to_vec();
            c.push(node.to_owned());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in g.get(node).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for start in g.keys() {
        if let Some(c) = visit(g, start, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_gateway_modules_import_each_other_without_a_loop() {
    let g = graph();
    assert!(g.len() >= 5, "gateway modules found: {g:?}");
    assert_eq!(cycle(&g), None, "import graph: {g:#?}");
}

#[test]
fn refusals_are_a_leaf_and_the_session_relay_lives_with_the_session() {
    let g = graph();
    let refusal = g.get("refusal").expect("gateway/refusal.rs");
    assert!(
        refusal.iter().all(|m| m == "stats"),
        "refusal imports {refusal:?}"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gateway");
    let session = std::fs::read_to_string(dir.join("session.rs")).expect("session.rs");
    assert!(session.contains("pub(crate) async fn relay_session("));
    let reattach = std::fs::read_to_string(dir.join("reattach.rs")).expect("reattach.rs");
    assert!(!reattach.contains("fn relay_session("));
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g = BTreeMap::new();
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    g.insert("a".to_string(), set(&["b"]));
    g.insert("b".to_string(), set(&["c"]));
    g.insert("c".to_string(), set(&["a"]));
    assert_eq!(cycle(&g).map(|c| c.len()), Some(4));
    g.insert("c".to_string(), set(&[]));
    assert_eq!(cycle(&g), None);
}
