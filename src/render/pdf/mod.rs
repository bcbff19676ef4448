//! An [`Invoice`] as an A4 PDF: the operator's header, the customer, the line table
//! (continued on further pages when it is long), the totals and the allowances used.
//! Text is set in the PDF's built-in Helvetica, so no font is embedded or read from disk,
//! and written in WinAnsiEncoding so `pdftotext`, search and screen readers get it back.
//! The same invoice always gives the same bytes: the only date inside is `issued_at`.
//!
//! - this file: the entry point and the checks an invoice passes before it is drawn;
//! - `invoice`: the layout, page by page, and the assembled file;
//! - `draw`: the drawing primitives of one page;
//! - `font`: Helvetica's widths, measuring and wrapping text;
//! - `encoding`: text as WinAnsiEncoding bytes.

mod draw;
mod encoding;
mod font;
mod invoice;
#[cfg(test)]
mod tests;

use crate::domain::billing::Invoice;
use chrono_tz::Tz;
use invoice::Doc;
use rust_decimal::Decimal;

/// Why an invoice was not rendered. Every variant is a property of the invoice itself,
/// so rendering it again fails the same way: there is nothing to retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    /// Dates on the invoice are the operator's; printing them in another zone would
    /// put some invoices on the wrong day.
    #[error("seller time zone {0:?} is not an IANA time zone")]
    UnknownTimezone(String),
    /// A document whose printed figures do not add up must not reach a customer.
    #[error("invoice {number:?}: {what} is {found}, but its parts add up to {expected}")]
    DoesNotAddUp {
        number: String,
        what: &'static str,
        found: Decimal,
        expected: Decimal,
    },
}

/// Render `invoice` as a PDF document.
pub fn invoice_pdf(invoice: &Invoice) -> Result<Vec<u8>, PdfError> {
    check_sums(invoice)?;
    let tz: Tz = invoice
        .seller
        .timezone
        .parse()
        .map_err(|_| PdfError::UnknownTimezone(invoice.seller.timezone.clone()))?;
    let mut doc = Doc::new(invoice, tz);
    doc.first_page();
    doc.table();
    doc.summary();
    Ok(doc.finish())
}

fn check_sums(inv: &Invoice) -> Result<(), PdfError> {
    let lines: Decimal = inv.lines.iter().map(|l| l.amount).sum();
    let sums = [
        ("the subtotal", inv.subtotal, lines),
        ("the total", inv.total, inv.subtotal + inv.vat),
    ];
    for (what, found, expected) in sums {
        if found != expected {
            return Err(PdfError::DoesNotAddUp {
                number: inv.number.clone(),
                what,
                found,
                expected,
            });
        }
    }
    Ok(())
}
