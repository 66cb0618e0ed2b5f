//! How a long backup or restore tells how far it is: a bar on a terminal (`indicatif`), lines
//! otherwise (a log, a pipe, the server's own log).

use indicatif::{ProgressBar, ProgressStyle};

/// What a step counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    /// Log segments.
    Segments,
}

/// Progress of a backup or restore.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Prefix of each line when there is no bar (`backup`, `restore`).
    what: &'static str,
    /// Lines go to the server's log (not to standard error).
    to_log: bool,
}

impl Progress {
    /// A bar when standard error is a terminal, lines on it otherwise.
    pub fn for_terminal(what: &'static str) -> Progress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style =
                ProgressStyle::with_template("{msg:30} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .map(|s| s.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress { bar, what, to_log: false }
    }

    /// Lines in the server's log.
    pub fn logged(what: &'static str) -> Progress {
        Progress { bar: None, what, to_log: true }
    }

    /// Starts a step of `total` bytes or segments.
    pub fn step(&self, message: &str, total: u64, unit: Unit) {
        match &self.bar {
            Some(bar) => {
                let template = match unit {
                    Unit::Bytes => "{msg:30} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    Unit::Segments => "{msg:30} [{bar:30}] {pos}/{len} segments eta {eta}",
                };
                let style = ProgressStyle::with_template(template)
                    .map(|s| s.progress_chars("=> "))
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_message(message.to_owned());
                bar.set_length(total);
                bar.set_position(0);
            }
            None if unit == Unit::Bytes => self.note(&format!("{message} ({} MB)", total.div_ceil(1 << 20))),
            None => self.note(&format!("{message} ({total} segments)")),
        }
    }

    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    /// A line that stays (above the bar on a terminal).
    pub fn note(&self, line: &str) {
        match (&self.bar, self.to_log) {
            (Some(bar), _) => bar.println(line),
            (None, true) => tracing::info!("{}: {line}", self.what),
            (None, false) => eprintln!("{}: {line}", self.what),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
