//! Drawing the alert window: a scrollable stack of cards, newest first.
//!
//! All text that may hold right-to-left script goes through
//! [`bidi_text_ui`], which breaks lines on the logical text with egui and then
//! draws each line in visual order (see `bidi`).

use std::ops::Range;

use egui::text::{ByteIndex, LayoutJob, LayoutSection, TextFormat};
use egui::{
    Align, Button, Color32, CornerRadius, CursorIcon, FontId, Frame, Galley, Layout, Margin,
    OpenUrl, Rect, RichText, ScrollArea, Sense, Stroke, Ui, Vec2, WidgetInfo, accesskit::Role,
    pos2, vec2,
};

use crate::bidi::{BidiParagraph, Piece};
use crate::fonts::bold_family;
use crate::links::find_links;
use crate::protocol::Priority;
use crate::state::{Alert, PopupState};
use crate::wrap::wrap_lines;

/// Label of the button that closes one alert. Tests look it up by this text.
pub const CLOSE_LABEL: &str = "Close";

const TITLE_SIZE: f32 = 20.0;
const BODY_SIZE: f32 = 15.0;
const META_SIZE: f32 = 12.5;
const ACCENT_WIDTH: f32 = 6.0;
const CLOSE_HEIGHT: f32 = 30.0;

/// The whole window content: every alert in `state`, newest first. Reads the
/// clock from `state.now_ms`; records which alerts were painted and which the
/// person closed.
pub fn alerts_ui(ui: &mut Ui, state: &mut PopupState) {
    let now = state.now_ms;
    let offset = state.utc_offset_s;
    let mut painted: Vec<String> = Vec::new();
    let mut closed: Option<String> = None;

    ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
        ui.spacing_mut().item_spacing.y = 10.0;
        let mut scrolled = false;
        for alert in state.alerts() {
            let card = alert_card_ui(ui, alert, now, offset);
            if card.close_clicked {
                closed = Some(alert.spec.id.clone());
            }
            if alert.displayed_at_ms.is_none() && !scrolled {
                // A new alert lands on top; make sure the person sees it.
                card.response.scroll_to_me(Some(Align::TOP));
                scrolled = true;
            }
            if ui.is_rect_visible(card.response.rect) {
                painted.push(alert.spec.id.clone());
            }
        }
    });

    for id in painted {
        state.mark_displayed(&id, now);
    }
    if let Some(id) = closed {
        state.dismiss(&id, now);
    }
}

struct CardResponse {
    response: egui::Response,
    close_clicked: bool,
}

fn alert_card_ui(ui: &mut Ui, alert: &Alert, now_ms: i64, utc_offset_s: i32) -> CardResponse {
    let spec = &alert.spec;
    let accent = priority_color(spec.priority);
    let visuals = ui.visuals().clone();
    let fill = if spec.priority == Priority::Critical {
        visuals.extreme_bg_color.lerp_to_gamma(accent, 0.08)
    } else {
        visuals.extreme_bg_color
    };
    let mut close_clicked = false;

    let inner = Frame::new()
        .fill(fill)
        .stroke(Stroke::new(
            1.0,
            visuals.widgets.noninteractive.bg_stroke.color,
        ))
        .corner_radius(CornerRadius::same(8))
        .inner_margin(Margin {
            left: 18,
            right: 12,
            top: 10,
            bottom: 10,
        })
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.spacing_mut().item_spacing.y = 6.0;

            ui.horizontal(|ui| {
                badge_ui(ui, spec.priority, accent);
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    ui.label(
                        RichText::new(format!(
                            "sent {}",
                            local_hhmm(spec.sent_unix_ms, utc_offset_s)
                        ))
                        .size(META_SIZE)
                        .color(visuals.weak_text_color()),
                    );
                });
            });

            bidi_text_ui(
                ui,
                &spec.title,
                FontId::new(TITLE_SIZE, bold_family()),
                visuals.strong_text_color(),
                false,
            );
            if !spec.body.trim().is_empty() {
                bidi_text_ui(
                    ui,
                    &spec.body,
                    FontId::proportional(BODY_SIZE),
                    visuals.text_color(),
                    true,
                );
            }

            let footer = vec2(ui.available_width(), CLOSE_HEIGHT);
            ui.allocate_ui_with_layout(footer, Layout::left_to_right(Align::Center), |ui| {
                let from = sender_line(&spec.sender, &spec.sender_unit);
                ui.label(bidi_line_job(
                    &from,
                    FontId::proportional(META_SIZE),
                    visuals.weak_text_color(),
                ));
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    let blocked_ms = alert.close_blocked_for_ms(now_ms);
                    let label = if blocked_ms > 0 {
                        format!("{CLOSE_LABEL} ({})", (blocked_ms + 999) / 1000)
                    } else {
                        CLOSE_LABEL.to_owned()
                    };
                    let button = Button::new(RichText::new(label).size(BODY_SIZE))
                        .min_size(vec2(96.0, CLOSE_HEIGHT));
                    close_clicked = ui.add_enabled(blocked_ms == 0, button).clicked();
                });
            });
        });

    let rect = inner.response.rect;
    ui.painter().rect_filled(
        Rect::from_min_max(rect.min, pos2(rect.min.x + ACCENT_WIDTH, rect.max.y)),
        CornerRadius {
            nw: 8,
            sw: 8,
            ne: 0,
            se: 0,
        },
        accent,
    );

    CardResponse {
        response: inner.response,
        close_clicked,
    }
}

/// Info blue, warning amber, critical red.
pub fn priority_color(priority: Priority) -> Color32 {
    match priority {
        Priority::Info => Color32::from_rgb(0x25, 0x63, 0xEB),
        Priority::Warning => Color32::from_rgb(0xE0, 0x9A, 0x00),
        Priority::Critical => Color32::from_rgb(0xDC, 0x26, 0x26),
    }
}

fn badge_ui(ui: &mut Ui, priority: Priority, accent: Color32) {
    let text_color = match priority {
        Priority::Warning => Color32::BLACK,
        Priority::Info | Priority::Critical => Color32::WHITE,
    };
    Frame::new()
        .fill(accent)
        .corner_radius(CornerRadius::same(4))
        .inner_margin(Margin::symmetric(8, 2))
        .show(ui, |ui| {
            ui.label(
                RichText::new(priority.label())
                    .family(bold_family())
                    .size(META_SIZE)
                    .color(text_color),
            );
        });
}

fn sender_line(sender: &str, unit: &str) -> String {
    match (sender.trim(), unit.trim()) {
        ("", "") => String::new(),
        (s, "") => s.to_owned(),
        ("", u) => u.to_owned(),
        (s, u) => format!("{s} · {u}"),
    }
}

/// `HH:MM` of a Unix time in the zone `utc_offset_s` seconds east of UTC.
pub fn local_hhmm(unix_ms: i64, utc_offset_s: i32) -> String {
    let secs = unix_ms.div_euclid(1000) + i64::from(utc_offset_s);
    let minute_of_day = secs.rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// One line of text in visual order, without wrapping, as a layout job.
pub fn bidi_line_job(text: &str, font: FontId, color: Color32) -> LayoutJob {
    let para = BidiParagraph::new_ltr(text);
    let pieces = para.visual_pieces(0..text.len(), &[]);
    pieces_job(&pieces, &[], &font, color, color)
}

/// One paragraph on one line in visual order, its direction taken from its
/// first strong character (a Persian title reads from the right edge), as a
/// layout job without wrapping.
pub fn bidi_paragraph_job(text: &str, font: FontId, color: Color32) -> LayoutJob {
    let para = BidiParagraph::new(text);
    let pieces = para.visual_pieces(0..text.len(), &[]);
    pieces_job(&pieces, &[], &font, color, color)
}

/// Builds a job with one section per piece, so each is shaped on its own.
fn pieces_job(
    pieces: &[Piece],
    links: &[Range<usize>],
    font: &FontId,
    color: Color32,
    link_color: Color32,
) -> LayoutJob {
    let mut job = LayoutJob::default();
    for piece in pieces {
        let is_link = links
            .iter()
            .any(|l| l.start <= piece.range.start && piece.range.end <= l.end);
        let format = if is_link {
            TextFormat {
                font_id: font.clone(),
                color: link_color,
                underline: Stroke::new(1.0, link_color),
                ..TextFormat::default()
            }
        } else {
            TextFormat::simple(font.clone(), color)
        };
        // Not `append`: it merges neighbours with equal formats, and each
        // piece must be shaped on its own.
        let start = job.text.len();
        job.text.push_str(&piece.text);
        job.sections.push(LayoutSection {
            leading_space: 0.0,
            byte_range: ByteIndex(start)..ByteIndex(job.text.len()),
            format,
        });
    }
    job.wrap.max_width = f32::INFINITY;
    job
}

/// Wrapped text that may mix left-to-right and right-to-left script.
///
/// Each paragraph (`\n`-separated) is right-aligned if its base direction is
/// right-to-left. With `with_links`, http(s) URLs are clickable. Screen
/// readers (and tests) see each paragraph's logical text as its label.
pub fn bidi_text_ui(ui: &mut Ui, text: &str, font: FontId, color: Color32, with_links: bool) {
    let link_color = ui.visuals().hyperlink_color;
    let width = ui.available_width().max(1.0);
    for paragraph in text.split('\n') {
        let paragraph = paragraph.strip_suffix('\r').unwrap_or(paragraph);
        let links = if with_links {
            find_links(paragraph)
        } else {
            Vec::new()
        };
        let cuts: Vec<usize> = links.iter().flat_map(|l| [l.start, l.end]).collect();
        let bidi = BidiParagraph::new(paragraph);

        let lines: Vec<(Vec<Piece>, std::sync::Arc<Galley>)> =
            wrap_lines(paragraph, width, |s| text_width(ui, s, &font))
                .into_iter()
                .map(|line| {
                    let pieces = bidi.visual_pieces(line, &cuts);
                    let job = pieces_job(&pieces, &links, &font, color, link_color);
                    let galley = ui.fonts_mut(|f| f.layout_job(job));
                    (pieces, galley)
                })
                .collect();

        let row_height = ui.fonts_mut(|f| f.row_height(&font));
        let height = if lines.is_empty() {
            row_height
        } else {
            lines.iter().map(|(_, g)| g.size().y).sum()
        };
        let (rect, response) = ui.allocate_exact_size(vec2(width, height), Sense::hover());
        response.widget_info(|| WidgetInfo::labeled(Role::Label, ui.is_enabled(), paragraph));

        let mut y = rect.top();
        for (line_index, (pieces, galley)) in lines.into_iter().enumerate() {
            let x = if bidi.is_rtl() {
                rect.right() - galley.size().x
            } else {
                rect.left()
            };
            let origin = pos2(x, y);
            let rects = piece_rects(&galley, &pieces);
            for (piece_index, (piece, piece_rect)) in pieces.iter().zip(rects).enumerate() {
                let Some(link) = links
                    .iter()
                    .find(|l| l.start <= piece.range.start && piece.range.end <= l.end)
                else {
                    continue;
                };
                let Some(piece_rect) = piece_rect else {
                    continue;
                };
                let url = &paragraph[link.clone()];
                let link_response = ui
                    .interact(
                        piece_rect.translate(origin.to_vec2()),
                        response.id.with((line_index, piece_index)),
                        Sense::click(),
                    )
                    .on_hover_cursor(CursorIcon::PointingHand)
                    .on_hover_text(url);
                link_response.widget_info(|| WidgetInfo::labeled(Role::Link, true, url));
                if link_response.clicked() {
                    ui.ctx().open_url(OpenUrl::new_tab(url));
                }
            }
            y += galley.size().y;
            ui.painter().galley(origin, galley, color);
        }
    }
}

/// Width of `text` laid out on one line.
fn text_width(ui: &Ui, text: &str, font: &FontId) -> f32 {
    ui.fonts_mut(|f| f.layout_no_wrap(text.to_owned(), font.clone(), Color32::PLACEHOLDER))
        .size()
        .x
}

/// Where each piece's glyphs sit in its single-line galley: a galley holds
/// one glyph per char, in section order.
fn piece_rects(galley: &Galley, pieces: &[Piece]) -> Vec<Option<Rect>> {
    let Some(row) = galley.rows.first() else {
        return vec![None; pieces.len()];
    };
    let mut glyphs = row.glyphs.iter();
    pieces
        .iter()
        .map(|piece| {
            let (mut min_x, mut max_x) = (f32::INFINITY, f32::NEG_INFINITY);
            for glyph in glyphs.by_ref().take(piece.text.chars().count()) {
                min_x = min_x.min(glyph.pos.x);
                max_x = max_x.max(glyph.max_x());
            }
            (min_x <= max_x).then(|| {
                Rect::from_min_size(
                    pos2(row.pos.x + min_x, row.pos.y),
                    Vec2::new(max_x - min_x, galley.size().y),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_time_table() {
        let cases = [
            (0, 0, "00:00"),
            (1_764_000_000_000, 0, "16:00"),
            (1_764_000_000_000, 3_600, "17:00"),
            (1_764_000_000_000, -9 * 3_600, "07:00"),
            (1_764_000_240_999, 12_600, "19:34"),
            (-60_000, 0, "23:59"),
        ];
        for (ms, offset, want) in cases {
            assert_eq!(local_hhmm(ms, offset), want, "{ms} {offset}");
        }
    }

    #[test]
    fn sender_line_table() {
        let cases = [
            ("alice", "/Branches/Branch 3", "alice · /Branches/Branch 3"),
            ("alice", "", "alice"),
            ("", "/IT", "/IT"),
            (" ", " ", ""),
        ];
        for (sender, unit, want) in cases {
            assert_eq!(sender_line(sender, unit), want);
        }
    }
}
