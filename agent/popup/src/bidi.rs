//! Right-to-left text for egui, which has no bidi support of its own
//! (emilk/egui#1016).
//!
//! egui shapes each run of one font face with HarfRust, which guesses the
//! direction from the script: an Arabic-script run comes out correctly
//! joined and right-to-left, but runs are then placed left to right in
//! logical order, and Persian digits (Arabic script) are reversed.
//!
//! So we run the Unicode Bidirectional Algorithm here and cut each line into
//! [`Piece`]s in visual (left-to-right) order. Each piece is shaped on its own
//! (one `LayoutJob` section each), and is one of:
//! - in a right-to-left run, a word of RTL-script letters in *logical* order
//!   (HarfRust reverses and joins it), or a single neutral character, mirrored
//!   if it is a bracket;
//! - in a left-to-right run, a stretch of text with no RTL-script character,
//!   or a single RTL-script character such as a Persian digit, so numbers keep
//!   their logical digit order.
//!
//! Pure: no egui types; the caller decides where lines break.

use std::ops::Range;

use unicode_bidi::ParagraphBidiInfo;

/// A stretch of one line, in visual order, to be shaped on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Byte range in the paragraph (logical order).
    pub range: Range<usize>,
    /// What to draw: the paragraph's text, or its mirror for a bracket in an RTL run.
    pub text: String,
    /// Whether this piece lies in a right-to-left run.
    pub rtl: bool,
}

/// One paragraph (no line breaks inside) analysed by the bidi algorithm.
pub struct BidiParagraph<'a> {
    text: &'a str,
    info: ParagraphBidiInfo<'a>,
}

impl<'a> BidiParagraph<'a> {
    /// Analyses `text`; its base direction comes from its first strong
    /// character (rules P2, P3), left-to-right if it has none.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            info: ParagraphBidiInfo::new(text, None),
        }
    }

    /// Analyses `text` as a left-to-right paragraph whatever it starts
    /// with, for interface lines such as "name · /Unit/Path".
    pub fn new_ltr(text: &'a str) -> Self {
        Self {
            text,
            info: ParagraphBidiInfo::new(text, Some(unicode_bidi::Level::ltr())),
        }
    }

    /// Whether the paragraph's base direction is right-to-left, so it is right-aligned.
    pub fn is_rtl(&self) -> bool {
        self.info.paragraph_level.is_rtl()
    }

    /// The line `line` (byte range of the paragraph) as pieces in visual
    /// order. No piece crosses a byte offset listed in `cuts`, so callers can
    /// style sub-ranges such as links.
    pub fn visual_pieces(&self, line: Range<usize>, cuts: &[usize]) -> Vec<Piece> {
        let line = line.start.min(self.text.len())..line.end.min(self.text.len());
        if line.is_empty()
            || !self.text.is_char_boundary(line.start)
            || !self.text.is_char_boundary(line.end)
        {
            return Vec::new();
        }
        let (levels, runs) = self.info.visual_runs(line);
        let mut pieces = Vec::new();
        for run in runs {
            let rtl = levels[run.start].is_rtl();
            let mut units = split_run(self.text, run, rtl, cuts);
            if rtl {
                units.reverse();
            }
            pieces.extend(units.into_iter().map(|range| {
                let slice = &self.text[range.clone()];
                let text = match (rtl, single_char(slice).and_then(mirror)) {
                    (true, Some(mirrored)) => mirrored.to_string(),
                    _ => slice.to_owned(),
                };
                Piece { range, text, rtl }
            }));
        }
        pieces
    }
}

/// What a line looks like from left to right, one `char` per glyph: the
/// pieces joined, with RTL words reversed as HarfRust will draw them.
/// For tests and logs.
pub fn visual_string(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| {
            if p.rtl {
                p.text.chars().rev().collect::<String>()
            } else {
                p.text.clone()
            }
        })
        .collect()
}

/// A whole paragraph as one line, in visual order. For tests and logs.
pub fn visual_line(text: &str) -> String {
    let para = BidiParagraph::new(text);
    visual_string(&para.visual_pieces(0..text.len(), &[]))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Joins with neighbours of the same kind into one piece.
    Joined,
    /// A piece of its own.
    Single,
}

fn split_run(text: &str, run: Range<usize>, rtl: bool, cuts: &[usize]) -> Vec<Range<usize>> {
    let mut units: Vec<Range<usize>> = Vec::new();
    let mut last_kind = Unit::Single;
    for (offset, c) in text[run.clone()].char_indices() {
        let start = run.start + offset;
        let end = start + c.len_utf8();
        let kind = match (rtl, is_rtl_script(c) || continues_word(c)) {
            // In an RTL run, words of RTL script are shaped whole; neutrals stand alone.
            (true, true) => Unit::Joined,
            (true, false) => Unit::Single,
            // In an LTR run, RTL-script characters (digits) stand alone so HarfRust cannot reverse them.
            (false, _) if is_rtl_script(c) => Unit::Single,
            (false, _) => Unit::Joined,
        };
        match units.last_mut() {
            Some(unit)
                if kind == Unit::Joined && last_kind == Unit::Joined && !cuts.contains(&start) =>
            {
                unit.end = end;
            }
            _ => units.push(start..end),
        }
        last_kind = kind;
    }
    units
}

fn single_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Characters of scripts written right to left (Hebrew, Arabic, Syriac,
/// Thaana, N'Ko and their presentation forms), for which HarfRust picks RTL.
pub fn is_rtl_script(c: char) -> bool {
    matches!(
        u32::from(c),
        0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFE | 0x10800..=0x10FFF | 0x1E800..=0x1EFFF
    )
}

/// Characters that stay inside a word: combining marks and the zero-width
/// (non-)joiners Persian uses between word parts.
fn continues_word(c: char) -> bool {
    matches!(u32::from(c), 0x0300..=0x036F | 0x200C | 0x200D)
}

/// Whether `text` contains anything that needs bidi treatment.
pub fn has_rtl(text: &str) -> bool {
    text.chars()
        .any(|c| is_rtl_script(c) || matches!(c, '\u{200F}' | '\u{202B}' | '\u{202E}' | '\u{2067}'))
}

/// The Bidi_Mirroring_Glyph of the common paired punctuation.
fn mirror(c: char) -> Option<char> {
    Some(match c {
        '(' => ')',
        ')' => '(',
        '[' => ']',
        ']' => '[',
        '{' => '}',
        '}' => '{',
        '<' => '>',
        '>' => '<',
        '«' => '»',
        '»' => '«',
        '‹' => '›',
        '›' => '‹',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<String> {
        BidiParagraph::new(text)
            .visual_pieces(0..text.len(), &[])
            .into_iter()
            .map(|p| p.text)
            .collect()
    }

    #[test]
    fn visual_order_table() {
        // (logical text, base is RTL, pieces left to right)
        let cases: &[(&str, bool, &[&str])] = &[
            ("Hello world", false, &["Hello world"]),
            (
                "Awaria sieci — prosimy o cierpliwość",
                false,
                &["Awaria sieci — prosimy o cierpliwość"],
            ),
            (
                "本日17時にシステムメンテナンスを行います",
                false,
                &["本日17時にシステムメンテナンスを行います"],
            ),
            ("سلام", true, &["سلام"]),
            // Words of an RTL paragraph come out last word first; each word
            // stays in logical order for the shaper.
            ("سلام دنیا", true, &["دنیا", " ", "سلام"]),
            // Persian digits keep their logical order (۱ then ۴), one piece each.
            (
                "سرور ایمیل تا ساعت ۱۴ در دسترس نیست",
                true,
                &[
                    "نیست",
                    " ",
                    "دسترس",
                    " ",
                    "در",
                    " ",
                    "۱",
                    "۴",
                    " ",
                    "ساعت",
                    " ",
                    "تا",
                    " ",
                    "ایمیل",
                    " ",
                    "سرور",
                ],
            ),
            // Latin inside Persian is an LTR island, placed where the reader meets it.
            (
                "سرور Herald خاموش است",
                true,
                &["است", " ", "خاموش", " ", "Herald", " ", "سرور"],
            ),
            (
                "ساعت 14:30 شروع",
                true,
                &["شروع", " ", "14:30", " ", "ساعت"],
            ),
            // Persian inside an English paragraph: the paragraph stays LTR.
            (
                "Say سلام دنیا now",
                false,
                &["Say ", "دنیا", " ", "سلام", " now"],
            ),
            // Brackets in an RTL run are mirrored.
            ("(سلام)", true, &["(", "سلام", ")"]),
            // Arabic punctuation stays with its word; ZWNJ does not split a word.
            ("می‌خواهم، بله؟", true, &["بله؟", " ", "می‌خواهم،"]),
            ("", false, &[]),
        ];
        for (text, rtl, want) in cases {
            let para = BidiParagraph::new(text);
            assert_eq!(para.is_rtl(), *rtl, "direction of {text:?}");
            assert_eq!(pieces(text), *want, "pieces of {text:?}");
        }
    }

    #[test]
    fn visual_line_reads_right_to_left() {
        // What the eye sees from the left edge: reversed letters of each word,
        // the last word first, digits in their normal order.
        assert_eq!(visual_line("سلام دنیا"), "ایند مالس");
        assert_eq!(visual_line("ساعت ۱۴"), "۱۴ تعاس");
        assert_eq!(visual_line("abc سلام"), "abc مالس");
    }

    #[test]
    fn lines_and_cuts() {
        let text = "سلام دنیا";
        let para = BidiParagraph::new(text);
        let space = text.find(' ').unwrap_or_default();
        // Each line is reordered on its own.
        let first: Vec<String> = para
            .visual_pieces(0..space + 1, &[])
            .into_iter()
            .map(|p| p.text)
            .collect();
        assert_eq!(first, [" ", "سلام"]);
        // A cut splits a word (used for link boundaries).
        let cut: Vec<String> = BidiParagraph::new("Hello world")
            .visual_pieces(0..11, &[6])
            .into_iter()
            .map(|p| p.text)
            .collect();
        assert_eq!(cut, ["Hello ", "world"]);
        // Out-of-range and empty lines give nothing instead of panicking.
        assert!(para.visual_pieces(5..5, &[]).is_empty());
        assert!(para.visual_pieces(1..2, &[]).is_empty());
        assert!(!para.visual_pieces(0..999, &[]).is_empty());
    }

    #[test]
    fn forced_ltr_keeps_paths_readable() {
        let text = "رضا · /Branches/Branch 3";
        let para = BidiParagraph::new_ltr(text);
        assert!(!para.is_rtl());
        assert_eq!(
            visual_string(&para.visual_pieces(0..text.len(), &[])),
            "اضر · /Branches/Branch 3"
        );
        // Left to its own devices the path's leading slash would jump to the end.
        assert_ne!(visual_line(text), "اضر · /Branches/Branch 3");
    }

    #[test]
    fn detects_rtl() {
        for (text, want) in [
            ("hello", false),
            ("cześć", false),
            ("日本", false),
            ("سلام", true),
            ("שלום", true),
        ] {
            assert_eq!(has_rtl(text), want, "{text}");
        }
    }
}
