//! The source tree keeps its imports one way, down the pipeline the README's module table
//! lists: a module that reached up (the sink into the engine, say) would tie a lower
//! concern to a higher one and make every change ripple inward.

use std::path::Path;

/// Top-level modules, each allowed to use only those after it.
const LAYERS: [&str; 13] = [
    "cli",
    "engine",
    "incremental",
    "sink",
    "paginate",
    "fetch",
    "policy",
    "shape",
    "profile",
    "report",
    "place",
    "error",
    "sim",
];

/// `crate::NAME` paths in the code of `text` (comments and tests left out).
fn uses(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (at, _) in line.match_indices("crate::") {
            let rest = &line[at + 7..];
            // `crate::{a, b::c}` names several.
            let names = match rest.strip_prefix('{') {
                Some(group) => group.split([',', '}']).collect(),
                None => vec![rest],
            };
            for name in names {
                let name: String = name
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                found.push(name);
            }
        }
    }
    found
}

fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => visit(&path, files),
            false if path.extension().is_some_and(|e| e == "rs") => files.push(path),
            false => {}
        }
    }
}

#[test]
fn imports_run_down_the_pipeline_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative.iter().next().unwrap().to_string_lossy();
        let top = top.trim_end_matches(".rs");
        let Some(layer) = LAYERS.iter().position(|l| *l == top) else {
            assert!(
                ["lib", "main"].contains(&top),
                "{top} is not in LAYERS: place it in the pipeline"
            );
            continue;
        };
        for used in uses(&std::fs::read_to_string(file).unwrap()) {
            if let Some(other) = LAYERS.iter().position(|l| *l == used) {
                if other < layer {
                    upward.push(format!("{} uses crate::{used}", relative.display()));
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports up the pipeline: {upward:#?}");
    assert!(files.len() > 40, "{} files read", files.len());
}
