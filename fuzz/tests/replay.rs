//! Replays the committed corpora through the fuzz targets on stable Rust, so that a crash
//! found once stays fixed (`.ci/run` runs it; no libFuzzer, no sanitizer, no C++ toolchain):
//!
//! ```sh
//! cd fuzz
//! cargo test --no-default-features --test replay                          # every target
//! cargo test --no-default-features --test replay -- http1_range crash-1a2b  # files or dirs
//! ```
//!
//! With no arguments it fails when a `fuzz_targets/*.rs` is not in `rswoole_fuzz::TARGETS`
//! (or does not call its function), when a listed target has no `fuzz_targets/<name>.rs` or
//! `[[bin]]`, when a target's `corpus/<name>/` is missing or empty, and when any input panics,
//! listing each such file. It ends with a `replay: N passed, N failed` line (inputs).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rswoole_fuzz::{Target, TARGETS};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // One line per panic (no backtrace), just above the FAILED line naming the input.
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    let mut run = Run::default();
    match args.split_first() {
        None => run.all(),
        Some((name, paths)) => match find(name) {
            Some(target) if !paths.is_empty() => {
                for p in paths {
                    run.replay(name, target, Path::new(p));
                }
            }
            _ => run.problem(format!(
                "usage: replay [TARGET PATH...]; TARGET is one of {:?}",
                TARGETS.iter().map(|(n, _)| n).collect::<Vec<_>>()
            )),
        },
    }
    run.report()
}

fn find(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
}

#[derive(Default)]
struct Run {
    passed: usize,
    failed: Vec<String>,
    problems: Vec<String>,
}

impl Run {
    fn problem(&mut self, what: String) {
        eprintln!("replay: {what}");
        self.problems.push(what);
    }

    /// Every target over its corpus, after checking that targets, binaries and corpora agree.
    fn all(&mut self) {
        let root = Path::new(ROOT);
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
        for path in files(&root.join("fuzz_targets")) {
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if find(name).is_none() {
                self.problem(format!(
                    "{} has no entry in rswoole_fuzz::TARGETS (src/lib.rs)",
                    path.display()
                ));
            }
            let src = std::fs::read_to_string(&path).unwrap_or_default();
            if !src.contains(&format!("rswoole_fuzz::{name}(")) {
                self.problem(format!(
                    "{} does not call rswoole_fuzz::{name}",
                    path.display()
                ));
            }
        }
        for &(name, target) in TARGETS {
            let file = format!("fuzz_targets/{name}.rs");
            if !root.join(&file).is_file() {
                self.problem(format!("target {name} has no {file}"));
            }
            if !manifest.contains(&format!("path = \"{file}\"")) {
                self.problem(format!("target {name} has no [[bin]] in Cargo.toml"));
            }
            let corpus = root.join("corpus").join(name);
            if !corpus.is_dir() {
                self.problem(format!(
                    "target {name} has no corpus directory {}",
                    corpus.display()
                ));
                continue;
            }
            let before = (self.passed, self.failed.len());
            self.replay(name, target, &corpus);
            let (passed, failed) = (self.passed - before.0, self.failed.len() - before.1);
            if passed + failed == 0 {
                self.problem(format!("{} is empty", corpus.display()));
            }
            println!("replay {name}: {passed} inputs passed, {failed} failed");
        }
    }

    /// Runs `target` on `path`, or on every file under it.
    fn replay(&mut self, name: &str, target: Target, path: &Path) {
        let inputs = if path.is_dir() {
            files(path)
        } else {
            vec![path.to_path_buf()]
        };
        for file in inputs {
            let data = match std::fs::read(&file) {
                Ok(d) => d,
                Err(e) => {
                    self.problem(format!("{}: {e}", file.display()));
                    continue;
                }
            };
            match catch_unwind(AssertUnwindSafe(|| target(&data))) {
                Ok(()) => self.passed += 1,
                Err(_) => {
                    eprintln!("FAILED {name} {}", file.display());
                    self.failed.push(format!("{name} {}", file.display()));
                }
            }
        }
    }

    fn report(self) -> ExitCode {
        if !self.failed.is_empty() {
            eprintln!("\ninputs that panicked:");
            for f in &self.failed {
                eprintln!("    {f}");
            }
        }
        if !self.problems.is_empty() {
            eprintln!("\nproblems:");
            for p in &self.problems {
                eprintln!("    {p}");
            }
        }
        println!(
            "replay: {} passed, {} failed",
            self.passed,
            self.failed.len()
        );
        if self.failed.is_empty() && self.problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// The files under `dir`, recursively, sorted; none if it cannot be read.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
