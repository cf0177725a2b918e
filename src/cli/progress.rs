//! The progress bar (bytes, rate and ETA on a terminal; nothing on a pipe) and the library's
//! events as the command line shows them.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use xva::plan::Events;

use super::output::sanitize;
use crate::cli::output::{err, errln};

/// A progress bar over a number of bytes, drawn on stderr only when it is a terminal.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar for `total` bytes; `show` = false hides it whatever stderr is.
    pub fn new(total: u64, show: bool, what: &str) -> Bar {
        let visible = show && std::io::stderr().is_terminal();
        let target = if visible { ProgressDrawTarget::stderr_with_hz(4) } else { ProgressDrawTarget::hidden() };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                .expect("static template is valid")
                .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        Bar { bar }
    }

    /// Bytes done so far.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The command line's view of the library's [`Events`]: messages on stderr (`xva: …`,
/// sanitised), the progress bar, and the host's import percentage on a terminal.
pub struct Report {
    show: bool,
    bar: Mutex<Option<Bar>>,
    /// The last host percentage drawn (-1: none yet).
    host_pct: Mutex<i64>,
}

impl Report {
    /// `show` = false (`--json`) hides the bar and the host's progress.
    pub fn new(show: bool) -> Report {
        Report { show, bar: Mutex::new(None), host_pct: Mutex::new(-1) }
    }

    fn draws_host(&self) -> bool {
        self.show && std::io::stderr().is_terminal()
    }
}

impl Events for Report {
    fn message(&self, text: &str) {
        errln!("xva: {}", sanitize(text));
    }

    fn begin(&self, what: &str, total: u64) {
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(Bar::new(total, self.show, what));
    }

    fn progress(&self, done: u64) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.set(done);
        }
    }

    fn end(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish();
        }
    }

    fn host_progress(&self, fraction: f64) {
        let pct = (fraction * 100.0) as i64;
        let mut last = self.host_pct.lock().unwrap_or_else(|e| e.into_inner());
        if self.draws_host() && pct != *last {
            err!("\rxva: the host is importing: {pct:3}%");
            *last = pct;
        }
    }

    fn host_done(&self) {
        let mut last = self.host_pct.lock().unwrap_or_else(|e| e.into_inner());
        if self.draws_host() && *last >= 0 {
            err!("\r\x1b[K");
        }
        *last = -1;
    }
}
