//! An [`Invoice`] as an A4 PDF: the operator's header, the customer, the line table
//! (continued on further pages when it is long), the totals and the allowances used.
//! Text is set in the PDF's built-in Helvetica, so no font is embedded or read from disk,
//! and written in WinAnsiEncoding so `pdftotext`, search and screen readers get it back.
//! The same invoice always gives the same bytes: the only date inside is `issued_at`.

use crate::domain::billing::{fixed, minor_unit, AllowanceUse, Invoice, InvoiceLine};
use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use pdf_writer::{Content, Date, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
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

// Geometry, in points (1/72 inch), origin at the bottom left of the page.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const LEFT: f32 = 48.0;
const RIGHT: f32 = PAGE_W - LEFT;
/// Nothing but the footer goes below this line.
const FLOOR: f32 = 70.0;
/// Text inside the table and the summary sits this far in from the edges of its band.
const PAD: f32 = 8.0;
const DESC_X: f32 = LEFT + PAD;
const DESC_W: f32 = 290.0;
const QTY_RIGHT: f32 = 432.0;
const AMOUNT_RIGHT: f32 = RIGHT - PAD;
/// A one-line table row; each further line of a wrapped description adds `LEADING`.
const ROW_H: f32 = 20.0;
const LEADING: f32 = 11.0;
/// The totals column, right of the allowance summary.
const TOTALS_X: f32 = 338.0;
/// The allowance summary's label column, which leaves room for its three figures.
const ALLOWANCE_W: f32 = 104.0;

const BODY: f32 = 9.0;
const SMALL: f32 = 7.5;

#[derive(Clone, Copy)]
struct Rgb(f32, f32, f32);

const INK: Rgb = Rgb(0.13, 0.15, 0.18);
const MUTED: Rgb = Rgb(0.42, 0.45, 0.50);
const RULE: Rgb = Rgb(0.86, 0.88, 0.91);
const ACCENT: Rgb = Rgb(0.09, 0.26, 0.42);
const BAND: Rgb = Rgb(0.93, 0.95, 0.97);
const CREDIT: Rgb = Rgb(0.08, 0.45, 0.27);
const WHITE: Rgb = Rgb(1.0, 1.0, 1.0);

#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    /// The name each page's resources give the font.
    fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
        }
    }

    /// Advance width of one WinAnsi byte, in thousandths of the font size.
    ///
    /// Printable ASCII comes from Adobe's Core 14 AFM files for Helvetica and
    /// Helvetica-Bold (as shipped in groff's `font/devps/HR` and `HB`, with WinAnsi's
    /// quotesingle, asciicircum, grave and asciitilde at 39, 94, 96 and 126). Accented
    /// Latin-1 letters take the width of a letter of about their size, which is exact
    /// for most of them; the few other characters we encode are listed; anything else
    /// is counted as a digit. Only alignment and wrapping depend on these numbers.
    fn width(self, b: u8) -> u16 {
        let (ascii, quote, dquote) = match self {
            Font::Regular => (&HELVETICA, 222, 333),
            Font::Bold => (&HELVETICA_BOLD, 278, 500),
        };
        match b {
            32..=126 => ascii[usize::from(b - 32)],
            0x91 | 0x92 => quote,
            0x93 | 0x94 => dquote,
            0x95 => 350,
            0x85 | 0x97 => 1000,
            0xC0..=0xFF => self.width(LATIN1_FOLD[usize::from(b - 0xC0)]),
            _ => 556,
        }
    }

    /// Width of `text` set at `size` points.
    fn measure(self, text: &[u8], size: f32) -> f32 {
        let units: u32 = text.iter().map(|&b| u32::from(self.width(b))).sum();
        units as f32 * size / 1000.0
    }
}

#[rustfmt::skip]
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

#[rustfmt::skip]
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
];

/// For U+00C0..=U+00FF, an ASCII character of the same Helvetica width or close to it
/// (À → A, Æ → W, ß → g, ì → I, ...).
const LATIN1_FOLD: &[u8; 64] = b"AAAAAAWCEEEEIIIIDNOOOOO+OUUUUYPgaaaaaamceeeeIIIIonooooo+ouuuuypy";

/// `text` in WinAnsiEncoding. Latin-1 maps to itself and the Windows-1252 punctuation
/// an operator may type (dashes, curly quotes, ellipsis, bullet, euro) to its code; a
/// character Helvetica cannot show, such as Arabic script, becomes `?` rather than
/// being dropped, so the reader sees that something is missing.
fn winansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{A0}' | '\t' | '\n' | '\r' => b' ',
            '\u{A1}'..='\u{FF}' => c as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            _ => b'?',
        })
        .collect()
}

/// `text` broken at spaces into lines no wider than `max`; a word longer than a line is
/// cut where it overflows.
fn wrap(text: &[u8], font: Font, size: f32, max: f32) -> Vec<Vec<u8>> {
    let fits = |line: &[u8]| font.measure(line, size) <= max;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in text.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let mut joined = line.clone();
        if !joined.is_empty() {
            joined.push(b' ');
        }
        joined.extend_from_slice(word);
        if fits(&joined) {
            line = joined;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        for &b in word {
            line.push(b);
            if !fits(&line) && line.len() > 1 {
                line.pop();
                lines.push(std::mem::replace(&mut line, vec![b]));
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// One page's drawing operations.
struct Sheet(Content);

impl Sheet {
    fn text(&mut self, x: f32, y: f32, font: Font, size: f32, color: Rgb, text: &[u8]) {
        let Rgb(r, g, b) = color;
        self.0
            .set_fill_rgb(r, g, b)
            .begin_text()
            .set_font(font.name(), size)
            .next_line(x, y)
            .show(Str(text))
            .end_text();
    }

    fn text_right(&mut self, right: f32, y: f32, font: Font, size: f32, color: Rgb, text: &[u8]) {
        let x = right - font.measure(text, size);
        self.text(x, y, font, size, color, text);
    }

    fn rule(&mut self, x1: f32, x2: f32, y: f32, width: f32, color: Rgb) {
        let Rgb(r, g, b) = color;
        self.0
            .set_stroke_rgb(r, g, b)
            .set_line_width(width)
            .move_to(x1, y)
            .line_to(x2, y)
            .stroke();
    }

    fn fill(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        let Rgb(r, g, b) = color;
        self.0.set_fill_rgb(r, g, b).rect(x, y, w, h).fill_nonzero();
    }
}

/// The document being laid out: its finished pages and where the next block goes.
struct Doc<'a> {
    inv: &'a Invoice,
    tz: Tz,
    /// The currency's minor-unit decimals, so `5` prints as `5.00`.
    dp: u32,
    sheets: Vec<Sheet>,
    /// Top of the free space on the last sheet.
    y: f32,
}

impl<'a> Doc<'a> {
    fn new(inv: &'a Invoice, tz: Tz) -> Self {
        Doc {
            inv,
            tz,
            dp: minor_unit(&inv.currency),
            sheets: Vec::new(),
            y: PAGE_H,
        }
    }

    fn sheet(&mut self) -> &mut Sheet {
        if self.sheets.is_empty() {
            self.new_sheet();
        }
        let last = self.sheets.len() - 1;
        &mut self.sheets[last]
    }

    fn new_sheet(&mut self) {
        let mut sheet = Sheet(Content::new());
        sheet.fill(0.0, PAGE_H - 8.0, PAGE_W, 8.0, ACCENT);
        self.sheets.push(sheet);
        self.y = PAGE_H - 8.0;
    }

    /// "INVOICE", or "ESTIMATE" for a month-to-date figure, which has no number yet.
    fn title(&self) -> &'static str {
        if self.inv.number.is_empty() {
            "ESTIMATE"
        } else {
            "INVOICE"
        }
    }

    fn money(&self, amount: Decimal) -> Vec<u8> {
        winansi(&fixed(amount, self.dp).to_string())
    }

    /// The operator's header, the customer and the invoice's particulars.
    fn first_page(&mut self) {
        let inv = self.inv;
        self.new_sheet();
        let title = winansi(self.title());
        let top = PAGE_H - 62.0;
        let s = self.sheet();
        s.text(LEFT, top, Font::Bold, 20.0, INK, &winansi(&inv.seller.name));
        s.text_right(RIGHT, top, Font::Bold, 20.0, ACCENT, &title);
        s.rule(LEFT, RIGHT, top - 16.0, 0.75, RULE);

        let mut meta: Vec<(&str, String)> = Vec::new();
        if !inv.number.is_empty() {
            meta.push(("Invoice number", inv.number.clone()));
        }
        let issued = inv.issued_at.map_or_else(
            || "Not issued".to_string(),
            |t| t.with_timezone(&self.tz).date_naive().to_string(),
        );
        meta.push(("Issue date", issued));
        meta.push((
            "Billing period",
            format!("{} – {}", inv.period_start, inv.period_end),
        ));
        meta.push(("Currency", inv.currency.clone()));

        let block = top - 42.0;
        let s = self.sheet();
        let mut y = block;
        for (label, value) in &meta {
            s.text(TOTALS_X, y, Font::Regular, 8.0, MUTED, &winansi(label));
            s.text_right(RIGHT, y, Font::Bold, BODY, INK, &winansi(value));
            y -= 14.0;
        }
        let meta_bottom = y;

        s.text(LEFT, block, Font::Bold, SMALL, MUTED, b"BILL TO");
        let mut y = block - 17.0;
        for line in wrap(
            &winansi(&inv.customer.name),
            Font::Bold,
            12.0,
            TOTALS_X - LEFT - 20.0,
        ) {
            s.text(LEFT, y, Font::Bold, 12.0, INK, &line);
            y -= 14.0;
        }
        y -= 2.0;
        let c = &inv.customer;
        let mut rows = vec![
            ("MSISDN", c.msisdn.clone()),
            ("Customer ID", c.id.to_string()),
            ("Plan", inv.plan_name.clone()),
        ];
        if let Some(region) = &c.region {
            rows.push(("Region", region.clone()));
        }
        for (label, value) in rows {
            s.text(LEFT, y, Font::Regular, 8.0, MUTED, &winansi(label));
            s.text(LEFT + 64.0, y, Font::Regular, BODY, INK, &winansi(&value));
            y -= 13.0;
        }
        self.y = y.min(meta_bottom) - 16.0;
    }

    /// A page after the first: a short header so a loose sheet still says whose it is.
    fn continuation_page(&mut self) {
        let inv = self.inv;
        let label = if inv.number.is_empty() {
            "Estimate (continued)".to_string()
        } else {
            format!("Invoice {} (continued)", inv.number)
        };
        self.new_sheet();
        let top = PAGE_H - 40.0;
        let s = self.sheet();
        s.text(LEFT, top, Font::Bold, 11.0, INK, &winansi(&inv.seller.name));
        s.text_right(RIGHT, top, Font::Regular, BODY, MUTED, &winansi(&label));
        s.rule(LEFT, RIGHT, top - 10.0, 0.75, RULE);
        self.y = top - 26.0;
    }

    fn table_header(&mut self) {
        let y = self.y;
        let amount = winansi(&format!("AMOUNT ({})", self.inv.currency));
        let s = self.sheet();
        s.fill(LEFT, y - 20.0, RIGHT - LEFT, 20.0, ACCENT);
        let base = y - 13.0;
        s.text(DESC_X, base, Font::Bold, SMALL, WHITE, b"DESCRIPTION");
        s.text_right(QTY_RIGHT, base, Font::Bold, SMALL, WHITE, b"QUANTITY");
        s.text_right(AMOUNT_RIGHT, base, Font::Bold, SMALL, WHITE, &amount);
        self.y = y - 20.0;
    }

    fn table(&mut self) {
        self.table_header();
        if self.inv.lines.is_empty() {
            let y = self.y;
            let s = self.sheet();
            s.text(
                DESC_X,
                y - 13.0,
                Font::Regular,
                BODY,
                MUTED,
                b"No charges in this period.",
            );
            s.rule(LEFT, RIGHT, y - ROW_H, 0.75, INK);
            self.y = y - ROW_H;
            return;
        }
        let last = self.inv.lines.len() - 1;
        for (i, line) in self.inv.lines.iter().enumerate() {
            self.row(line, i == last);
        }
    }

    fn row(&mut self, line: &InvoiceLine, last: bool) {
        let desc = wrap(&winansi(&line.description), Font::Regular, BODY, DESC_W);
        let height = ROW_H + LEADING * (desc.len() - 1) as f32;
        if self.y - height < FLOOR {
            self.continuation_page();
            self.table_header();
        }
        let top = self.y;
        let base = top - 13.0;
        let quantity = match (&line.quantity, &line.unit) {
            (Some(q), Some(u)) => format!("{} {u}", quantity(*q)),
            (Some(q), None) => quantity(*q),
            _ => String::new(),
        };
        let amount = self.money(line.amount);
        // Credits (allowances, discounts, refunds) stand out from what is charged.
        let color = if line.amount.is_sign_negative() && !line.amount.is_zero() {
            CREDIT
        } else {
            INK
        };
        let s = self.sheet();
        for (i, text) in desc.iter().enumerate() {
            s.text(
                DESC_X,
                base - LEADING * i as f32,
                Font::Regular,
                BODY,
                INK,
                text,
            );
        }
        s.text_right(
            QTY_RIGHT,
            base,
            Font::Regular,
            BODY,
            MUTED,
            &winansi(&quantity),
        );
        s.text_right(AMOUNT_RIGHT, base, Font::Regular, BODY, color, &amount);
        if last {
            s.rule(LEFT, RIGHT, top - height, 0.75, INK);
        } else {
            s.rule(LEFT, RIGHT, top - height, 0.5, RULE);
        }
        self.y = top - height;
    }

    /// Totals on the right and, beside them, what the plan's allowances covered; kept
    /// together on one page.
    fn summary(&mut self) {
        let allowance_rows: Vec<(Vec<Vec<u8>>, &AllowanceUse)> = self
            .inv
            .allowances
            .iter()
            .map(|a| {
                (
                    wrap(
                        &winansi(&allowance_label(a)),
                        Font::Regular,
                        8.0,
                        ALLOWANCE_W,
                    ),
                    a,
                )
            })
            .collect();
        let allowances_h = if allowance_rows.is_empty() {
            0.0
        } else {
            28.0 + allowance_rows
                .iter()
                .map(|(l, _)| 13.0 + LEADING * (l.len() - 1) as f32)
                .sum::<f32>()
        };
        let totals_h: f32 = 64.0;
        let gap = 18.0;
        if self.y - gap - totals_h.max(allowances_h) < FLOOR {
            self.continuation_page();
        }
        let top = self.y - gap;

        let inv = self.inv;
        let subtotal = self.money(inv.subtotal);
        let vat = self.money(inv.vat);
        let total = winansi(&format!("{} {}", fixed(inv.total, self.dp), inv.currency));
        let vat_label = winansi(&format!(
            "VAT {}%",
            (inv.vat_rate * Decimal::ONE_HUNDRED).normalize()
        ));
        let s = self.sheet();
        let x = TOTALS_X + PAD;
        s.text(x, top - 8.0, Font::Regular, BODY, MUTED, b"Subtotal");
        s.text_right(AMOUNT_RIGHT, top - 8.0, Font::Regular, BODY, INK, &subtotal);
        s.text(x, top - 24.0, Font::Regular, BODY, MUTED, &vat_label);
        s.text_right(AMOUNT_RIGHT, top - 24.0, Font::Regular, BODY, INK, &vat);
        s.fill(TOTALS_X, top - 60.0, RIGHT - TOTALS_X, 26.0, BAND);
        s.rule(TOTALS_X, RIGHT, top - 34.0, 1.0, ACCENT);
        s.text(x, top - 51.0, Font::Bold, 12.0, INK, b"Total");
        s.text_right(AMOUNT_RIGHT, top - 51.0, Font::Bold, 12.0, ACCENT, &total);

        if !allowance_rows.is_empty() {
            let cols = [(212.0, "INCLUDED"), (262.0, "USED"), (312.0, "LEFT")];
            s.text(LEFT, top - 8.0, Font::Bold, SMALL, MUTED, b"ALLOWANCES");
            for (right, label) in cols {
                s.text_right(right, top - 8.0, Font::Bold, SMALL, MUTED, label.as_bytes());
            }
            s.rule(LEFT, 312.0, top - 13.0, 0.5, RULE);
            let mut y = top - 25.0;
            for (label, a) in &allowance_rows {
                for (i, text) in label.iter().enumerate() {
                    s.text(LEFT, y - LEADING * i as f32, Font::Regular, 8.0, INK, text);
                }
                for ((right, _), value) in cols.iter().zip([a.granted, a.used, a.left]) {
                    let value = winansi(&format!("{} {}", quantity(value), a.unit));
                    s.text_right(*right, y, Font::Regular, 8.0, INK, &value);
                }
                y -= 13.0 + LEADING * (label.len() - 1) as f32;
            }
        }
    }

    /// The footer on every page, now that the page count is known, and the file.
    fn finish(mut self) -> Vec<u8> {
        let inv = self.inv;
        let note = winansi(&format!(
            "Catalog version {}. Amounts in {}; VAT on the rounded subtotal.",
            inv.catalog_version, inv.currency
        ));
        let count = self.sheets.len();
        for (i, s) in self.sheets.iter_mut().enumerate() {
            s.rule(LEFT, RIGHT, 50.0, 0.5, RULE);
            s.text(LEFT, 38.0, Font::Regular, SMALL, MUTED, &note);
            let page = format!("Page {} of {count}", i + 1);
            s.text_right(RIGHT, 38.0, Font::Regular, SMALL, MUTED, page.as_bytes());
        }

        let catalog_id = Ref::new(1);
        let tree_id = Ref::new(2);
        let regular_id = Ref::new(3);
        let bold_id = Ref::new(4);
        let info_id = Ref::new(5);
        let first_page = 6;
        let page_ids: Vec<Ref> = (0..count)
            .map(|i| Ref::new(first_page + 2 * i as i32))
            .collect();

        let mut pdf = Pdf::new();
        pdf.catalog(catalog_id).pages(tree_id);
        pdf.pages(tree_id)
            .kids(page_ids.iter().copied())
            .count(count as i32);
        for (font, id) in [(Font::Regular, regular_id), (Font::Bold, bold_id)] {
            let base: Name = match font {
                Font::Regular => Name(b"Helvetica"),
                Font::Bold => Name(b"Helvetica-Bold"),
            };
            pdf.type1_font(id)
                .base_font(base)
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }
        for (sheet, page_id) in self.sheets.into_iter().zip(&page_ids) {
            let content_id = Ref::new(page_id.get() + 1);
            let mut page = pdf.page(*page_id);
            page.parent(tree_id)
                .media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
                .contents(content_id);
            page.resources()
                .fonts()
                .pair(Font::Regular.name(), regular_id)
                .pair(Font::Bold.name(), bold_id);
            page.finish();
            pdf.stream(content_id, &sheet.0.finish());
        }

        let title = if inv.number.is_empty() {
            format!("Estimate {} to {}", inv.period_start, inv.period_end)
        } else {
            format!("Invoice {}", inv.number)
        };
        let mut info = pdf.document_info(info_id);
        info.title(TextStr(&title))
            .author(TextStr(&inv.seller.name))
            .creator(TextStr("cdrflow"));
        if let Some(t) = inv.issued_at {
            if let Ok(year) = u16::try_from(t.year()) {
                // chrono's fields are in range (month 1-12, hour 0-23, ...), so the
                // narrowing casts cannot wrap.
                info.creation_date(
                    Date::new(year)
                        .month(t.month() as u8)
                        .day(t.day() as u8)
                        .hour(t.hour() as u8)
                        .minute(t.minute() as u8)
                        .second(t.second() as u8)
                        .utc_offset_hour(0),
                );
            }
        }
        info.finish();
        pdf.finish()
    }
}

/// A quantity as people write it: `120` rather than `120.00`, `95.50` kept as it is.
fn quantity(q: Decimal) -> String {
    if q.fract().is_zero() {
        q.trunc().normalize().to_string()
    } else {
        q.to_string()
    }
}

/// "Voice (National, Mobile)": the service and the zones an allowance covers.
fn allowance_label(a: &AllowanceUse) -> String {
    let service = match a.service.as_str() {
        "voice" => "Voice",
        "sms" => "SMS",
        "data" => "Data",
        other => other,
    };
    if a.zones.is_empty() {
        service.to_string()
    } else {
        format!("{service} ({})", a.zones.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::{BillTo, LineKind, Seller};
    use chrono::{NaiveDate, TimeZone, Utc};
    use std::path::PathBuf;
    use std::process::Command;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn line(
        kind: LineKind,
        description: &str,
        quantity: Option<(&str, &str)>,
        amount: &str,
    ) -> InvoiceLine {
        InvoiceLine {
            kind,
            description: description.to_string(),
            service: None,
            date: None,
            quantity: quantity.map(|(q, _)| d(q)),
            unit: quantity.map(|(_, u)| u.to_string()),
            rated: None,
            amount: d(amount),
        }
    }

    /// Amina's October: usage of every service, an allowance and a student discount
    /// taken off, the regulatory fee; 20% VAT.
    fn amina() -> Invoice {
        let lines = vec![
            line(
                LineKind::Usage,
                "Voice calls (42)",
                Some(("95.50", "min")),
                "47.75",
            ),
            line(
                LineKind::Usage,
                "SMS (120)",
                Some(("120.00", "SMS")),
                "12.00",
            ),
            line(
                LineKind::Usage,
                "Mobile data (310 sessions)",
                Some(("8192.00", "MB")),
                "81.92",
            ),
            line(
                LineKind::PlanFee,
                "Monthly fee, Student Plus",
                None,
                "49.00",
            ),
            line(
                LineKind::Allowance,
                "Included 60 min voice (National): 60 used",
                Some(("60.00", "min")),
                "-30.00",
            ),
            line(LineKind::Discount, "Student discount 10%", None, "-16.07"),
            line(LineKind::RegulatoryFee, "Regulatory fee", None, "2.50"),
        ];
        Invoice {
            number: "INV-2026-10-000123".to_string(),
            seller: Seller {
                name: "Atlas Mobile".to_string(),
                currency: "MAD".to_string(),
                timezone: "Africa/Casablanca".to_string(),
            },
            customer: BillTo {
                id: 1042,
                name: "Amina El Fassi".to_string(),
                msisdn: "+212612345678".to_string(),
                plan: "student-plus".to_string(),
                region: Some("Casablanca-Settat".to_string()),
                is_student: true,
                activated_on: NaiveDate::from_ymd_opt(2024, 9, 1).unwrap(),
            },
            plan_name: "Student Plus".to_string(),
            period_start: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            period_end: NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
            catalog_version: 7,
            currency: "MAD".to_string(),
            lines,
            subtotal: d("147.10"),
            vat_rate: d("0.2"),
            vat: d("29.42"),
            total: d("176.52"),
            allowances: vec![
                AllowanceUse {
                    service: "voice".to_string(),
                    zones: vec!["National".to_string()],
                    unit: "min".to_string(),
                    granted: d("60.00"),
                    used: d("60.00"),
                    left: d("0.00"),
                    credit: d("30.000000"),
                },
                AllowanceUse {
                    service: "data".to_string(),
                    zones: vec!["National".to_string(), "Roaming Zone 1".to_string()],
                    unit: "MB".to_string(),
                    granted: d("1024.00"),
                    used: d("0.00"),
                    left: d("1024.00"),
                    credit: d("0.000000"),
                },
            ],
            issued_at: Some(Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap()),
        }
    }

    /// Eighty usage adjustments, more than a page holds.
    fn long_invoice() -> Invoice {
        let mut inv = amina();
        inv.lines = (1..=80)
            .map(|i| {
                line(
                    LineKind::Adjustment,
                    &format!("Late usage batch {i:02} of 2026-09-{:02}", i % 30 + 1),
                    None,
                    &format!("{i}.25"),
                )
            })
            .collect();
        inv.subtotal = inv.lines.iter().map(|l| l.amount).sum();
        inv.vat = fixed(inv.subtotal * inv.vat_rate, 2);
        inv.total = inv.subtotal + inv.vat;
        inv
    }

    fn write_temp(bytes: &[u8], name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("cdrflow-{}-{name}.pdf", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Run a poppler tool on `pdf`; poppler-utils is a test dependency, installed by
    /// the test script.
    fn poppler(tool: &str, args: &[&str], pdf: &[u8], name: &str) -> String {
        let path = write_temp(pdf, name);
        let out = Command::new(tool)
            .args(args)
            .arg(&path)
            .arg("-")
            .output()
            .unwrap_or_else(|e| panic!("{tool} not runnable ({e}): apt-get install poppler-utils"));
        std::fs::remove_file(&path).unwrap();
        assert!(
            out.status.success(),
            "{tool}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn text_of(pdf: &[u8], name: &str) -> String {
        poppler("pdftotext", &["-layout"], pdf, name)
    }

    fn pages_of(pdf: &[u8], name: &str) -> usize {
        let path = write_temp(pdf, name);
        let out = Command::new("pdfinfo").arg(&path).output().unwrap();
        std::fs::remove_file(&path).unwrap();
        let info = String::from_utf8(out.stdout).unwrap();
        let pages = info.lines().find_map(|l| l.strip_prefix("Pages:")).unwrap();
        pages.trim().parse().unwrap()
    }

    #[test]
    fn the_invoice_text_can_be_extracted_with_every_line_and_its_amount_on_one_row() {
        let inv = amina();
        let text = text_of(&invoice_pdf(&inv).unwrap(), "extract");
        for expected in [
            "Atlas Mobile",
            "INVOICE",
            "Amina El Fassi",
            "+212612345678",
            "INV-2026-10-000123",
            "1042",
            "Student Plus",
            "Casablanca-Settat",
            "2026-11-01",
            "2026-10-01 – 2026-10-31",
            "Catalog version 7. Amounts in MAD; VAT on the rounded subtotal.",
            "Page 1 of 1",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        for l in &inv.lines {
            let row = text.lines().find(|r| r.contains(&l.description));
            let row = row.unwrap_or_else(|| panic!("{:?} missing from:\n{text}", l.description));
            assert!(
                row.contains(&l.amount.to_string()),
                "{:?} without {}",
                row,
                l.amount
            );
        }
        let row = |label: &str| {
            text.lines()
                .find(|r| r.contains(label))
                .unwrap()
                .to_string()
        };
        assert!(row("Subtotal").contains("147.10"));
        assert!(row("VAT 20%").contains("29.42"));
        assert!(row("Total").contains("176.52 MAD"));
        assert!(row("95.50 min").contains("Voice calls (42)"));
        assert!(row("120 SMS").contains("SMS (120)"));
    }

    #[test]
    fn an_invoice_of_eighty_lines_continues_on_further_pages_with_every_line() {
        let inv = long_invoice();
        let pdf = invoice_pdf(&inv).unwrap();
        let pages = pages_of(&pdf, "long-info");
        assert!(pages >= 2, "{pages} page(s)");
        let text = text_of(&pdf, "long");
        for l in &inv.lines {
            let row = text.lines().find(|r| r.contains(&l.description));
            let row = row.unwrap_or_else(|| panic!("{:?} missing", l.description));
            assert!(row.contains(&l.amount.to_string()));
        }
        assert!(text.contains(&format!("Page {pages} of {pages}")));
        assert!(text.contains("Invoice INV-2026-10-000123 (continued)"));
        assert!(text.contains(&format!("{} MAD", inv.total)));
    }

    #[test]
    fn rendering_the_same_invoice_twice_gives_the_same_bytes() {
        assert_eq!(
            invoice_pdf(&amina()).unwrap(),
            invoice_pdf(&amina()).unwrap()
        );
        assert_eq!(
            invoice_pdf(&long_invoice()).unwrap(),
            invoice_pdf(&long_invoice()).unwrap()
        );
    }

    #[test]
    fn the_creation_date_is_the_issue_time_and_nothing_else_varies() {
        let pdf = invoice_pdf(&amina()).unwrap();
        let raw = String::from_utf8_lossy(&pdf);
        assert!(raw.contains("(D:20261101063000Z)"), "{raw}");
        let mut unissued = amina();
        unissued.issued_at = None;
        let pdf = invoice_pdf(&unissued).unwrap();
        assert!(!String::from_utf8_lossy(&pdf).contains("CreationDate"));
        assert!(text_of(&pdf, "unissued").contains("Not issued"));
    }

    #[test]
    fn the_issue_date_is_the_operators_day() {
        let mut inv = amina();
        // 23:30 UTC on the 31st is already 1 November in Casablanca (UTC+1).
        inv.issued_at = Some(Utc.with_ymd_and_hms(2026, 10, 31, 23, 30, 0).unwrap());
        let text = text_of(&invoice_pdf(&inv).unwrap(), "tz");
        let row = text.lines().find(|r| r.contains("Issue date")).unwrap();
        assert!(row.contains("2026-11-01"), "{row}");
    }

    #[test]
    fn an_estimate_has_no_number_and_says_so() {
        let mut inv = amina();
        inv.number = String::new();
        inv.issued_at = None;
        let text = text_of(&invoice_pdf(&inv).unwrap(), "estimate");
        assert!(text.contains("ESTIMATE"));
        assert!(!text.contains("Invoice number"));
    }

    #[test]
    fn accented_names_survive_and_other_scripts_show_a_question_mark() {
        let mut inv = amina();
        inv.customer.name = "Amina El Fassi-Bénani أمينة".to_string();
        let text = text_of(&invoice_pdf(&inv).unwrap(), "accents");
        assert!(text.contains("Amina El Fassi-Bénani ?????"), "{text}");
    }

    #[test]
    fn a_long_description_wraps_inside_its_column_and_keeps_every_word() {
        let mut inv = amina();
        let long = "Included 3000 min voice (National, International Zone 1, International \
                    Zone 2, Roaming Zone 1, Roaming Zone 2): 2999.50 used";
        inv.lines[4].description = long.to_string();
        let pdf = invoice_pdf(&inv).unwrap();
        let text = text_of(&pdf, "wrap");
        let words: Vec<&str> = text.split_whitespace().collect();
        for w in long.split_whitespace() {
            assert!(words.contains(&w), "{w:?} missing from:\n{text}");
        }
        let wrapped = wrap(&winansi(long), Font::Regular, BODY, DESC_W);
        assert!(wrapped.len() >= 2);
        assert!(wrapped
            .iter()
            .all(|l| Font::Regular.measure(l, BODY) <= DESC_W));
    }

    #[test]
    fn an_invoice_whose_lines_do_not_add_up_is_refused() {
        let mut inv = amina();
        inv.lines[0].amount = d("47.76");
        assert!(matches!(
            invoice_pdf(&inv),
            Err(PdfError::DoesNotAddUp {
                what: "the subtotal",
                ..
            })
        ));
        let mut inv = amina();
        inv.total = d("176.53");
        assert!(matches!(
            invoice_pdf(&inv),
            Err(PdfError::DoesNotAddUp {
                what: "the total",
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_seller_time_zone_is_refused() {
        let mut inv = amina();
        inv.seller.timezone = "Mars/Olympus".to_string();
        assert_eq!(
            invoice_pdf(&inv),
            Err(PdfError::UnknownTimezone("Mars/Olympus".to_string()))
        );
    }

    #[test]
    fn helvetica_widths_match_the_afm_for_digits_and_letters() {
        // From Helvetica.afm: "0" 556, "i" 222, "W" 944; Helvetica-Bold "i" 278, "m" 889.
        assert_eq!(
            Font::Regular.measure(b"0i W", 1000.0),
            556.0 + 222.0 + 278.0 + 944.0
        );
        assert_eq!(Font::Bold.measure(b"im", 1000.0), 278.0 + 889.0);
        assert_eq!(Font::Regular.width(winansi("é")[0]), 556);
    }

    /// Writes the sample invoice to the path in `CDRFLOW_WRITE_SAMPLE`, for
    /// `docs/invoice-sample.png` (`pdftoppm -png -r 80 -singlefile`).
    #[test]
    #[ignore = "writes a file; run with CDRFLOW_WRITE_SAMPLE=/tmp/sample.pdf and --ignored"]
    fn the_sample_invoice_is_written_where_asked() {
        // Unset when a run takes every ignored test, the timing one included.
        let Ok(path) = std::env::var("CDRFLOW_WRITE_SAMPLE") else {
            println!("CDRFLOW_WRITE_SAMPLE is not set: no sample written");
            return;
        };
        std::fs::write(path, invoice_pdf(&amina()).unwrap()).unwrap();
    }

    /// `cargo test --release --lib render -- --ignored --nocapture`
    #[test]
    #[ignore = "timing; run in release with --ignored --nocapture"]
    fn a_thousand_invoices_render_in_reasonable_time() {
        let inv = amina();
        let invoices: Vec<Invoice> = (0..1000)
            .map(|i| {
                let mut inv = inv.clone();
                inv.number = format!("INV-2026-10-{i:06}");
                inv.customer.id = 1000 + i;
                inv
            })
            .collect();
        let start = std::time::Instant::now();
        let bytes: usize = invoices.iter().map(|i| invoice_pdf(i).unwrap().len()).sum();
        let took = start.elapsed();
        println!(
            "{} invoices of {} lines: {:.3} ms per invoice, {} bytes per PDF",
            invoices.len(),
            inv.lines.len(),
            took.as_secs_f64() * 1000.0 / invoices.len() as f64,
            bytes / invoices.len()
        );
    }
}
