//! Everything herdctl prints goes through here (crates/herdctl/clippy.toml forbids `println!` and friends).
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe (`herdctl get hosts | head`) is an `EPIPE` error, and
//! `println!` panics on it. Writes here return the error instead; `main` ends quietly and successfully when
//! it is a broken pipe, as ripgrep does: the reader has all it wanted. Restoring SIGPIPE's default would
//! also end herdctl without a word when the server closes a connection under a write, so herdctl keeps it
//! ignored and treats the closed standard output as what it is.

use std::fmt::Display;
use std::io::Write;

/// One line on standard output.
pub fn line(text: impl Display) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

/// One line on standard error (warnings, the final error). A closed standard error is nobody's loss.
pub fn warn(text: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Whether an error, or anything it wraps, is a write to a pipe whose reader has gone.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_pipes_are_found_anywhere_in_the_chain() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let cases: [(anyhow::Error, bool); 4] = [
            (anyhow::Error::new(pipe()), true),
            (anyhow::Error::new(pipe()).context("printing the table"), true),
            (anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)), false),
            (anyhow::anyhow!("broken pipe, but only in words"), false),
        ];
        for (err, expected) in cases {
            assert_eq!(is_broken_pipe(&err), expected, "{err:#}");
        }
    }
}
