//! Text as WinAnsiEncoding bytes, the encoding the built-in fonts are declared with.

use pdf_writer::Name;

/// The predefined encoding the fonts are declared with, which [`winansi`] writes.
pub(super) const WIN_ANSI: Name<'static> = Name(b"WinAnsiEncoding");

/// `text` in WinAnsiEncoding. Latin-1 maps to itself and the Windows-1252 punctuation
/// an operator may type (dashes, curly quotes, ellipsis, bullet, euro) to its code; a
/// character Helvetica cannot show, such as Arabic script, becomes `?` rather than
/// being dropped, so the reader sees that something is missing.
pub(super) fn winansi(text: &str) -> Vec<u8> {
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
