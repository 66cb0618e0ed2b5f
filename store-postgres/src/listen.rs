//! Listening for the other nodes' commits: `LISTEN mishkah` on a connection of its own. A
//! notification carries `node U+001F branch U+001F module U+001F head` (a node's own are not
//! news to it); a dropped connection is reopened, and after every (re)connect the listener is
//! told it may have missed some (`None`).

use std::time::Duration;

use mishkah_store::{Commit, CommitListener, StorageError};

use crate::connect::Connector;

/// The application name of the listening connection (what an operator, or a test, sees in
/// `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "mishkah-listen";

pub(crate) fn spawn(connector: Connector, node: String, listener: CommitListener) -> Result<(), StorageError> {
    let mut config = connector.config.clone();
    config.application_name(APPLICATION_NAME);
    std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || loop {
            if let Err(e) = listen(&connector, &config, &node, &listener) {
                tracing::warn!(error = %e, "the commit listener's connection dropped; reconnecting");
            }
            std::thread::sleep(Duration::from_millis(500));
        })
        .map_err(StorageError::Io)?;
    Ok(())
}

/// Listens until the connection fails.
fn listen(
    connector: &Connector,
    config: &postgres::Config,
    node: &str,
    listener: &CommitListener,
) -> Result<(), postgres::Error> {
    let mut client = connector.connect_with(config)?;
    client.batch_execute("LISTEN mishkah")?;
    listener(None);
    use postgres::fallible_iterator::FallibleIterator;
    loop {
        {
            let mut notifications = client.notifications();
            let mut heard = notifications.timeout_iter(Duration::from_secs(2));
            while let Some(n) = heard.next()? {
                match parse(n.payload()) {
                    Some((from, _)) if from == node => {}
                    Some((_, commit)) => listener(Some(commit)),
                    None => tracing::warn!(payload = n.payload(), "a commit notification that is not ours"),
                }
            }
        }
        // Quiet for a while: make sure the connection is still there (a dead one hears nothing).
        client.is_valid(Duration::from_secs(5))?;
    }
}

/// `(node, commit)`.
fn parse(payload: &str) -> Option<(&str, Commit)> {
    let mut parts = payload.split('\u{1f}');
    let (node, branch, module, head) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some((node, Commit { branch: branch.to_owned(), module: module.to_owned(), head: head.parse().ok()? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_the_module_and_its_head() {
        let (node, commit) = parse("n1\u{1f}dar\u{1f}pos\u{1f}42").unwrap();
        assert_eq!((node, commit.branch.as_str(), commit.module.as_str(), commit.head), ("n1", "dar", "pos", 42));
        assert!(parse("n1\u{1f}dar\u{1f}pos").is_none() && parse("n1\u{1f}dar\u{1f}pos\u{1f}x").is_none());
    }
}
