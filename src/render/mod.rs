//! Output documents rendered from values: an [`Invoice`](crate::domain::billing::Invoice)
//! or a report table in, the bytes of a file out. Pure like the domain: no I/O, no clock, no settings, so
//! the same value always renders to the same bytes and callers decide where they go.

pub mod explain;
pub mod numbers;
pub mod pdf;
pub mod replay;
pub mod report;
pub mod summary;
pub mod table;
