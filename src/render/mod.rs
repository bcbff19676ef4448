//! Output documents rendered from domain values: an [`Invoice`](crate::domain::billing::Invoice)
//! in, the bytes of a file out. Pure like the domain: no I/O, no clock, no settings, so
//! the same value always renders to the same bytes and callers decide where they go.

pub mod pdf;
