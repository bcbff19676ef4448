//! The plan of a `cdrflow replay`: which stored offsets it acts on, where each one goes,
//! and whether the broker's offsets-for-times answers can be trusted. Pure: the command
//! reads the stored offsets and asks the broker, this module decides, and the command
//! applies the moves in one transaction.
//!
//! Replay only ever moves offsets back: a forward move would skip records unprocessed,
//! so it is refused as a whole, and nothing is changed. With `--rerate`, the records
//! already accepted below the old position are priced again when they come back; the
//! bound only ever rises, so an earlier replay's re-pricing is never cut short.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// A partition's stored position, with up to where a `replay --rerate` asked for
/// re-pricing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredOffset {
    pub next_offset: i64,
    pub rerate_below: Option<i64>,
}

/// Where the chosen partitions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Offset(i64),
    Shift(i64),
    /// The broker's answers (checked); a partition without a record at or after the
    /// time stays.
    FirstAtOrAfter(Answers),
}

/// One chosen partition: where it stands and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub partition: i32,
    pub stored: i64,
    pub new: i64,
    /// `rerate_below` once the command is applied.
    pub rerate_below: Option<i64>,
    /// This command raises `rerate_below` (--rerate on a partition that moves).
    pub sets_rerate: bool,
}

impl Move {
    pub fn to_replay(&self) -> i64 {
        self.stored - self.new
    }

    pub fn moves(&self) -> bool {
        self.new != self.stored
    }
}

/// Why a replay is refused; nothing has been changed when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("group `{group}` has no stored offsets on topic `{topic}`: it has consumed nothing there to replay (check --group and --topic)")]
    NothingStored { group: String, topic: String },
    #[error("{} no stored offset for group `{group}` on topic `{topic}`", partition_list(.partitions))]
    NotStored {
        partitions: Vec<i32>,
        group: String,
        topic: String,
    },
    #[error("refusing to move forward, which would skip records unprocessed: {}; nothing was changed", forward_list(.0))]
    Forward(Vec<(i32, i64, i64)>),
    #[error("the broker gave no offset for partition {0}")]
    NoAnswer(i32),
    #[error("could not read the record at offset {offset} of partition {partition} to check the broker's answer; nothing was changed")]
    Unverified { partition: i32, offset: i64 },
}

/// The broker's offsets-for-times answer per partition; `None`: no record at or after
/// the time.
pub type Answers = BTreeMap<i32, Option<i64>>;

/// The offset and timestamp of the first record the broker delivered from a position,
/// per partition; a partition it delivered nothing from is absent.
pub type FirstRecords = BTreeMap<i32, (i64, Option<DateTime<Utc>>)>;

/// The answers to check before they are trusted (partition → answered offset): those
/// that would move a chosen partition back.
pub fn answers_to_check(
    found: &Answers,
    chosen: &BTreeMap<i32, StoredOffset>,
) -> BTreeMap<i32, i64> {
    found
        .iter()
        .filter_map(|(p, n)| Some((*p, (*n)?)))
        .filter(|(p, n)| chosen.get(p).is_some_and(|s| *n < s.next_offset))
        .collect()
}

/// A partition whose offsets-for-times answer points at a record older than the time
/// asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doubt {
    pub partition: i32,
    pub answered: i64,
    pub record_time: DateTime<Utc>,
}

/// Check the broker's answers that would move a partition (`checked`: partition →
/// answered offset) against the first record read from there. Kafka answers the first
/// offset whose record is at or after the time, or "none"; a record there that is older
/// means the broker found none and said so wrongly (tansu 0.6 answers 0 instead of
/// "none") or is wrong in some other way. Either way the partition stays where it is:
/// staying never skips a record, and the doubt is reported.
pub fn check_answers(
    mut found: Answers,
    checked: &BTreeMap<i32, i64>,
    records: &FirstRecords,
    at: DateTime<Utc>,
) -> Result<(Answers, Vec<Doubt>), PlanError> {
    let mut doubts = Vec::new();
    for (&partition, &answered) in checked {
        match records.get(&partition) {
            Some(&(offset, Some(record_time))) if offset == answered && record_time < at => {
                doubts.push(Doubt {
                    partition,
                    answered,
                    record_time,
                });
                found.insert(partition, None);
            }
            Some(_) => {}
            None => {
                return Err(PlanError::Unverified {
                    partition,
                    offset: answered,
                })
            }
        }
    }
    Ok((found, doubts))
}

fn partition_list(p: &[i32]) -> String {
    let list: Vec<String> = p.iter().map(i32::to_string).collect();
    match p.len() {
        1 => format!("partition {} has", list[0]),
        _ => format!("partitions {} have", list.join(", ")),
    }
}

fn forward_list(f: &[(i32, i64, i64)]) -> String {
    f.iter()
        .map(|(p, stored, new)| format!("partition {p}: stored offset {stored}, new offset {new}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The stored rows the command acts on: those named in `wanted`, or all when it is empty.
pub fn select(
    stored: &BTreeMap<i32, StoredOffset>,
    wanted: &[i32],
    group: &str,
    topic: &str,
) -> Result<BTreeMap<i32, StoredOffset>, PlanError> {
    if stored.is_empty() {
        return Err(PlanError::NothingStored {
            group: group.into(),
            topic: topic.into(),
        });
    }
    if wanted.is_empty() {
        return Ok(stored.clone());
    }
    let mut missing: Vec<i32> = wanted
        .iter()
        .copied()
        .filter(|p| !stored.contains_key(p))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        return Err(PlanError::NotStored {
            partitions: missing,
            group: group.into(),
            topic: topic.into(),
        });
    }
    Ok(stored
        .iter()
        .filter(|(p, _)| wanted.contains(p))
        .map(|(p, s)| (*p, *s))
        .collect())
}

/// The new offset of every chosen partition, or why the whole command is refused.
pub fn plan(
    chosen: &BTreeMap<i32, StoredOffset>,
    destination: &Destination,
    rerate: bool,
) -> Result<Vec<Move>, PlanError> {
    let mut moves = Vec::with_capacity(chosen.len());
    let mut forward = Vec::new();
    for (&partition, s) in chosen {
        let stored = s.next_offset;
        let new = match destination {
            Destination::Offset(n) => *n,
            Destination::Shift(n) => stored.saturating_add(*n).max(0),
            Destination::FirstAtOrAfter(found) => match found.get(&partition) {
                Some(Some(n)) => *n,
                Some(None) => stored,
                None => return Err(PlanError::NoAnswer(partition)),
            },
        };
        if new > stored {
            forward.push((partition, stored, new));
        }
        let sets_rerate = rerate && new < stored;
        moves.push(Move {
            partition,
            stored,
            new,
            rerate_below: if sets_rerate {
                Some(s.rerate_below.unwrap_or(0).max(stored))
            } else {
                s.rerate_below
            },
            sets_rerate,
        });
    }
    if forward.is_empty() {
        Ok(moves)
    } else {
        Err(PlanError::Forward(forward))
    }
}

/// Stored offsets of (partition, next offset), none in a rerate range: for tests.
#[cfg(test)]
pub(crate) fn stored(rows: &[(i32, i64)]) -> BTreeMap<i32, StoredOffset> {
    rows.iter()
        .map(|&(p, n)| {
            (
                p,
                StoredOffset {
                    next_offset: n,
                    rerate_below: None,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_offsets(moves: &[Move]) -> Vec<(i32, i64)> {
        moves.iter().map(|m| (m.partition, m.new)).collect()
    }

    #[test]
    fn to_offset_moves_every_chosen_partition_to_that_offset() {
        let m = plan(
            &stored(&[(0, 100), (1, 50)]),
            &Destination::Offset(20),
            false,
        )
        .unwrap();
        assert_eq!(new_offsets(&m), [(0, 20), (1, 20)]);
        assert_eq!(m.iter().map(Move::to_replay).collect::<Vec<_>>(), [80, 30]);
    }

    #[test]
    fn to_offset_at_the_stored_offset_moves_nothing() {
        let m = plan(&stored(&[(3, 40)]), &Destination::Offset(40), true).unwrap();
        assert!(!m[0].moves());
        assert_eq!(m[0].to_replay(), 0);
        assert!(
            !m[0].sets_rerate,
            "nothing comes back, so nothing is re-rated"
        );
        assert_eq!(m[0].rerate_below, None);
    }

    #[test]
    fn a_negative_shift_rewinds_and_stops_at_zero() {
        let m = plan(
            &stored(&[(0, 1500), (1, 300)]),
            &Destination::Shift(-1000),
            false,
        )
        .unwrap();
        assert_eq!(new_offsets(&m), [(0, 500), (1, 0)]);
    }

    #[test]
    fn a_positive_shift_is_refused_naming_the_partition_and_both_offsets() {
        let e = plan(&stored(&[(2, 10)]), &Destination::Shift(5), false).unwrap_err();
        assert_eq!(e, PlanError::Forward(vec![(2, 10, 15)]));
        let text = e.to_string();
        assert!(
            text.contains("partition 2") && text.contains("10") && text.contains("15"),
            "{text}"
        );
    }

    #[test]
    fn one_forward_partition_refuses_the_whole_command() {
        let e = plan(
            &stored(&[(0, 100), (1, 5), (2, 7)]),
            &Destination::Offset(6),
            false,
        )
        .unwrap_err();
        assert_eq!(e, PlanError::Forward(vec![(1, 5, 6)]));
    }

    #[test]
    fn the_broker_answer_is_the_new_offset_and_no_answer_leaves_the_partition() {
        let found = BTreeMap::from([(0, Some(30)), (1, None)]);
        let m = plan(
            &stored(&[(0, 100), (1, 80)]),
            &Destination::FirstAtOrAfter(found),
            false,
        )
        .unwrap();
        assert_eq!(new_offsets(&m), [(0, 30), (1, 80)]);
    }

    #[test]
    fn a_broker_offset_past_the_stored_one_is_refused() {
        let found = BTreeMap::from([(0, Some(130))]);
        let e = plan(
            &stored(&[(0, 100)]),
            &Destination::FirstAtOrAfter(found),
            false,
        )
        .unwrap_err();
        assert_eq!(e, PlanError::Forward(vec![(0, 100, 130)]));
    }

    #[test]
    fn a_partition_the_broker_did_not_answer_for_is_an_error() {
        let e = plan(
            &stored(&[(0, 100)]),
            &Destination::FirstAtOrAfter(BTreeMap::new()),
            false,
        )
        .unwrap_err();
        assert_eq!(e, PlanError::NoAnswer(0));
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn a_broker_answer_pointing_at_an_older_record_is_taken_as_no_record_and_reported() {
        let t = at("2026-09-14T08:00:00Z");
        let found = BTreeMap::from([(0, Some(0)), (1, Some(40)), (2, None)]);
        let checked = BTreeMap::from([(0, 0), (1, 40)]);
        let records = BTreeMap::from([
            (0, (0, Some(at("2026-09-14T07:59:59.999Z")))),
            (1, (40, Some(t))),
        ]);
        let (found, doubts) = check_answers(found, &checked, &records, t).unwrap();
        assert_eq!(found, BTreeMap::from([(0, None), (1, Some(40)), (2, None)]));
        assert_eq!(
            doubts,
            [Doubt {
                partition: 0,
                answered: 0,
                record_time: at("2026-09-14T07:59:59.999Z")
            }]
        );
    }

    #[test]
    fn a_broker_answer_whose_record_cannot_be_read_refuses_the_command() {
        let t = at("2026-09-14T08:00:00Z");
        let e = check_answers(
            BTreeMap::from([(3, Some(12))]),
            &BTreeMap::from([(3, 12)]),
            &BTreeMap::new(),
            t,
        )
        .unwrap_err();
        assert_eq!(
            e,
            PlanError::Unverified {
                partition: 3,
                offset: 12
            }
        );
    }

    #[test]
    fn a_record_past_the_answered_offset_or_without_a_timestamp_is_no_reason_for_doubt() {
        let t = at("2026-09-14T08:00:00Z");
        let found = BTreeMap::from([(0, Some(5)), (1, Some(9))]);
        let checked = BTreeMap::from([(0, 5), (1, 9)]);
        // Offset 5 is a transaction marker, so the first record read is 6; partition 1's
        // record carries no timestamp.
        let records = BTreeMap::from([(0, (6, Some(at("2026-09-14T07:00:00Z")))), (1, (9, None))]);
        let (checked_found, doubts) = check_answers(found.clone(), &checked, &records, t).unwrap();
        assert_eq!(checked_found, found);
        assert!(doubts.is_empty());
    }

    #[test]
    fn rerate_raises_the_bound_to_the_old_offset_and_never_lowers_it() {
        let mut s = stored(&[(0, 100), (1, 100)]);
        s.get_mut(&1).unwrap().rerate_below = Some(250);
        let m = plan(&s, &Destination::Offset(0), true).unwrap();
        assert_eq!(m[0].rerate_below, Some(100));
        assert_eq!(m[1].rerate_below, Some(250));
        assert!(m.iter().all(|m| m.sets_rerate));
    }

    #[test]
    fn without_rerate_the_bound_is_left_as_it_was() {
        let mut s = stored(&[(0, 100)]);
        s.get_mut(&0).unwrap().rerate_below = Some(60);
        let m = plan(&s, &Destination::Offset(0), false).unwrap();
        assert_eq!(m[0].rerate_below, Some(60));
        assert!(!m[0].sets_rerate);
    }

    #[test]
    fn no_partitions_named_means_every_stored_one() {
        let s = stored(&[(0, 1), (4, 2)]);
        assert_eq!(select(&s, &[], "g", "t").unwrap(), s);
    }

    #[test]
    fn named_partitions_are_the_only_ones_chosen() {
        let s = stored(&[(0, 1), (2, 2), (5, 3)]);
        let chosen = select(&s, &[5, 0], "g", "t").unwrap();
        assert_eq!(chosen.keys().copied().collect::<Vec<_>>(), [0, 5]);
    }

    #[test]
    fn a_named_partition_without_a_stored_offset_is_named_in_the_error() {
        let e = select(&stored(&[(0, 1)]), &[0, 7], "billing", "cdr.raw").unwrap_err();
        assert_eq!(
            e.to_string(),
            "partition 7 has no stored offset for group `billing` on topic `cdr.raw`"
        );
    }

    #[test]
    fn a_group_with_nothing_stored_on_the_topic_is_an_error() {
        let e = select(&BTreeMap::new(), &[], "billing", "cdr.raw").unwrap_err();
        assert!(matches!(e, PlanError::NothingStored { .. }));
        assert!(e.to_string().contains("no stored offsets"), "{e}");
    }

    #[test]
    fn only_answers_that_would_move_a_partition_back_are_checked() {
        let found = BTreeMap::from([(0, Some(30)), (1, Some(80)), (2, Some(90)), (3, None)]);
        let chosen = stored(&[(0, 100), (1, 80), (2, 50), (3, 10)]);
        assert_eq!(answers_to_check(&found, &chosen), BTreeMap::from([(0, 30)]));
    }
}
