//! Printing query results: aligned columns like osqueryi, or JSON like `osqueryi --json`.

use anyhow::Result;
use herd_osquery::{Engine, Limits, QueryOutput};

pub fn render_table(output: &QueryOutput) -> String {
    let cell = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut widths: Vec<usize> = output.columns.iter().map(|c| c.chars().count()).collect();
    for row in &output.rows {
        for (i, value) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell(value).chars().count());
        }
    }
    let rule = format!("+{}+", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
    let line = |cells: Vec<String>| {
        format!(
            "| {} |",
            cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect::<Vec<_>>().join(" | ")
        )
    };
    let mut out = vec![rule.clone(), line(output.columns.clone()), rule.clone()];
    out.extend(output.rows.iter().map(|row| line(row.iter().map(cell).collect())));
    out.push(rule);
    out.join("\n")
}

pub fn render_json(output: &QueryOutput) -> Result<String> {
    Ok(serde_json::to_string_pretty(&output.records())?)
}

/// `herd-agent query`.
pub fn run_query(sql: &str, json: bool) -> Result<()> {
    let engine = Engine::new()?;
    let output = engine.query(sql, Limits::default())?;
    println!("{}", if json { render_json(&output)? } else { render_table(&output) });
    Ok(())
}
