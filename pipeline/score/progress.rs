//! Progress of the judge calls: a bar (indicatif) on a terminal, a JSON-friendly log line every
//! ten seconds otherwise, nothing for a dry run.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How a run shows progress; chosen by the caller from the terminal and the log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    Bar,
    Lines,
    Off,
}

const LINE_EVERY: Duration = Duration::from_secs(10);

pub(super) struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    total: u64,
    done: u64,
    failed: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "score [{bar:30}] {pos}/{len} judged, {msg} {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            lines: mode == ProgressMode::Lines,
            total: 0,
            done: 0,
            failed: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// More pairs to judge.
    pub fn add(&mut self, n: u64) {
        self.total += n;
        if let Some(bar) = &self.bar {
            bar.inc_length(n);
        }
    }

    /// One pair judged (`ok`) or failed.
    pub fn done(&mut self, ok: bool) {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} errors,", self.failed));
            bar.inc(1);
        }
        if self.lines && self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            self.line();
        }
    }

    fn line(&self) {
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::info!(
            done = self.done,
            total = self.total,
            errors = self.failed,
            per_s = format!("{:.1}", self.done as f64 / seconds.max(1e-9)),
            "score: progress"
        );
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
