//! What `cdrflow replay` prints: the command as understood, the table of moves, notes on
//! broker answers taken as "no record", and what happened (a dry run, nothing to move,
//! or the rewind applied). Pure text from the plan.

use crate::domain::replay::{Doubt, Move};
use std::fmt::Write as _;

/// A replay's outcome, for [`summary`].
pub struct Summary<'a> {
    pub group: &'a str,
    pub topic: &'a str,
    /// Where the partitions go, as the command was given: "to offset 0", "shifted by -5".
    pub description: &'a str,
    pub rerate: bool,
    pub dry_run: bool,
    pub moves: &'a [Move],
    pub doubts: &'a [Doubt],
}

/// Everything the command prints on success.
pub fn summary(s: &Summary) -> String {
    let Summary {
        group,
        topic,
        description,
        rerate,
        dry_run,
        moves,
        doubts,
    } = *s;
    let moving = moves.iter().filter(|m| m.moves()).count();
    let mut out = format!(
        "replay of group `{group}` on topic `{topic}`, {description}{}{}:\n",
        if rerate { ", re-rating" } else { "" },
        if dry_run { " (dry run)" } else { "" }
    );
    out.push_str(&table(moves));
    for d in doubts {
        let _ = writeln!(
            out,
            "note: for partition {} the broker answered offset {}, but the record there is from \
             {}, before the time asked for: taken as no record at or after it, so the partition \
             stays.",
            d.partition,
            d.answered,
            d.record_time
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
    }
    if dry_run {
        let _ = writeln!(out, "dry run: nothing changed.");
    } else if moving == 0 {
        let _ = writeln!(
            out,
            "nothing to replay: no partition moves; nothing changed."
        );
    } else {
        let _ = writeln!(
            out,
            "applied: {moving} partition(s) rewound in one transaction, {} records to replay.",
            moves.iter().map(Move::to_replay).sum::<i64>()
        );
        let _ = writeln!(
            out,
            "A running daemon picks the rewind up with its next batch on each rewound partition: \
             the batch's compare-and-set on the stored offset fails, nothing of it is committed, \
             and the source seeks to the new position. A partition that receives no new record \
             is picked up when one arrives or when the daemon next starts."
        );
    }
    if !rerate
        && moves
            .iter()
            .any(|m| m.moves() && m.rerate_below.is_some_and(|b| b > m.new))
    {
        let _ = writeln!(
                out,
            "note: partitions marked (earlier) keep the bound of an earlier --rerate replay that has not \
             reached it yet: \
             accepted records below it are priced again as they come back."
        );
    }
    out
}

/// The table of moves, one row per partition and a total.
pub fn table(moves: &[Move]) -> String {
    let mut out = format!(
        "{:>9} {:>12} {:>12} {:>12}  {}\n",
        "partition", "stored", "new", "to replay", "rerate"
    );
    for m in moves {
        let rerate = match m.rerate_below {
            Some(b) if m.sets_rerate => format!("below {b}"),
            // Left by an earlier --rerate replay and still reaching into this range.
            Some(b) if m.moves() && b > m.new => format!("below {b} (earlier)"),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:>9} {:>12} {:>12} {:>12}  {}",
            m.partition,
            m.stored,
            m.new,
            m.to_replay(),
            rerate
        );
    }
    let moving = moves.iter().filter(|m| m.moves()).count();
    let _ = writeln!(
        out,
        "{:>9} {:>12} {:>12} {:>12}  {} of {} partitions move",
        "total",
        "",
        "",
        moves.iter().map(Move::to_replay).sum::<i64>(),
        moving,
        moves.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::replay::{plan, stored, Destination};

    #[test]
    fn the_table_has_one_row_per_partition_and_the_total_to_replay() {
        let mut s = stored(&[(0, 100), (1, 40)]);
        s.get_mut(&1).unwrap().rerate_below = Some(90);
        let m = plan(&s, &Destination::Offset(40), false).unwrap();
        let text = table(&m);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            ["partition", "stored", "new", "to", "replay", "rerate"]
        );
        assert_eq!(lines[1], ["0", "100", "40", "60", "-"]);
        // Partition 1 does not move: an earlier bound does not matter to it.
        assert_eq!(lines[2], ["1", "40", "40", "0", "-"]);
        assert_eq!(
            lines[3],
            ["total", "60", "1", "of", "2", "partitions", "move"]
        );
    }

    #[test]
    fn the_table_shows_the_rerate_bound_this_replay_sets() {
        let m = plan(&stored(&[(0, 100)]), &Destination::Offset(0), true).unwrap();
        assert!(table(&m).lines().nth(1).unwrap().ends_with("below 100"));
    }

    #[test]
    fn a_dry_run_names_the_command_notes_each_doubt_and_says_nothing_changed() {
        let m = plan(&stored(&[(0, 100)]), &Destination::Offset(0), true).unwrap();
        let doubts = [Doubt {
            partition: 1,
            answered: 0,
            record_time: "2026-09-14T07:59:59.999Z".parse().unwrap(),
        }];
        let text = summary(&Summary {
            group: "g",
            topic: "cdr.raw",
            description: "to offset 0",
            rerate: true,
            dry_run: true,
            moves: &m,
            doubts: &doubts,
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "replay of group `g` on topic `cdr.raw`, to offset 0, re-rating (dry run):"
        );
        assert!(
            lines[4].starts_with(
                "note: for partition 1 the broker answered offset 0, but the record there is \
                 from 2026-09-14T07:59:59.999Z, before the time asked for"
            ),
            "{text}"
        );
        assert_eq!(lines[5], "dry run: nothing changed.");
        assert_eq!(lines.len(), 6, "{text}");
    }

    #[test]
    fn an_applied_replay_counts_the_records_to_replay() {
        let m = plan(
            &stored(&[(0, 100), (1, 30)]),
            &Destination::Offset(30),
            false,
        )
        .unwrap();
        let text = summary(&Summary {
            group: "g",
            topic: "cdr.raw",
            description: "to offset 30",
            rerate: false,
            dry_run: false,
            moves: &m,
            doubts: &[],
        });
        assert!(
            text.contains(
                "\napplied: 1 partition(s) rewound in one transaction, 70 records to replay.\n"
            ),
            "{text}"
        );
    }
}
