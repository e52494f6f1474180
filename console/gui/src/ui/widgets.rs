//! Small building blocks shared by the screens: content text that may be
//! right-to-left, labelled text fields, aligned table rows, stacked bars.

use egui::{
    Align, Color32, CornerRadius, FontId, Layout, Response, RichText, Sense, TextStyle, Ui,
    WidgetInfo, vec2,
};
use herald_console::pb;
use herald_popup::bidi::has_rtl;
use herald_popup::ui::{bidi_line_job, bidi_paragraph_job};

use crate::i18n::{T, Tr};

/// Content (unit names, alert titles, host names) on one line. Persian
/// and other right-to-left text is reordered for display, since egui has
/// no bidi of its own.
pub fn content(ui: &mut Ui, text: &str) -> Response {
    if has_rtl(text) {
        let font = TextStyle::Body.resolve(ui.style());
        let color = ui.visuals().text_color();
        ui.label(bidi_line_job(text, font, color))
    } else {
        ui.label(text)
    }
}

/// Content text for any widget's label, reordered for display if it holds
/// right-to-left script.
pub fn content_text(ui: &Ui, text: &str) -> egui::WidgetText {
    if has_rtl(text) {
        let font = TextStyle::Body.resolve(ui.style());
        let color = ui.visuals().text_color();
        bidi_line_job(text, font, color).into()
    } else {
        text.into()
    }
}

/// Content text as a selectable row entry.
pub fn content_selectable(ui: &mut Ui, selected: bool, text: &str) -> Response {
    if has_rtl(text) {
        let font = TextStyle::Body.resolve(ui.style());
        let color = ui.visuals().text_color();
        ui.selectable_label(selected, bidi_line_job(text, font, color))
    } else {
        ui.selectable_label(selected, text)
    }
}

/// Content text in a heading.
pub fn content_heading(ui: &mut Ui, text: &str) -> Response {
    let font = TextStyle::Heading.resolve(ui.style());
    let color = ui.visuals().strong_text_color();
    if has_rtl(text) {
        ui.label(bidi_line_job(text, font, color))
    } else {
        ui.label(RichText::new(text).font(font).color(color))
    }
}

/// A label and a single-line text field named by it.
pub fn field(ui: &mut Ui, label: &str, value: &mut String, hint: &str, width: f32) -> Response {
    ui.horizontal(|ui| {
        let label = ui.label(label);
        ui.add(
            egui::TextEdit::singleline(value)
                .hint_text(hint)
                .desired_width(width),
        )
        .labelled_by(label.id)
    })
    .inner
}

/// Text fields one under another, labels in one column so the fields line
/// up. Each is (label, value, is a password).
pub fn fields_grid(ui: &mut Ui, id: &str, fields: Vec<(&str, &mut String, bool)>, width: f32) {
    egui::Grid::new(id)
        .num_columns(2)
        .spacing([12.0, 6.0])
        .show(ui, |ui| {
            for (label, value, secret) in fields {
                let label = ui.label(label);
                ui.add(
                    egui::TextEdit::singleline(value)
                        .password(secret)
                        .desired_width(width),
                )
                .labelled_by(label.id);
                ui.end_row();
            }
        });
}

/// An error message in the theme's error colour.
pub fn error_text(ui: &mut Ui, text: &str) {
    let color = ui.visuals().error_fg_color;
    ui.label(RichText::new(text).color(color));
}

/// A muted hint.
pub fn weak(ui: &mut Ui, text: &str) {
    ui.label(RichText::new(text).weak());
}

/// Column widths that fill `total`: the given widths for all but the last
/// column, which gets the rest (at least `min_last`). When the window is
/// too narrow, the given widths shrink in proportion so nothing is cut off
/// at the right edge.
pub fn columns(total: f32, fixed: &[f32], min_last: f32) -> Vec<f32> {
    let spacing = ROW_SPACING * fixed.len() as f32;
    let wanted: f32 = fixed.iter().sum();
    let room = (total - spacing - min_last).max(0.0);
    let scale = if wanted > room && wanted > 0.0 {
        room / wanted
    } else {
        1.0
    };
    let mut out: Vec<f32> = fixed.iter().map(|w| (w * scale).floor()).collect();
    let used: f32 = out.iter().sum::<f32>() + spacing;
    out.push((total - used).max(min_last).floor());
    out
}

/// Horizontal space between table cells.
const ROW_SPACING: f32 = 8.0;

/// One table row of cells of the given widths, aligned across rows.
pub fn row(
    ui: &mut Ui,
    widths: &[f32],
    height: f32,
    mut cell: impl FnMut(&mut Ui, usize),
) -> Response {
    ui.horizontal(|ui| {
        ui.spacing_mut().item_spacing.x = ROW_SPACING;
        for (i, width) in widths.iter().enumerate() {
            ui.allocate_ui_with_layout(
                vec2(*width, height),
                Layout::left_to_right(Align::Center),
                |ui| {
                    ui.set_min_size(vec2(*width, height));
                    ui.set_max_width(*width);
                    cell(ui, i);
                },
            );
        }
    })
    .response
}

/// A header row of strong, truncated labels.
pub fn header_row(ui: &mut Ui, widths: &[f32], height: f32, titles: &[&str]) {
    row(ui, widths, height, |ui, i| {
        if let Some(title) = titles.get(i) {
            ui.add(egui::Label::new(RichText::new(*title).strong()).truncate());
        }
    });
    ui.separator();
}

/// A cell's text, cut with "…" when too wide.
pub fn cell(ui: &mut Ui, text: impl Into<egui::WidgetText>) -> Response {
    ui.add(egui::Label::new(text).truncate())
}

/// A content cell (see [`content`]), cut with "…" when too wide.
///
/// Right-to-left text is cut at its logical end before it is reordered, so
/// a Persian title loses its last words (on the left) rather than its first
/// ones; egui's own truncation would cut the right edge, where it starts.
pub fn content_cell(ui: &mut Ui, text: &str) -> Response {
    if !has_rtl(text) {
        return cell(ui, text);
    }
    let font = TextStyle::Body.resolve(ui.style());
    let color = ui.visuals().text_color();
    let job = |t: &str| {
        if t.starts_with('/') {
            // A unit path reads left to right whatever its names are.
            bidi_line_job(t, font.clone(), color)
        } else {
            bidi_paragraph_job(t, font.clone(), color)
        }
    };
    let room = ui.available_width();
    let width = |ui: &Ui, t: &str| ui.fonts_mut(|f| f.layout_job(job(t))).size().x;
    let mut shown = text.to_owned();
    if width(ui, text) > room {
        let ends: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
        // The longest prefix that fits with the ellipsis (binary search).
        let (mut lo, mut hi) = (0usize, ends.len());
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            let candidate = format!("{}…", text[..ends[mid - 1]].trim_end());
            if width(ui, &candidate) <= room {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        shown = match lo {
            0 => "…".to_owned(),
            n => format!("{}…", text[..ends[n - 1]].trim_end()),
        };
    }
    let response = ui.add(egui::Label::new(job(&shown)).truncate());
    // Screen readers get the whole text in logical order.
    let full = text.to_owned();
    response.widget_info(move || WidgetInfo::labeled(egui::Role::Label, true, &full));
    response
}

/// The colour of a delivery state in bars and tables.
pub fn state_color(state: pb::DeliveryState, dark: bool) -> Color32 {
    use pb::DeliveryState as S;
    match (state, dark) {
        (S::Queued, true) => Color32::from_rgb(110, 110, 120),
        (S::Queued, false) => Color32::from_rgb(170, 170, 180),
        (S::Delivered, _) => Color32::from_rgb(66, 133, 244),
        (S::Displayed | S::Opened | S::Acknowledged, _) => Color32::from_rgb(52, 168, 83),
        (S::Dismissed, true) => Color32::from_rgb(30, 110, 60),
        (S::Dismissed, false) => Color32::from_rgb(20, 100, 50),
        (S::Expired, _) => Color32::from_rgb(230, 145, 56),
        (S::Cancelled, _) => Color32::from_rgb(200, 70, 70),
        (S::Unspecified, _) => Color32::GRAY,
    }
}

/// The name of a delivery state in the interface language.
pub fn state_name(tr: Tr, state: i32) -> &'static str {
    use pb::DeliveryState as S;
    tr.t(match S::try_from(state) {
        Ok(S::Queued) => T::StateQueued,
        Ok(S::Delivered) => T::StateDelivered,
        Ok(S::Displayed | S::Opened | S::Acknowledged) => T::StateDisplayed,
        Ok(S::Dismissed) => T::StateDismissed,
        Ok(S::Expired) => T::StateExpired,
        Ok(S::Cancelled) => T::StateCancelled,
        Ok(S::Unspecified) | Err(_) => T::StateUnknown,
    })
}

/// The six counts of an alert in display order with their states.
pub fn count_parts(c: &pb::AlertCounts) -> [(pb::DeliveryState, u32); 6] {
    use pb::DeliveryState as S;
    [
        (S::Queued, c.queued),
        (S::Delivered, c.delivered),
        (S::Displayed, c.displayed),
        (S::Dismissed, c.dismissed),
        (S::Expired, c.expired),
        (S::Cancelled, c.cancelled),
    ]
}

pub fn total(c: &pb::AlertCounts) -> u32 {
    count_parts(c).iter().map(|(_, n)| n).sum()
}

/// A horizontal bar split by delivery state. Screen readers (and tests)
/// read its counts as its label.
pub fn counts_bar(
    ui: &mut Ui,
    tr: Tr,
    counts: &pb::AlertCounts,
    width: f32,
    height: f32,
) -> Response {
    let (rect, response) = ui.allocate_exact_size(vec2(width, height), Sense::hover());
    let dark = ui.visuals().dark_mode;
    let painter = ui.painter_at(rect);
    let radius = CornerRadius::same(3);
    painter.rect_filled(rect, radius, ui.visuals().extreme_bg_color);
    let sum = total(counts);
    let parts = count_parts(counts);
    if sum > 0 {
        let mut x = rect.left();
        for (state, n) in parts {
            if n == 0 {
                continue;
            }
            let w = rect.width() * n as f32 / sum as f32;
            let seg = egui::Rect::from_min_size(egui::pos2(x, rect.top()), vec2(w, rect.height()));
            painter.rect_filled(seg, 0.0, state_color(state, dark));
            x += w;
        }
    }
    let described: Vec<String> = parts
        .iter()
        .map(|(s, n)| format!("{} {n}", state_name(tr, *s as i32)))
        .collect();
    let text = described.join(", ");
    response.widget_info(|| WidgetInfo::labeled(egui::Role::ProgressIndicator, true, &text));
    response.on_hover_text(described.join("\n"))
}

/// The legend of [`counts_bar`]: a swatch and "state N" per state.
pub fn counts_legend(ui: &mut Ui, tr: Tr, counts: &pb::AlertCounts) {
    let dark = ui.visuals().dark_mode;
    ui.horizontal_wrapped(|ui| {
        for (state, n) in count_parts(counts) {
            let (rect, _) = ui.allocate_exact_size(vec2(10.0, 10.0), Sense::hover());
            ui.painter()
                .rect_filled(rect, CornerRadius::same(2), state_color(state, dark));
            ui.label(format!("{} {n}", state_name(tr, state as i32)));
            ui.add_space(8.0);
        }
    });
}

/// A small coloured tag: a priority, "online", "revoked".
pub fn tag(ui: &mut Ui, text: &str, color: Color32) -> Response {
    ui.add(
        egui::Label::new(
            RichText::new(text)
                .color(color)
                .font(FontId::proportional(12.5))
                .strong(),
        )
        .truncate(),
    )
}

pub fn priority_color(priority: i32) -> Color32 {
    match pb::Priority::try_from(priority) {
        Ok(pb::Priority::Critical) => Color32::from_rgb(220, 60, 60),
        Ok(pb::Priority::Warning) => Color32::from_rgb(230, 145, 56),
        _ => Color32::from_rgb(66, 133, 244),
    }
}

pub fn priority_name(tr: Tr, priority: i32) -> &'static str {
    tr.t(match pb::Priority::try_from(priority) {
        Ok(pb::Priority::Critical) => T::PriorityCritical,
        Ok(pb::Priority::Warning) => T::PriorityWarning,
        _ => T::PriorityInfo,
    })
}

pub fn online_color() -> Color32 {
    Color32::from_rgb(52, 168, 83)
}

/// The name of a capability in the interface language.
pub fn capability_name(tr: Tr, capability: pb::Capability) -> &'static str {
    use pb::Capability as C;
    tr.t(match capability {
        C::ManageOrgUnits => T::CapManageOrgUnits,
        C::EnrollAgents => T::CapEnrollAgents,
        C::ManageComputers => T::CapManageComputers,
        C::SendQuickAlerts => T::CapSendQuickAlerts,
        C::SendMessages => T::CapSendMessages,
        C::ManageCourses => T::CapManageCourses,
        C::AnswerChat => T::CapAnswerChat,
        C::ManageTickets => T::CapManageTickets,
        C::ViewReports => T::CapViewReports,
        C::ManageAdmins => T::CapManageAdmins,
        C::ViewAuditLog => T::CapViewAuditLog,
        C::Unspecified => T::StateUnknown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_column_takes_the_rest() {
        assert_eq!(columns(500.0, &[100.0, 100.0], 50.0), [100.0, 100.0, 284.0]);
        // Too narrow: the given columns shrink, the last keeps its minimum.
        assert_eq!(columns(258.0, &[200.0, 100.0], 50.0), [128.0, 64.0, 50.0]);
        for total in [100.0, 640.0, 1280.0] {
            let widths = columns(total, &[180.0, 180.0, 70.0, 110.0], 80.0);
            let sum: f32 = widths.iter().sum::<f32>() + ROW_SPACING * 4.0;
            assert!(
                sum <= total.max(80.0 + ROW_SPACING * 4.0) + 0.5,
                "{total}: {widths:?}"
            );
        }
    }
}
