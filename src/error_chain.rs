//! Printing an error with its causes, each once.

/// An error and its causes on one line, each cause once: a typed error
/// whose message already quotes its source is not followed by it again.
pub fn text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::other("No such file");
        let typed = crate::secret_file::SecretFileError::Read {
            path: "/x".into(),
            source: io,
        };
        let err = anyhow::Error::from(typed).context("cannot start");
        assert_eq!(
            super::text(&err),
            "cannot start: cannot read secret file /x: No such file"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::text(&plain), "outer: inner");
    }
}
