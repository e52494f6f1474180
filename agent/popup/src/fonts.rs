//! Fonts for alerts in Latin (incl. Polish), Japanese, Chinese and Persian.
//!
//! egui's built-in font covers Latin and Cyrillic only, and the test harness
//! panics on a missing glyph, so at start-up we load system font files
//! explicitly, in a fixed order: Latin first, then CJK, then an Arabic-script
//! font, then DejaVu as a catch-all. Keeping Latin first matters: an RTL word
//! must be drawn by a font of its own script so it forms its own shaping run
//! (see `bidi`). A missing file is skipped with a log line; the app never
//! fails for want of a font. At run time eframe's system font provider adds
//! further fallbacks behind these.

use std::sync::Arc;

use egui::{FontData, FontDefinitions, FontFamily};

/// Name of the font family used for alert titles.
pub const BOLD_FAMILY: &str = "herald-bold";

/// The family used for alert titles: bold where a bold face was found.
pub fn bold_family() -> FontFamily {
    FontFamily::Name(BOLD_FAMILY.into())
}

/// One role in the fallback chain and the files that can fill it, best first.
struct Slot {
    name: &'static str,
    paths: &'static [&'static str],
}

const LATIN: Slot = Slot {
    name: "latin",
    paths: &[
        "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/google-noto/NotoSans-Regular.ttf",
        "/usr/share/fonts/google-noto-vf/NotoSans[wght].ttf",
    ],
};

const LATIN_BOLD: Slot = Slot {
    name: "latin-bold",
    paths: &[
        "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
        "/usr/share/fonts/noto/NotoSans-Bold.ttf",
        "/usr/share/fonts/google-noto/NotoSans-Bold.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf",
    ],
};

const CJK: Slot = Slot {
    name: "cjk",
    paths: &[
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    ],
};

const ARABIC: Slot = Slot {
    name: "arabic",
    paths: &[
        "/usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf",
        "/usr/share/fonts/noto/NotoSansArabic-Regular.ttf",
        "/usr/share/fonts/google-noto/NotoSansArabic-Regular.ttf",
        "/usr/share/fonts/truetype/noto/NotoNaskhArabic-Regular.ttf",
        "/usr/share/fonts/truetype/vazirmatn/Vazirmatn-Regular.ttf",
        "/usr/share/fonts/truetype/farsiweb/nazli.ttf",
    ],
};

const ARABIC_BOLD: Slot = Slot {
    name: "arabic-bold",
    paths: &[
        "/usr/share/fonts/truetype/noto/NotoSansArabic-Bold.ttf",
        "/usr/share/fonts/noto/NotoSansArabic-Bold.ttf",
        "/usr/share/fonts/google-noto/NotoSansArabic-Bold.ttf",
        "/usr/share/fonts/truetype/vazirmatn/Vazirmatn-Bold.ttf",
        "/usr/share/fonts/truetype/farsiweb/nazlib.ttf",
    ],
};

const CATCH_ALL: Slot = Slot {
    name: "dejavu",
    paths: &[
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    ],
};

/// The first readable file of a slot, as egui font data (face 0 of a collection).
fn load(slot: &Slot) -> Option<(String, Arc<FontData>)> {
    for path in slot.paths {
        match std::fs::read(path) {
            Ok(bytes) => {
                tracing::debug!(slot = slot.name, path, "loaded font");
                return Some((
                    format!("herald-{}", slot.name),
                    Arc::new(FontData::from_owned(bytes)),
                ));
            }
            Err(error) => {
                tracing::info!(slot = slot.name, path, %error, "font file not usable, skipping")
            }
        }
    }
    tracing::warn!(slot = slot.name, "no font found; some text may not render");
    None
}

/// Fonts found on this machine, by role.
#[derive(Default)]
pub struct FoundFonts {
    latin: Option<(String, Arc<FontData>)>,
    latin_bold: Option<(String, Arc<FontData>)>,
    cjk: Option<(String, Arc<FontData>)>,
    arabic: Option<(String, Arc<FontData>)>,
    arabic_bold: Option<(String, Arc<FontData>)>,
    catch_all: Option<(String, Arc<FontData>)>,
}

impl FoundFonts {
    /// Reads the font files from their usual system locations.
    pub fn from_system() -> Self {
        Self {
            latin: load(&LATIN),
            latin_bold: load(&LATIN_BOLD),
            cjk: load(&CJK),
            arabic: load(&ARABIC),
            arabic_bold: load(&ARABIC_BOLD),
            catch_all: load(&CATCH_ALL),
        }
    }

    /// egui's font definitions: egui's defaults with our fonts in front (Latin)
    /// and behind (the other scripts), and the bold family for titles.
    pub fn definitions(self) -> FontDefinitions {
        let mut defs = FontDefinitions::default();
        let mut name_of = |font: Option<(String, Arc<FontData>)>| {
            font.map(|(name, data)| {
                defs.font_data.insert(name.clone(), data);
                name
            })
        };
        let latin = name_of(self.latin);
        let latin_bold = name_of(self.latin_bold);
        let cjk = name_of(self.cjk);
        let arabic = name_of(self.arabic);
        let arabic_bold = name_of(self.arabic_bold);
        let catch_all = name_of(self.catch_all);

        // egui's built-in fonts: Latin, then a few icons as the very last resort.
        const BUILT_IN_LATIN: &str = "Ubuntu-Light";
        const BUILT_IN_MONO: &str = "Hack";
        const ICONS: &str = "egui-icons";
        let chain = |first: &[&Option<String>], arabic: &[&Option<String>]| -> Vec<String> {
            let mut names: Vec<String> = Vec::new();
            let mut push = |name: &str| {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            };
            first.iter().copied().flatten().for_each(|n| push(n));
            push(BUILT_IN_LATIN);
            cjk.iter().for_each(|n| push(n));
            arabic.iter().copied().flatten().for_each(|n| push(n));
            catch_all.iter().for_each(|n| push(n));
            push(ICONS);
            names
        };
        let regular = chain(&[&latin], &[&arabic]);
        let bold = chain(&[&latin_bold, &latin], &[&arabic_bold, &arabic]);
        let mono = chain(&[&Some(BUILT_IN_MONO.to_owned())], &[&arabic]);
        defs.families.insert(FontFamily::Proportional, regular);
        defs.families.insert(bold_family(), bold);
        defs.families.insert(FontFamily::Monospace, mono);
        defs
    }
}

/// Installs Herald's fonts into `ctx`. Call before the first frame.
pub fn install(ctx: &egui::Context) {
    ctx.set_fonts(FoundFonts::from_system().definitions());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(name: &str) -> Option<(String, Arc<FontData>)> {
        Some((name.to_owned(), Arc::new(FontData::from_static(&[]))))
    }

    fn family(defs: &FontDefinitions, family: &FontFamily) -> Vec<String> {
        defs.families.get(family).cloned().unwrap_or_default()
    }

    #[test]
    fn fallback_order() {
        let all = FoundFonts {
            latin: fake("latin"),
            latin_bold: fake("latin-bold"),
            cjk: fake("cjk"),
            arabic: fake("arabic"),
            arabic_bold: fake("arabic-bold"),
            catch_all: fake("dejavu"),
        };
        let defs = all.definitions();
        assert_eq!(
            family(&defs, &FontFamily::Proportional),
            [
                "latin",
                "Ubuntu-Light",
                "cjk",
                "arabic",
                "dejavu",
                "egui-icons"
            ]
        );
        assert_eq!(
            family(&defs, &bold_family()),
            [
                "latin-bold",
                "latin",
                "Ubuntu-Light",
                "cjk",
                "arabic-bold",
                "arabic",
                "dejavu",
                "egui-icons"
            ]
        );

        // Nothing installed: egui's own fonts, and the bold family still exists.
        let defs = FoundFonts::default().definitions();
        assert_eq!(
            family(&defs, &FontFamily::Proportional),
            ["Ubuntu-Light", "egui-icons"]
        );
        assert_eq!(
            family(&defs, &bold_family()),
            ["Ubuntu-Light", "egui-icons"]
        );
        assert_eq!(
            family(&defs, &FontFamily::Monospace),
            ["Hack", "Ubuntu-Light", "egui-icons"]
        );

        // Only CJK and DejaVu.
        let defs = FoundFonts {
            cjk: fake("cjk"),
            catch_all: fake("dejavu"),
            ..FoundFonts::default()
        }
        .definitions();
        assert_eq!(
            family(&defs, &FontFamily::Proportional),
            ["Ubuntu-Light", "cjk", "dejavu", "egui-icons"]
        );
    }
}
