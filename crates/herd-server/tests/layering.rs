//! The server's layering rule, checked on its source (ARCHITECTURE.md, "herd-server — layers"):
//! - adapters (`src/api/*`, `src/console/*`) call the application layer (`crate::app`), never one another:
//!   no `api/x.rs` names `crate::api::y` (or `super::y`), no console file names `crate::api::*`;
//!   `api/mod.rs` alone assembles the router, and `crate::api::Routes` is the route-table type every surface uses;
//! - the application layer (`src/app/*`) knows no adapter and no HTTP: no `crate::api`, `crate::console`, `axum`;
//! - adapters change nothing themselves: writes, cache evictions, activity records and settings reloads happen
//!   in use cases (which apply them in one order, `app::AfterCommit`); an adapter may call the store's read
//!   methods (listings, counts, lookups) after an access check, and nothing else of it;
//! - the rest of the server (workers, webhooks, wire views, extraction) knows no adapter either.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The code of a file without its comments (a doc comment may name anything).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every `prefix` + identifier in `code`, with the identifier.
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .map(|(at, _)| {
            let rest = &code[at + prefix.len()..];
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

fn module_name(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

/// The store's methods that only read: the ones an adapter may call (after an access check) to render.
fn is_store_read(method: &str) -> bool {
    const READS: &[&str] = &[
        "ping",
        "backend",
        "host_count",
        "status_logs",
        "profiles_summary",
        "compliance_history",
        "last_executions",
        "global_policies_for_team",
        "enroll_secrets",
        "host_status_counts",
        "hot_writes_in_flight",
        "group_commit_counts",
        "execution",
        "host_labels",
    ];
    ["list_", "get_", "count_", "all_"].iter().any(|p| method.starts_with(p)) || READS.contains(&method)
}

/// What an adapter does that only a use case may: store writes, evictions, activities, settings reloads.
fn adapter_side_effects(relative: &str, code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for method in paths_after(code, "state.store.") {
        if !is_store_read(method) {
            found.push(format!("{relative} calls state.store.{method} (adapters write only through crate::app)"));
        }
    }
    for effect in ["state.hosts.evict", "activity::record", "settings.reload"] {
        if code.contains(effect) {
            found.push(format!("{relative} calls {effect} (a use case's after-commit effect)"));
        }
    }
    found
}

/// What one source file breaks of the rule, given where it lives.
fn violations(src: &Path, path: &Path) -> Vec<String> {
    let relative = path.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
    let code = code_of(path);
    let mut found = Vec::new();
    let api_modules: Vec<String> = rust_files(&src.join("api")).iter().map(|p| module_name(p)).collect();
    let layer = relative.split('/').next().unwrap_or_default();
    match layer {
        "api" if relative != "api/mod.rs" => {
            let own = module_name(path);
            for target in paths_after(&code, "crate::api::") {
                if target != "Routes" {
                    found.push(format!("{relative} uses crate::api::{target} (an adapter calls another)"));
                }
            }
            for target in paths_after(&code, "super::") {
                if target != own && api_modules.iter().any(|m| m == target) {
                    found.push(format!("{relative} uses super::{target} (an adapter calls another)"));
                }
            }
            if code.contains("crate::console") {
                found.push(format!("{relative} uses crate::console"));
            }
            found.extend(adapter_side_effects(&relative, &code));
        }
        "console" => {
            for target in paths_after(&code, "crate::api::") {
                if target != "Routes" {
                    found.push(format!("{relative} uses crate::api::{target} (the console calls the REST API)"));
                }
            }
            found.extend(adapter_side_effects(&relative, &code));
        }
        "app" => {
            for forbidden in ["crate::api", "crate::console", "axum::", "use axum"] {
                if code.contains(forbidden) {
                    found.push(format!("{relative} uses {forbidden} (the application layer knows no adapter or HTTP)"));
                }
            }
        }
        _ if relative != "lib.rs" && !relative.starts_with("api/") => {
            for forbidden in ["crate::api::", "crate::console::"] {
                for target in paths_after(&code, forbidden) {
                    if target != "Routes" && target != "router" && target != "route_table" {
                        found.push(format!("{relative} uses {forbidden}{target} (infrastructure knows no adapter)"));
                    }
                }
            }
        }
        _ => {}
    }
    found
}

#[test]
fn adapters_call_the_application_layer_never_one_another() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    assert!(files.iter().any(|p| p.ends_with("app/mod.rs")), "the application layer is at src/app");
    let found: Vec<String> = files.iter().flat_map(|path| violations(&src, path)).collect();
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

/// The check itself can fail: each kind of breach written into a scratch tree is found.
#[test]
fn the_check_finds_each_kind_of_breach() {
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("src");
    for dir in ["api", "console", "app"] {
        std::fs::create_dir_all(src.join(dir)).unwrap();
    }
    let write = |file: &str, text: &str| std::fs::write(src.join(file), text).unwrap();
    write("api/mod.rs", "pub mod hosts;\npub mod teams;\nuse crate::api::hosts::routes;\n");
    write("api/hosts.rs", "use crate::app;\nfn f() { crate::api::teams::create(); super::teams::x(); }\n");
    write(
        "api/teams.rs",
        "// crate::api::hosts::view in a comment is fine\nfn f() -> crate::api::Routes { todo!() }\n",
    );
    write("console/mod.rs", "fn f() { crate::api::hosts::view(); }\n");
    write(
        "console/teams.rs",
        "fn f() { state.store.list_teams(); state.store.delete_team(1); state.hosts.evict(1); }\n",
    );
    write("app/hosts.rs", "use axum::Json;\n");
    write("workers.rs", "fn f() { crate::api::hosts::view(); }\n");
    let found: Vec<String> = rust_files(&src).iter().flat_map(|path| violations(&src, path)).collect();
    let expected = [
        "api/hosts.rs uses crate::api::teams",
        "api/hosts.rs uses super::teams",
        "app/hosts.rs uses use axum",
        "console/mod.rs uses crate::api::hosts",
        "console/teams.rs calls state.store.delete_team",
        "console/teams.rs calls state.hosts.evict",
        "workers.rs uses crate::api::hosts",
    ];
    for breach in expected {
        assert!(found.iter().any(|f| f.starts_with(breach)), "{breach:?} not found in {found:#?}");
    }
    assert!(!found.iter().any(|f| f.starts_with("api/teams.rs") || f.starts_with("api/mod.rs")), "{found:#?}");
    assert!(!found.iter().any(|f| f.contains("list_teams")), "reads are allowed: {found:#?}");
}
