//! Table-driven checks that run every case and report every failure together.

use std::fmt::Display;

/// Collects the failures of a table of cases; [`finish`](Cases::finish) panics listing all of
/// them (so one run shows every broken case, not only the first).
#[derive(Debug, Default)]
#[must_use = "call finish() to report the failures"]
pub struct Cases {
    what: String,
    run: usize,
    failures: Vec<String>,
}

impl Cases {
    /// A table named `what` (used in the report).
    pub fn new(what: impl Into<String>) -> Cases {
        Cases {
            what: what.into(),
            ..Default::default()
        }
    }

    /// Records case `name`: a failure when `result` is `Err`.
    pub fn check<E: Display>(&mut self, name: impl Display, result: Result<(), E>) {
        self.run += 1;
        if let Err(e) = result {
            self.failures.push(format!("{name}: {e}"));
        }
    }

    /// Records case `name` as failed with `message` unless `ok`.
    pub fn expect(&mut self, name: impl Display, ok: bool, message: impl FnOnce() -> String) {
        self.check(name, if ok { Ok(()) } else { Err(message()) });
    }

    /// How many cases were recorded.
    pub fn len(&self) -> usize {
        self.run
    }

    /// Whether no case was recorded.
    pub fn is_empty(&self) -> bool {
        self.run == 0
    }

    /// Panics with every failure, if any.
    pub fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} cases failed:\n  {}",
            self.what,
            self.failures.len(),
            self.run,
            self.failures.join("\n  ")
        );
    }
}
