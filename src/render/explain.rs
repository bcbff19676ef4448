//! `cdrflow explain` and `GET /api/events/{id}/explain` as text: what a customer-care
//! agent reads out when a customer disputes a charge. The record as received, its
//! normalization, the tariff lines with their arithmetic (recomputed with the catalog
//! version and plan that priced the event, and checked against the stored amount, so the
//! explanation cannot drift from the bill) and any re-rating. Pure: the callers read the
//! event, its catalog version and the original bytes.

use crate::domain::rating::{self, fixed};
use crate::storage::catalog::Version;
use crate::storage::explain::{Adjustment, Held, StoredEvent};
use std::fmt::Write as _;

/// The explanation of a stored event, and whether recomputing it gives the stored amount.
pub fn stored_event(
    id: &str,
    e: &StoredEvent,
    raw: Option<&[u8]>,
    catalog: Option<&Version>,
    adjustments: &[Adjustment],
) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(out, "Event {id}");
    let _ = writeln!(
        out,
        "Customer {} ({}), {}",
        e.customer_id, e.customer_name, e.cdr.subscriber
    );
    let _ = writeln!(
        out,
        "\n1. As received ({} partition {} offset {}, broker time {}):",
        e.src_topic,
        e.src_partition,
        e.src_offset,
        e.kafka_ts.map_or("-".into(), |t| t.to_rfc3339())
    );
    let _ = writeln!(
        out,
        "   {}",
        match &raw {
            Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            None => "(not available: the broker no longer holds it or did not answer)".into(),
        }
    );
    let c = &e.cdr;
    let _ = writeln!(
        out,
        "\n2. Normalized (stored {}):",
        e.ingested_at.to_rfc3339()
    );
    let _ = writeln!(
        out,
        "   {} by {} at {} UTC",
        c.record_type.as_str(),
        c.subscriber,
        c.event_time.format("%Y-%m-%d %H:%M:%S")
    );
    if let Some(p) = &c.peer {
        let _ = writeln!(
            out,
            "   peer {p} ({}, {}{})",
            c.peer_class.map_or("-", |k| k.as_str()),
            c.peer_country.as_deref().unwrap_or("-"),
            // An agent should know the zone came from the country code alone.
            if c.peer_unverified {
                ", unverified number"
            } else {
                ""
            }
        );
    }
    match c.record_type {
        crate::domain::RecordType::Voice => {
            let _ = writeln!(out, "   duration {} s", c.duration_sec.unwrap_or(0));
        }
        crate::domain::RecordType::Data => {
            let _ = writeln!(
                out,
                "   volume {} bytes, session {} s",
                c.volume_bytes.unwrap_or(0),
                c.session_duration_sec.unwrap_or(0)
            );
        }
        crate::domain::RecordType::Sms => {}
    }
    let _ = writeln!(
        out,
        "   cell {} → {} / {}, {}{}",
        c.cell_id,
        c.city.as_deref().unwrap_or("?"),
        c.region,
        c.technology.as_str(),
        c.roaming_country
            .as_deref()
            .map_or(String::new(), |r| format!(", roaming in {r}"))
    );

    let _ = writeln!(out, "\n3. Rating:");
    let (Some(version), Some(plan), Some(stored)) =
        (e.catalog_version, e.plan.as_deref(), e.amount)
    else {
        let _ = writeln!(out, "   not rated (stored before rating existed)");
        return (out, true);
    };
    let Some(catalog) = catalog else {
        let _ = writeln!(
            out,
            "   ! catalog version {version} that priced this event is missing"
        );
        return (out, false);
    };
    let mut matches = true;
    match rating::rate(&catalog.catalog, plan, c) {
        Ok(r) => {
            let _ = writeln!(out, "   catalog version {version} ({})", catalog.label);
            for line in r.explain(&catalog.catalog) {
                let _ = writeln!(out, "   {line}");
            }
            if r.amount == stored {
                let _ = writeln!(out, "   = the stored amount {} ✓", fixed(stored));
            } else {
                matches = false;
                let _ = writeln!(
                    out,
                    "   ! the stored amount is {}, not {}: the catalog or plan data changed since",
                    fixed(stored),
                    fixed(r.amount)
                );
            }
        }
        Err(err) => {
            matches = false;
            let _ = writeln!(out, "   cannot be recomputed: {err}");
        }
    }
    if !adjustments.is_empty() {
        let _ = writeln!(out, "\n4. Re-rating history:");
        for a in adjustments {
            let _ = writeln!(
                out,
                "   {} catalog v{}: {} → {} ({}{}) {}",
                a.created_at.format("%Y-%m-%d %H:%M"),
                a.catalog_version,
                fixed(a.old_amount),
                fixed(a.new_amount),
                if a.delta.is_sign_negative() { "" } else { "+" },
                fixed(a.delta),
                if a.in_place {
                    "updated in place (open period)".to_string()
                } else {
                    format!(
                        "owed as an adjustment: period {} was closed",
                        a.period.format("%Y-%m")
                    )
                }
            );
        }
    }
    (out, matches)
}

/// The explanation of a record still held in suspense.
pub fn held(id: &str, h: &Held) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Event {id} is held in suspense since {}: {}",
        h.created_at.to_rfc3339(),
        h.reason
    );
    let _ = writeln!(
        out,
        "\n1. As received ({} partition {} offset {}):\n   {}",
        h.src_topic,
        h.src_partition,
        h.src_offset,
        String::from_utf8_lossy(&h.raw)
    );
    let _ = writeln!(out, "\n2. Normalized:\n   {}", h.normalized);
    let _ = writeln!(out, "\n3. Rating: not yet — it is rated once its subscriber is a customer (cdrflow customers import).");
    out
}
