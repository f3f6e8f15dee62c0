//! `herd-agent shell`: an osqueryi-like prompt.

use crate::output::render_table;
use anyhow::Result;
use herd_osquery::{Engine, Limits};
use std::io::{BufRead, IsTerminal, Write};

pub fn run() -> Result<()> {
    let engine = Engine::new()?;
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut pending = String::new();
    let prompt = |pending: &str| {
        if interactive {
            print!("{}", if pending.is_empty() { "herd> " } else { "   ...> " });
            let _ = std::io::stdout().flush();
        }
    };
    prompt(&pending);
    for line in stdin.lock().lines() {
        let line = line?;
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('.') {
            let mut words = trimmed.split_whitespace();
            match (words.next(), words.next()) {
                (Some(".quit" | ".exit"), _) => return Ok(()),
                (Some(".tables"), _) => {
                    let mut names: Vec<&str> = engine.tables().iter().map(|t| t.name()).collect();
                    names.sort();
                    for name in names {
                        println!("  => {name}");
                    }
                }
                (Some(".schema"), Some(table)) => match engine.schema(table) {
                    Some(schema) => println!("{schema}"),
                    None => println!("Error: no such table: {table}"),
                },
                (Some(".help"), _) => println!(".tables  .schema TABLE  .quit"),
                (Some(other), _) => println!("Error: unknown command {other}; try .help"),
                (None, _) => {}
            }
            prompt(&pending);
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if trimmed.ends_with(';') {
            match engine.query(pending.trim(), Limits::default()) {
                Ok(output) => println!("{}", render_table(&output)),
                Err(err) => println!("Error: {err}"),
            }
            pending.clear();
        }
        prompt(&pending);
    }
    if !pending.trim().is_empty() {
        match engine.query(pending.trim(), Limits::default()) {
            Ok(output) => println!("{}", render_table(&output)),
            Err(err) => println!("Error: {err}"),
        }
    }
    Ok(())
}
