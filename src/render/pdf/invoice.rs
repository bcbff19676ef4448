//! The invoice's layout: the first page's header, customer and particulars, the line
//! table continued on further pages, the totals beside the allowances used, the footer on
//! every page, and the assembled PDF file.

use super::draw::{Rgb, Sheet};
use super::encoding::{winansi, WIN_ANSI};
use super::font::{wrap, Font};
use crate::domain::billing::{fixed, minor_unit, AllowanceUse, Invoice, InvoiceLine};
use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use pdf_writer::{Date, Finish, Pdf, Rect, Ref, TextStr};
use rust_decimal::Decimal;

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
pub(super) const DESC_W: f32 = 290.0;
const QTY_RIGHT: f32 = 432.0;
const AMOUNT_RIGHT: f32 = RIGHT - PAD;
/// A one-line table row; each further line of a wrapped description adds `LEADING`.
const ROW_H: f32 = 20.0;
const LEADING: f32 = 11.0;
/// The totals column, right of the allowance summary.
const TOTALS_X: f32 = 338.0;
/// The allowance summary's label column, which leaves room for its three figures.
const ALLOWANCE_W: f32 = 104.0;

pub(super) const BODY: f32 = 9.0;
const SMALL: f32 = 7.5;

const INK: Rgb = Rgb(0.13, 0.15, 0.18);
const MUTED: Rgb = Rgb(0.42, 0.45, 0.50);
const RULE: Rgb = Rgb(0.86, 0.88, 0.91);
const ACCENT: Rgb = Rgb(0.09, 0.26, 0.42);
const BAND: Rgb = Rgb(0.93, 0.95, 0.97);
const CREDIT: Rgb = Rgb(0.08, 0.45, 0.27);
const WHITE: Rgb = Rgb(1.0, 1.0, 1.0);

/// The document being laid out: its finished pages and where the next block goes.
pub(super) struct Doc<'a> {
    inv: &'a Invoice,
    tz: Tz,
    /// The currency's minor-unit decimals, so `5` prints as `5.00`.
    dp: u32,
    sheets: Vec<Sheet>,
    /// Top of the free space on the last sheet.
    y: f32,
}

impl<'a> Doc<'a> {
    pub(super) fn new(inv: &'a Invoice, tz: Tz) -> Self {
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
        let mut sheet = Sheet::new();
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
    pub(super) fn first_page(&mut self) {
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

    pub(super) fn table(&mut self) {
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
    pub(super) fn summary(&mut self) {
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
    pub(super) fn finish(mut self) -> Vec<u8> {
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
            pdf.type1_font(id)
                .base_font(font.base_font())
                .encoding_predefined(WIN_ANSI);
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
            pdf.stream(content_id, &sheet.finish());
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
