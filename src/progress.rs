//! Progress for long work, shown the way each place can show it:
//!
//! - **a terminal**: an indicatif bar redrawn in place;
//! - **a notebook** (the evcxr Jupyter kernel): evcxr forwards a cell's output line by line,
//!   so a bar cannot redraw and `\r` updates would arrive all at once at the end. Instead a
//!   line is printed each time the elapsed time doubles (after 2 s, 4 s, 8 s, …, with the
//!   time left) and one summary line at the end: a 5-minute loop shows 8 lines and the
//!   summary, a 1-second one only the summary. They go to stdout, because Jupyter colours
//!   stderr like an error;
//! - **anywhere else** (CI logs, pipes): about ten plain lines on stderr.
//!
//! ```no_run
//! use gradviz::progress::progress;
//! let mut total = 0;
//! for k in progress("classes", 0..10) {
//!     total += k; // long work per item
//! }
//! ```

use indicatif::{ProgressBar, ProgressStyle};
use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Set by evcxr in the process that runs notebook cells.
const EVCXR_RUNTIME_VAR: &str = "EVCXR_IS_RUNTIME";

/// The first notebook report comes after this long; each later one after twice the time.
const FIRST_NOTEBOOK_REPORT: Duration = Duration::from_secs(2);

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// An indicatif bar on stderr (a terminal).
    Bar,
    /// Lines at doubling intervals and a summary on stdout (a Jupyter notebook).
    Notebook,
    /// About ten lines on stderr (logs).
    Log,
    /// Nothing.
    Hidden,
}

impl Output {
    /// What this process can show: a notebook cell, a terminal, or a log.
    pub fn detect() -> Output {
        if std::env::var_os(EVCXR_RUNTIME_VAR).is_some() {
            Output::Notebook
        } else if std::io::stderr().is_terminal() {
            Output::Bar
        } else {
            Output::Log
        }
    }
}

/// Reports `done / total` with a message, e.g. the current loss or objective.
pub struct Progress {
    output: Output,
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    /// Log mode: a line every this many steps.
    every: u64,
    start: Instant,
    /// Notebook mode: when the next line is due.
    next_report: Cell<Duration>,
    /// The latest `(done, message)`, for the summary.
    last: RefCell<(u64, String)>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Progress({}, {}/{})",
            self.label,
            self.last.borrow().0,
            self.total
        )
    }
}

impl Progress {
    /// Progress of `total` steps, shown as [`Output::detect`] finds best.
    pub fn new(label: &str, total: u64) -> Progress {
        Progress::with_output(label, total, Output::detect())
    }

    /// A progress report that shows nothing (for tests and inner loops).
    pub fn hidden() -> Progress {
        Progress::with_output("", 0, Output::Hidden)
    }

    /// Progress of `total` steps shown on `output`.
    pub fn with_output(label: &str, total: u64, output: Output) -> Progress {
        let bar = (output == Output::Bar).then(|| {
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
            output,
            bar,
            label: label.to_string(),
            total,
            every: (total / 10).max(1),
            start: Instant::now(),
            next_report: Cell::new(FIRST_NOTEBOOK_REPORT),
            last: RefCell::new((0, String::new())),
        }
    }

    /// Marks step `done` (1-based) as finished, with a short status message (only built when
    /// it is shown).
    pub fn update(&self, done: u64, msg: impl FnOnce() -> String) {
        match self.output {
            Output::Hidden => {}
            Output::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                    bar.set_message(msg());
                }
            }
            Output::Log => {
                if done.is_multiple_of(self.every) || done == self.total {
                    let msg = msg();
                    let sep = if msg.is_empty() { "" } else { " " };
                    eprintln!("{} {done}/{}{sep}{msg}", self.label, self.total);
                }
            }
            Output::Notebook => {
                let elapsed = self.start.elapsed();
                let due = elapsed >= self.next_report.get();
                if due || done == self.total {
                    *self.last.borrow_mut() = (done, msg());
                } else {
                    self.last.borrow_mut().0 = done;
                }
                if due && done < self.total {
                    self.next_report.set(elapsed * 2);
                    println!("{}", self.line(done, elapsed, &self.last.borrow().1));
                }
            }
        }
    }

    /// Ends the report; in a notebook this prints the one-line summary.
    pub fn finish(&self) {
        match self.output {
            Output::Bar => {
                if let Some(bar) = &self.bar {
                    bar.finish();
                }
            }
            Output::Notebook => {
                let (done, msg) = &*self.last.borrow();
                println!("{}", self.line(*done, self.start.elapsed(), msg));
            }
            Output::Log | Output::Hidden => {}
        }
    }

    /// `label: 120/600 (20%) after 4.0 s, about 16 s left · msg`, or, when done,
    /// `label: 600/600 in 20.1 s · msg`.
    fn line(&self, done: u64, elapsed: Duration, msg: &str) -> String {
        let secs = elapsed.as_secs_f64();
        let mut s = if done >= self.total {
            format!("{}: {done}/{} in {}", self.label, self.total, seconds(secs))
        } else {
            let left = if done > 0 {
                format!(
                    ", about {} left",
                    seconds(secs * (self.total - done) as f64 / done as f64)
                )
            } else {
                String::new()
            };
            let pct = 100.0 * done as f64 / self.total.max(1) as f64;
            format!(
                "{}: {done}/{} ({pct:.0}%) after {}{left}",
                self.label,
                self.total,
                seconds(secs)
            )
        };
        if !msg.is_empty() {
            s.push_str(" · ");
            s.push_str(msg);
        }
        s
    }
}

fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        format!("{}:{:02} min", (s / 60.0) as u64, (s % 60.0) as u64)
    }
}

/// Iterates over `items` while reporting how many are done, like Python's `tqdm`:
/// `for x in progress("settings", &settings) { … }`.
pub fn progress<I>(label: &str, items: I) -> ProgressIter<I::IntoIter>
where
    I: IntoIterator,
    I::IntoIter: ExactSizeIterator,
{
    let items = items.into_iter();
    ProgressIter {
        progress: Progress::new(label, items.len() as u64),
        items,
        taken: 0,
        finished: false,
    }
}

/// The iterator returned by [`progress`].
#[derive(Debug)]
pub struct ProgressIter<I> {
    progress: Progress,
    items: I,
    taken: u64,
    finished: bool,
}

impl<I: Iterator> Iterator for ProgressIter<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        if self.finished {
            return None;
        }
        // Asking for item k+1 means that item k is done.
        if self.taken > 0 {
            self.progress.update(self.taken, String::new);
        }
        let item = self.items.next();
        if item.is_some() {
            self.taken += 1;
        } else {
            self.finished = true;
            self.progress.finish();
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}
