//! Text helpers shared by the server and the agent.

/// The last `n` characters of `text` (all of it when shorter), borrowed: found by walking back from the end
/// over at most `n` characters, so the cost is bounded by `n` however long the text is (script output can be
/// as long as an agent's request body: 128 MiB).
pub fn tail_chars(text: &str, n: usize) -> &str {
    if n == 0 {
        return "";
    }
    match text.char_indices().rev().nth(n - 1) {
        Some((start, _)) => &text[start..],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails() {
        assert_eq!(tail_chars("hello", 3), "llo");
        assert_eq!(tail_chars("hello", 5), "hello");
        assert_eq!(tail_chars("hello", 50), "hello");
        assert_eq!(tail_chars("hello", 0), "");
        assert_eq!(tail_chars("", 3), "");
        // Multi-byte characters at the cut: whole characters, counted as characters.
        assert_eq!(tail_chars("aé東😀", 3), "é東😀");
        assert_eq!(tail_chars("aé東😀", 1), "😀");
        let long = format!("{}{}", "x".repeat(1_000_000), "é".repeat(10_000));
        assert_eq!(tail_chars(&long, 10_000), "é".repeat(10_000));
    }
}
