//! The demo's progress on stderr: one line per step, `✔` when done and `✘` when failed;
//! while a step runs, an indicatif spinner when stderr is a terminal, a plain `… step`
//! line otherwise (logs, CI, tests).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Reports steps.
#[derive(Debug)]
pub struct Progress {
    tty: bool,
}

/// A running step.
#[derive(Debug)]
pub struct Step {
    spinner: Option<ProgressBar>,
    started: Instant,
    message: String,
    finished: bool,
}

impl Progress {
    /// Spinners only when stderr is a terminal.
    pub fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Starts a step: `message` while it runs.
    pub fn start(&self, message: &str) -> Step {
        let spinner = if self.tty {
            let pb = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed:.dim}")
            {
                pb.set_style(style);
            }
            pb.set_message(message.to_owned());
            pb.enable_steady_tick(Duration::from_millis(100));
            Some(pb)
        } else {
            eprintln!("… {message}");
            None
        };
        Step {
            spinner,
            started: Instant::now(),
            message: message.to_owned(),
            finished: false,
        }
    }

    /// A line that is not a step.
    pub fn note(&self, message: &str) {
        eprintln!("  {message}");
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Step {
    /// Updates the running message (spinner only).
    pub fn update(&self, message: &str) {
        if let Some(s) = &self.spinner {
            s.set_message(format!("{}: {message}", self.message));
        }
    }

    /// Done: `✔ message (1.2s)`.
    pub fn done(mut self, message: &str) {
        // Green on a terminal.
        let mark = if self.spinner.is_some() {
            "\x1b[32m✔\x1b[0m"
        } else {
            "✔"
        };
        let line = format!(
            "{mark} {message} ({:.1}s)",
            self.started.elapsed().as_secs_f64()
        );
        self.finish(&line);
    }

    fn finish(&mut self, line: &str) {
        self.finished = true;
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
        eprintln!("{line}");
    }
}

impl Drop for Step {
    /// A step dropped before `done` failed (an error, Ctrl-C): `✘ message`.
    fn drop(&mut self) {
        if !self.finished {
            let mark = if self.spinner.is_some() {
                "\x1b[31m✘\x1b[0m"
            } else {
                "✘"
            };
            let line = format!("{mark} {}", self.message);
            self.finish(&line);
        }
    }
}
