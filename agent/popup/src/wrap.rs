//! Line breaking for text drawn through `bidi`.
//!
//! Lines must be chosen on the logical text before reordering (UAX #9, rule
//! L1 onwards works per line), so we cannot let egui wrap the reordered
//! string. Text is cut at break opportunities (after spaces, around CJK
//! characters), and segments are packed greedily into lines using a width
//! measure supplied by the caller. Pure: the measure is injected.

use std::ops::Range;

/// Splits `text` into lines no wider than `max_width` where possible,
/// returning byte ranges without trailing whitespace. A segment wider than
/// a whole line is broken between characters.
pub fn wrap_lines(
    text: &str,
    max_width: f32,
    mut measure: impl FnMut(&str) -> f32,
) -> Vec<Range<usize>> {
    let mut lines: Vec<Range<usize>> = Vec::new();
    let mut start = 0;
    let mut width = 0.0;
    let push = |lines: &mut Vec<Range<usize>>, range: Range<usize>| {
        let trimmed = text[range.clone()].trim_end().len();
        if trimmed > 0 {
            lines.push(range.start..range.start + trimmed);
        }
    };
    for segment in segments(text) {
        let seg_text = &text[segment.clone()];
        let ink = measure(seg_text.trim_end());
        if start < segment.start && width + ink > max_width {
            push(&mut lines, start..segment.start);
            start = segment.start;
            width = 0.0;
        }
        if start == segment.start && ink > max_width {
            // One segment wider than a line (a long URL): break between chars.
            for (offset, c) in seg_text.char_indices() {
                let at = segment.start + offset;
                let char_width = measure(&seg_text[offset..offset + c.len_utf8()]);
                if start < at && !c.is_whitespace() && width + char_width > max_width {
                    push(&mut lines, start..at);
                    start = at;
                    width = 0.0;
                }
                width += char_width;
            }
            continue;
        }
        width += measure(seg_text);
    }
    push(&mut lines, start..text.len());
    lines
}

/// Byte ranges between break opportunities; each keeps its trailing spaces.
fn segments(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if let Some(p) = prev {
            let after_space = p.is_whitespace() && !c.is_whitespace();
            let around_cjk = (is_cjk(p) || is_cjk(c))
                && !c.is_whitespace()
                && !p.is_whitespace()
                && !no_break_before(c)
                && !no_break_after(p);
            if after_space || around_cjk {
                out.push(start..i);
                start = i;
            }
        }
        prev = Some(c);
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

/// Han, kana, Hangul and CJK punctuation: a line may break around each.
fn is_cjk(c: char) -> bool {
    matches!(
        u32::from(c),
        0x1100..=0x11FF
            | 0x2E80..=0x303F
            | 0x3040..=0x30FF
            | 0x3100..=0x31FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xAC00..=0xD7AF
            | 0xF900..=0xFAFF
            | 0xFF00..=0xFFEF
            | 0x20000..=0x3FFFF
    )
}

/// Closing punctuation and small kana that must not start a line.
fn no_break_before(c: char) -> bool {
    matches!(
        c,
        '、' | '。'
            | '，'
            | '．'
            | '：'
            | '；'
            | '！'
            | '？'
            | '）'
            | '」'
            | '』'
            | '】'
            | '〕'
            | '〉'
            | '》'
            | 'ー'
            | 'ッ'
            | 'ャ'
            | 'ュ'
            | 'ョ'
            | 'っ'
            | 'ゃ'
            | 'ゅ'
            | 'ょ'
            | '々'
            | ','
            | '.'
            | ':'
            | ';'
            | '!'
            | '?'
            | ')'
            | ']'
            | '}'
    )
}

/// Opening punctuation that must not end a line.
fn no_break_after(c: char) -> bool {
    matches!(
        c,
        '（' | '「' | '『' | '【' | '〔' | '〈' | '《' | '(' | '[' | '{'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every char is one unit wide, so widths are easy to reason about.
    fn lines(text: &str, width: f32) -> Vec<&str> {
        wrap_lines(text, width, |s| s.chars().count() as f32)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn wrap_table() {
        let cases: &[(&str, f32, &[&str])] = &[
            ("", 10.0, &[]),
            ("short", 10.0, &["short"]),
            ("one two three", 7.0, &["one two", "three"]),
            ("one two three", 100.0, &["one two three"]),
            ("trailing   ", 100.0, &["trailing"]),
            ("سرور ایمیل تا ساعت ۱۴", 10.0, &["سرور ایمیل", "تا ساعت ۱۴"]),
            // A word longer than the line is broken between chars.
            (
                "see https://example.com/x",
                8.0,
                &["see", "https://", "example.", "com/x"],
            ),
            // CJK breaks between characters, never before closing punctuation.
            ("本日は晴れ。明日も", 5.0, &["本日は晴", "れ。明日も"]),
            ("漢字abc漢字", 4.0, &["漢字", "abc漢", "字"]),
        ];
        for (text, width, want) in cases {
            assert_eq!(lines(text, *width), *want, "{text:?} at {width}");
        }
    }
}
