//! How a mutation id is kept in the log: unique per sender, not across the whole module.
//!
//! Two devices may pick the same id (`m1` in every tutorial); each must have its own. The log's
//! unique `mutation_id` column holds `U+001F <scope length> : <scope> <id>`, so one index serves
//! both the lookup and the uniqueness, and ids stored before scoping (no leading U+001F) still read
//! back as they were.

const MARK: char = '\u{1f}';

/// The stored form of `id` sent by `scope`.
pub fn stored(scope: &str, id: &str) -> String {
    format!("{MARK}{}:{scope}{id}", scope.len())
}

/// The id as its sender sent it.
pub fn shown(stored: &str) -> &str {
    let Some(rest) = stored.strip_prefix(MARK) else { return stored };
    let Some((len, tail)) = rest.split_once(':') else { return stored };
    match len.parse::<usize>() {
        Ok(len) if tail.is_char_boundary(len.min(tail.len())) && len <= tail.len() => &tail[len..],
        _ => stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_as_sent_whatever_the_scope() {
        for (scope, id) in
            [("id:alice", "m1"), ("", "m1"), ("client:x:y", "a:b"), ("id:\u{1f}9:z", ""), ("ip:::1", "é")]
        {
            assert_eq!(shown(&stored(scope, id)), id);
        }
        assert_ne!(stored("id:a", "bm1"), stored("id:ab", "m1"));
        assert_eq!(shown("legacy-id"), "legacy-id");
    }

    #[test]
    fn the_stored_form_of_a_prefix_is_a_prefix_of_the_stored_form() {
        assert!(stored("id:a", "x:t:1:row").starts_with(&stored("id:a", "x:t:1:")));
        assert!(!stored("id:b", "x:t:1:row").starts_with(&stored("id:a", "x:t:1:")));
    }
}
