//! Progress of `run-many`: a bar on a terminal (done/failed/running, rate,
//! ETA), plain lines on stderr otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::results::Tally;

/// How often a plain progress line is printed at most.
const LINE_EVERY: Duration = Duration::from_secs(2);

pub struct Progress {
    total: usize,
    started: Instant,
    /// Rows done before this run started (resumed), not counted in the rate.
    done_before: usize,
    view: View,
}

enum View {
    Bar(ProgressBar),
    Lines { last: Option<Instant> },
}

impl Progress {
    pub fn new(total: usize, done_before: usize) -> Self {
        let view = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            // `wide_bar` takes what the line leaves, so the line never wraps.
            let style =
                ProgressStyle::with_template("{wide_bar} {pos}/{len} done, {msg}, ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(done_before as u64);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(200));
            View::Bar(bar)
        } else {
            View::Lines { last: None }
        };
        Self {
            total,
            started: Instant::now(),
            done_before,
            view,
        }
    }

    /// `tally`: the rows finished (written or not yet); `running`: the
    /// jobs submitted and not finished.
    pub fn update(&mut self, tally: &Tally, running: usize) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let fresh = tally.done().saturating_sub(self.done_before) as f64;
        let rate = if elapsed > 0.0 { fresh / elapsed } else { 0.0 };
        let message = format!(
            "{} ok, {} failed, {running} running, {rate:.1} rows/s",
            tally.succeeded, tally.failed
        );
        match &mut self.view {
            View::Bar(bar) => {
                bar.set_position(tally.done() as u64);
                bar.set_message(message);
            }
            View::Lines { last } => {
                let finished = tally.done() == self.total;
                if !finished && last.is_some_and(|at| at.elapsed() < LINE_EVERY) {
                    return;
                }
                *last = Some(Instant::now());
                let left = self.total - tally.done();
                let eta = if rate > 0.0 {
                    format!("{:.0} s", left as f64 / rate)
                } else {
                    "?".to_owned()
                };
                eprintln!(
                    "progress: {}/{} done, {message}, ETA {eta}",
                    tally.done(),
                    self.total
                );
            }
        }
    }

    pub fn finish(&self) {
        if let View::Bar(bar) = &self.view {
            bar.finish();
        }
    }
}
