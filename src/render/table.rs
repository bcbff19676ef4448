//! Plain text tables for a terminal: columns padded to their widest cell, indented by
//! two spaces and three spaces apart. Widths count characters, so names with accents
//! (Fès-Meknès) line up too.

/// A table of text cells: the first column left-aligned, the others right-aligned
/// (numbers), unless `right` says otherwise. A header of empty strings is not printed.
pub struct Table {
    pub head: Vec<String>,
    /// Per column: right-aligned.
    pub right: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(head: &[&str]) -> Table {
        Table {
            head: head.iter().map(|h| h.to_string()).collect(),
            right: (0..head.len()).map(|i| i > 0).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// One line per row (and the header), each ending in a newline, without trailing
    /// spaces.
    pub fn render(&self) -> String {
        let width = |cell: &str| cell.chars().count();
        let mut widths: Vec<usize> = self.head.iter().map(|h| width(h)).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(width(c));
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&self.right)
                .map(|((c, w), right)| {
                    let pad = " ".repeat(w - width(c));
                    if *right {
                        format!("{pad}{c}")
                    } else {
                        format!("{c}{pad}")
                    }
                })
                .collect();
            format!("  {}", padded.join("   ")).trim_end().to_string() + "\n"
        };
        let mut out = String::new();
        if self.head.iter().any(|h| !h.is_empty()) {
            out += &line(&self.head);
        }
        for r in &self.rows {
            out += &line(r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up_whatever_the_cell_widths() {
        let mut t = Table::new(&["region", "total"]);
        t.row(vec!["Fès-Meknès".into(), "1,000.00".into()]);
        t.row(vec!["Oriental".into(), "5.00".into()]);
        assert_eq!(
            t.render(),
            "  region          total\n  Fès-Meknès   1,000.00\n  Oriental         5.00\n"
        );
    }
}
