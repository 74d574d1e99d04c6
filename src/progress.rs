//! Progress for long work: an indicatif bar on a terminal, a few plain lines elsewhere
//! (notebooks and CI logs have no terminal, and a bar would print nothing there).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Reports `done / total` with a message, e.g. the current loss or objective.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    every: u64,
    quiet: bool,
}

impl Progress {
    /// A progress report that prints about ten lines when there is no terminal.
    pub fn new(label: &str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            every: (total / 10).max(1),
            quiet: false,
        }
    }

    /// A progress report that shows nothing (for tests and inner loops).
    pub fn hidden() -> Progress {
        Progress {
            bar: None,
            label: String::new(),
            total: 0,
            every: u64::MAX,
            quiet: true,
        }
    }

    /// Marks step `done` (1-based) as finished, with a short status message.
    pub fn update(&self, done: u64, msg: impl FnOnce() -> String) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            bar.set_message(msg());
        } else if !self.quiet && (done.is_multiple_of(self.every) || done == self.total) {
            eprintln!("{} {done}/{} {}", self.label, self.total, msg());
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
