//! The drawing primitives of one page: text (left- or right-aligned), horizontal rules
//! and filled rectangles, in RGB colours.

use super::font::Font;
use pdf_writer::{Buf, Content, Str};

/// A fill or stroke colour, each component from 0 to 1.
#[derive(Clone, Copy)]
pub(super) struct Rgb(pub(super) f32, pub(super) f32, pub(super) f32);

/// One page's drawing operations.
pub(super) struct Sheet(Content);

impl Sheet {
    pub(super) fn new() -> Self {
        Sheet(Content::new())
    }

    /// The page's content stream.
    pub(super) fn finish(self) -> Buf {
        self.0.finish()
    }

    pub(super) fn text(&mut self, x: f32, y: f32, font: Font, size: f32, color: Rgb, text: &[u8]) {
        let Rgb(r, g, b) = color;
        self.0
            .set_fill_rgb(r, g, b)
            .begin_text()
            .set_font(font.name(), size)
            .next_line(x, y)
            .show(Str(text))
            .end_text();
    }

    pub(super) fn text_right(
        &mut self,
        right: f32,
        y: f32,
        font: Font,
        size: f32,
        color: Rgb,
        text: &[u8],
    ) {
        let x = right - font.measure(text, size);
        self.text(x, y, font, size, color, text);
    }

    pub(super) fn rule(&mut self, x1: f32, x2: f32, y: f32, width: f32, color: Rgb) {
        let Rgb(r, g, b) = color;
        self.0
            .set_stroke_rgb(r, g, b)
            .set_line_width(width)
            .move_to(x1, y)
            .line_to(x2, y)
            .stroke();
    }

    pub(super) fn fill(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        let Rgb(r, g, b) = color;
        self.0.set_fill_rgb(r, g, b).rect(x, y, w, h).fill_nonzero();
    }
}
