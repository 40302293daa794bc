//! Text for the PNG plots, laid out glyph by glyph with each glyph's own bearing (plotters' ab_glyph renderer drops
//! the left-side bearing, so "disaggregated" came out as "di saggregated"): a wrapper of the bitmap backend that
//! draws text itself and passes everything else through.

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind, FontTransform,
};
use std::sync::OnceLock;

/// The one face every plot uses (DejaVu Sans, bundled: no system fonts needed).
fn face() -> &'static FontRef<'static> {
    static FACE: OnceLock<FontRef<'static>> = OnceLock::new();
    FACE.get_or_init(|| FontRef::try_from_slice(dejavu::sans::regular()).expect("the bundled DejaVu Sans parses"))
}

/// Pen positions of a line of text at `size_px` (plotters' size: the font's ascent-to-descent height), its width
/// and height, and its ascent (the baseline's distance from the top).
struct Layout {
    glyphs: Vec<(GlyphId, f32)>,
    width: f32,
    height: f32,
    ascent: f32,
}

fn layout(text: &str, size_px: f64) -> Layout {
    let font = face().as_scaled(PxScale::from(size_px as f32));
    let (mut glyphs, mut pen, mut prev): (Vec<(GlyphId, f32)>, f32, Option<GlyphId>) = (Vec::new(), 0.0, None);
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            pen += font.kern(p, id);
        }
        glyphs.push((id, pen));
        pen += font.h_advance(id);
        prev = Some(id);
    }
    Layout { glyphs, width: pen, height: font.ascent() - font.descent(), ascent: font.ascent() }
}

/// Width and height in pixels of `text` at `size_px`, as the PNG plots draw it (for sizing a figure before drawing).
pub(crate) fn text_size(text: &str, size_px: f64) -> (u32, u32) {
    let l = layout(text, size_px);
    (l.width.ceil() as u32, l.height.ceil() as u32)
}

/// A bitmap backend whose text is drawn with correct glyph spacing; every other call goes to `inner` unchanged.
pub(crate) struct GlyphBackend<'a> {
    pub inner: BitMapBackend<'a>,
}

impl<'a> DrawingBackend for GlyphBackend<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        Ok(text_size(text, style.size()))
    }

    /// Lays the text out as plotters' default does (anchor, then rotation about `pos`), but places each glyph's
    /// outline at its pen position plus its own bearing, with anti-aliased coverage blended over the image.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let size = style.size();
        let l = layout(text, size);
        let (w, h) = (l.width.round() as i32, l.height.round() as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -w,
            HPos::Center => -w / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let scale = PxScale::from(size as f32);
        let (width, height) = self.get_size();
        for &(id, pen) in &l.glyphs {
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(pen, l.ascent));
            let Some(outline) = face().outline_glyph(glyph) else { continue };
            let bounds = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|x, y, coverage| {
                if coverage > 0.0 {
                    pixels.push((bounds.min.x as i32 + x as i32, bounds.min.y as i32 + y as i32, coverage));
                }
            });
            for (x, y, coverage) in pixels {
                let (x, y) = rotate(trans.clone(), x + dx, y + dy);
                let (x, y) = (pos.0 + x, pos.1 + y);
                if x >= 0 && y >= 0 && (x as u32) < width && (y as u32) < height {
                    let alpha = color.alpha * f64::from(coverage.min(1.0));
                    self.inner.draw_pixel((x, y), BackendColor { alpha, rgb: color.rgb })?;
                }
            }
        }
        Ok(())
    }
}

fn rotate(t: FontTransform, x: i32, y: i32) -> (i32, i32) {
    t.transform(x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders `text` black on white at `size` with either this backend or plotters' own text drawing; returns the
    /// widths of the ink-free column runs between its glyphs, left to right.
    fn gaps(text: &str, size: f64, fixed: bool) -> Vec<usize> {
        super::super::register_font();
        let (w, h) = (400u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            let style = ("sans-serif", size).into_font().color(&BLACK);
            if fixed {
                let mut b = GlyphBackend { inner: BitMapBackend::with_buffer(&mut buf, (w, h)) };
                b.draw_text(text, &style, (10, 10)).unwrap();
                b.present().unwrap();
            } else {
                let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
                root.draw_text(text, &style, (10, 10)).unwrap();
                root.present().unwrap();
            }
        }
        let inked: Vec<bool> =
            (0..w as usize).map(|x| (0..h as usize).any(|y| buf[(y * w as usize + x) * 3] < 160)).collect();
        let (first, last) = (inked.iter().position(|&i| i).unwrap(), inked.iter().rposition(|&i| i).unwrap());
        let (mut runs, mut run) = (Vec::new(), 0);
        for &i in &inked[first..=last] {
            if i && run > 0 {
                runs.push(run);
            }
            run = if i { 0 } else { run + 1 };
        }
        runs
    }

    /// The largest difference between neighbouring gaps: a glyph drawn off its place narrows one gap and widens the
    /// next ("di saggregated": 1 pixel before the i, 4 after it).
    fn unevenness(gaps: &[usize]) -> usize {
        gaps.windows(2).map(|w| w[0].abs_diff(w[1])).max().unwrap_or(0)
    }

    #[test]
    fn glyphs_sit_at_their_own_place() {
        for word in ["disaggregated", "gpus", "colocated"] {
            for size in [13.0, 20.0] {
                let g = gaps(word, size, true);
                assert!(unevenness(&g) <= 1, "{word} at {size} px: gaps {g:?}");
            }
        }
        let broken = gaps("disaggregated", 20.0, false);
        assert!(unevenness(&broken) >= 3, "plotters' renderer, which this replaces: gaps {broken:?}");
    }

    #[test]
    fn text_size_matches_the_drawn_ink() {
        let (w, h) = text_size("disaggregated", 20.0);
        assert!((100..=140).contains(&w) && (18..=26).contains(&h), "{w}×{h}");
    }
}
