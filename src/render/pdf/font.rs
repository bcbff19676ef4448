//! Helvetica and Helvetica-Bold as the PDF's built-in fonts: the names pages use for
//! them, their advance widths, and text measured and wrapped with those widths.

use pdf_writer::Name;

#[derive(Clone, Copy)]
pub(super) enum Font {
    Regular,
    Bold,
}

impl Font {
    /// The name each page's resources give the font.
    pub(super) fn name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
        }
    }

    /// The standard Type 1 font the file declares, which every PDF reader has.
    pub(super) fn base_font(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"Helvetica"),
            Font::Bold => Name(b"Helvetica-Bold"),
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
    pub(super) fn width(self, b: u8) -> u16 {
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
    pub(super) fn measure(self, text: &[u8], size: f32) -> f32 {
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

/// `text` broken at spaces into lines no wider than `max`; a word longer than a line is
/// cut where it overflows.
pub(super) fn wrap(text: &[u8], font: Font, size: f32, max: f32) -> Vec<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::pdf::encoding::winansi;

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
}
