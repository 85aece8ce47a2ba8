//! Pagination that never ends is detected, not obeyed: a next URL or cursor this run has
//! used lately (A→B→A as well as A→A), or a page whose records are exactly the previous
//! page's (an API that ignores the page parameter, a `has_more` that never turns false) or
//! the first page's (an API that wraps round to its start).

use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::FixedState;
use indexmap::IndexMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How many of the latest next URLs and cursors the guard remembers. The loops APIs fall
/// into are short: the cursor just sent handed back, or two or three positions taking
/// turns (replicas behind a balancer, one of them behind); an API that wraps round to its
/// start is caught by its first page's records, however long the round. 64 is many times
/// the length of those cycles, also when one spans a resume, while the checkpoint, which
/// holds the window and is rewritten after every page, stays a few KB however long the run:
/// remembering every position made it grow by some 36 bytes a page.
pub const WINDOW: usize = 64;

/// What the loop checks remember. It is saved in the checkpoint, so a resumed run still
/// knows the cursors and the last page it saw: without it, resuming after a loop was
/// caught would append the repeated page once more before catching it again.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guard {
    /// Hashes of the latest [`WINDOW`] next URLs and cursors used, with the page each
    /// fetched, oldest first.
    seen: IndexMap<u64, u64>,
    /// How many were ever remembered, those gone from the window included: a copy that
    /// has the first `n` catches up with only what came after.
    remembered: u64,
    /// Fingerprint of the previous page's records.
    previous: Option<u64>,
    /// Fingerprint of the first page's records: an API that ignores the parameter it is
    /// paged with answers every page with them.
    #[serde(default)]
    first: Option<u64>,
}

impl Guard {
    /// How many next URLs and cursors the guard was ever told of.
    pub fn remembered(&self) -> u64 {
        self.remembered
    }

    /// What a copy that was told of this guard's first `known` next URLs and cursors
    /// lacks, for [`Guard::catch_up`]: handing over only what is new keeps a copy after
    /// every page cheap.
    pub fn since(&self, known: u64) -> Guard {
        let new = usize::try_from(self.remembered - known).unwrap_or(usize::MAX);
        let from = self.seen.len().saturating_sub(new);
        Guard {
            seen: (self.seen.iter().skip(from))
                .map(|(k, v)| (*k, *v))
                .collect(),
            remembered: self.remembered,
            previous: self.previous,
            first: self.first,
        }
    }

    /// Brings this copy up to date with `news`, what [`Guard::since`] gave. A key already
    /// here left the original's window and came back: it moves to the end, as it did there.
    pub fn catch_up(&mut self, news: Guard) {
        for (key, page) in news.seen {
            self.seen.shift_remove(&key);
            self.seen.insert(key, page);
        }
        self.forget_the_oldest();
        self.remembered = news.remembered;
        self.previous = news.previous;
        self.first = news.first;
    }

    /// Notes that `key` (a URL or a cursor, tagged with its kind) fetched page `page`.
    pub(super) fn remember(&mut self, key: &str, page: u64) {
        if let indexmap::map::Entry::Vacant(entry) = self.seen.entry(hash(key)) {
            entry.insert(page);
            self.remembered += 1;
            self.forget_the_oldest();
        }
    }

    fn forget_the_oldest(&mut self) {
        let over = self.seen.len().saturating_sub(WINDOW);
        self.seen.drain(..over);
    }

    /// Fails if `key` already fetched a page of this run; `what` names it for the message.
    pub(super) fn check_new(
        &self,
        key: &str,
        page: u64,
        what: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        match self.seen.get(&hash(key)) {
            Some(first) => Err(Error::BadResponse(format!(
                "pagination loop: page {page} sent {} again, which already fetched page {first}; stopping",
                what()
            ))),
            None => Ok(()),
        }
    }

    /// Remembers the first page's records.
    pub(super) fn note_first(&mut self, records: &[&str]) {
        self.first = (!records.is_empty()).then(|| fingerprint(records));
    }

    /// Whether `records` are exactly the first page's.
    pub(super) fn is_first(&self, records: &[&str]) -> bool {
        !records.is_empty() && self.first == Some(fingerprint(records))
    }

    /// Whether `records` are exactly the previous page's.
    pub(super) fn repeats(&self, records: &[&str]) -> bool {
        !records.is_empty() && self.previous == Some(fingerprint(records))
    }

    /// Fails if page `page` holds exactly the records of the page before it; `hint` ends
    /// the message with what to do about it.
    pub(super) fn check_page(
        &mut self,
        records: &[&str],
        page: u64,
        hint: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        if records.is_empty() {
            self.previous = None;
            return Ok(());
        }
        let fingerprint = fingerprint(records);
        if self.previous == Some(fingerprint) {
            return Err(Error::BadResponse(format!(
                "pagination loop: page {page} repeated the {} records of page {}{}",
                records.len(),
                page - 1,
                hint()
            )));
        }
        self.previous = Some(fingerprint);
        Ok(())
    }
}

/// The hasher for everything the guard remembers. Its hashes are saved in the checkpoint,
/// so they must be the same in every process of this binary: a fixed seed, never a random
/// one. Not SipHash (`DefaultHasher`): fingerprinting hashes every byte of every page, and
/// nothing here needs a hash that resists crafted collisions. (The checkpoint layout
/// changes with the hasher, so a checkpoint saved with another is never compared.)
fn hasher() -> impl Hasher {
    FixedState::with_seed(0).build_hasher()
}

pub(super) fn hash(value: impl Hash) -> u64 {
    let mut hasher = hasher();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Identifies a page by its records' exact text.
fn fingerprint(records: &[&str]) -> u64 {
    let mut hasher = hasher();
    for record in records {
        record.hash(&mut hasher);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_that_catches_up_equals_the_guard_and_still_catches_loops() {
        let mut guard = Guard::default();
        let mut copy = Guard::default();
        guard.remember("cursor A", 1);
        guard.remember("cursor B", 2);
        copy.catch_up(guard.since(copy.remembered()));
        assert_eq!(copy, guard);
        guard.remember("cursor C", 3);
        guard.remember("cursor A", 9);
        assert_eq!(guard.since(copy.remembered()).seen.len(), 1);
        copy.catch_up(guard.since(copy.remembered()));
        assert_eq!(copy, guard);
        let saved: Guard = serde_json::from_str(&serde_json::to_string(&copy).unwrap()).unwrap();
        let err = saved
            .check_new("cursor B", 4, || "cursor `B`".into())
            .unwrap_err();
        assert!(err.to_string().contains("already fetched page 2"), "{err}");
    }

    #[test]
    fn the_guard_keeps_a_window_of_the_latest_positions() {
        let mut guard = Guard::default();
        for page in 1..=1000 {
            guard.remember(&format!("cursor {page}"), page);
        }
        assert_eq!((guard.seen.len(), guard.remembered()), (WINDOW, 1000));
        let recent = format!("cursor {}", 1001 - WINDOW);
        let err = guard
            .check_new(&recent, 1001, || recent.clone())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("already fetched page {}", 1001 - WINDOW)),
            "{err}"
        );
        let forgotten = format!("cursor {}", 1000 - WINDOW);
        assert!(guard.check_new(&forgotten, 1001, String::new).is_ok());
        let saved = serde_json::to_string(&guard).unwrap();
        assert!(saved.len() < 3000, "{} bytes", saved.len());
    }

    /// Copies brought up to date now and then, some rarely (more news than the window
    /// holds), equal the guard, also when a forgotten position comes back.
    #[test]
    fn copies_catch_up_across_the_window() {
        let mut guard = Guard::default();
        let mut copies = [1, 7, WINDOW as u64 + 5].map(|every| (every, Guard::default()));
        for step in 1..=500u64 {
            // Position 3 leaves the window, then comes back at step 200.
            let key = if step == 200 { 3 } else { step };
            guard.remember(&format!("cursor {key}"), step);
            for (every, copy) in &mut copies {
                if step % *every == 0 {
                    copy.catch_up(guard.since(copy.remembered()));
                    assert_eq!(*copy, guard, "caught up every {every} at {step}");
                }
            }
        }
    }
}
