//! Pagination that never ends is detected, not obeyed: a next URL or cursor this run has
//! used before (A→B→A as well as A→A), or a page whose records are exactly the previous
//! page's (an API that ignores the page parameter, a `has_more` that never turns false).

use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::FixedState;
use indexmap::IndexMap;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What the loop checks remember. It is saved in the checkpoint, so a resumed run still
/// knows the cursors and the last page it saw: without it, resuming after a loop was
/// caught would append the repeated page once more before catching it again.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guard {
    /// Hashes of every next URL and cursor used, with the page they fetched, in the order
    /// they were used (so a copy can catch up with only what is new).
    seen: IndexMap<u64, u64>,
    /// Fingerprint of the previous page's records.
    previous: Option<u64>,
    /// Fingerprint of the first page's records: an API that ignores the parameter it is
    /// paged with answers every page with them.
    #[serde(default)]
    first: Option<u64>,
}

impl Guard {
    /// How many next URLs and cursors the guard remembers.
    pub fn entries(&self) -> usize {
        self.seen.len()
    }

    /// What a copy that holds this guard's first `known` entries lacks, for
    /// [`Guard::catch_up`]: handing over only what is new keeps a copy after every page
    /// cheap however long the run.
    pub fn since(&self, known: usize) -> Guard {
        Guard {
            seen: self
                .seen
                .iter()
                .skip(known)
                .map(|(k, v)| (*k, *v))
                .collect(),
            previous: self.previous,
            first: self.first,
        }
    }

    /// Brings this copy up to date with `news`, what [`Guard::since`] gave.
    pub fn catch_up(&mut self, news: Guard) {
        self.seen.extend(news.seen);
        self.previous = news.previous;
        self.first = news.first;
    }

    /// Notes that `key` (a URL or a cursor, tagged with its kind) fetched page `page`.
    pub(super) fn remember(&mut self, key: &str, page: u64) {
        self.seen.entry(hash(key)).or_insert(page);
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
        copy.catch_up(guard.since(copy.entries()));
        assert_eq!(copy, guard);
        guard.remember("cursor C", 3);
        guard.remember("cursor A", 9);
        assert_eq!(guard.since(copy.entries()).entries(), 1);
        copy.catch_up(guard.since(copy.entries()));
        assert_eq!(copy, guard);
        let saved: Guard = serde_json::from_str(&serde_json::to_string(&copy).unwrap()).unwrap();
        let err = saved
            .check_new("cursor B", 4, || "cursor `B`".into())
            .unwrap_err();
        assert!(err.to_string().contains("already fetched page 2"), "{err}");
    }
}
