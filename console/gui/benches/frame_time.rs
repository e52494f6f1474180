//! Frame time of the console's computer list while it scrolls: 10,000
//! computers against a baseline of 100. Measures what the UI thread does per
//! frame (the egui pass and tessellation), CPU only; the GPU upload is the
//! same for both since only visible rows are drawn.
//!
//! `cargo bench -p herald-console-gui --bench frame_time [-- --frames N]`

use std::time::{Duration, Instant};

use egui::{Event, Modifiers, MouseWheelSource, MouseWheelUnit, RawInput, TouchPhase, pos2, vec2};
use herald_console_gui::perms::Screen;
use herald_console_gui::sample;

/// Median and 99th percentile of `frames` frames of the organisation
/// screen with `computers` computers, scrolling the list a little each
/// frame (and jumping back to the top when it reaches the end).
fn measure(computers: usize, frames: usize) -> (Duration, Duration) {
    let mut console = sample::console(computers);
    console.go(Screen::Organisation);
    let ctx = egui::Context::default();
    herald_popup::fonts::install(&ctx);
    let screen = egui::Rect::from_min_size(pos2(0.0, 0.0), vec2(1280.0, 800.0));
    let mut times = Vec::with_capacity(frames);
    let warm_up = 20;
    for frame in 0..frames + warm_up {
        let delta = if frame % 400 == 399 { 1e7 } else { -120.0 };
        let input = RawInput {
            screen_rect: Some(screen),
            time: Some(frame as f64 / 60.0),
            events: vec![
                Event::PointerMoved(pos2(760.0, 640.0)),
                Event::MouseWheel {
                    unit: MouseWheelUnit::Point,
                    delta: vec2(0.0, delta),
                    phase: TouchPhase::Move,
                    source: MouseWheelSource::Wheel,
                    modifiers: Modifiers::NONE,
                },
            ],
            ..RawInput::default()
        };
        let start = Instant::now();
        let output = ctx.run_ui(input, |ui| {
            herald_console_gui::ui::console_ui(ui, &mut console);
        });
        let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
        let elapsed = start.elapsed();
        std::hint::black_box(primitives);
        console.take_requests();
        if frame >= warm_up {
            times.push(elapsed);
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

fn main() {
    let mut frames = 600;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--frames"
            && let Some(n) = args.next().and_then(|n| n.parse().ok())
        {
            frames = n;
        }
    }
    let (base_median, base_p99) = measure(100, frames);
    let (median, p99) = measure(10_000, frames);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("console frame time, organisation screen scrolling, {frames} frames, 1280x800");
    println!(
        "    100 computers: median {:.2} ms, p99 {:.2} ms",
        ms(base_median),
        ms(base_p99)
    );
    println!(
        " 10,000 computers: median {:.2} ms, p99 {:.2} ms",
        ms(median),
        ms(p99)
    );
    println!(
        " ratio 10,000/100: median {:.2}x, p99 {:.2}x",
        ms(median) / ms(base_median),
        ms(p99) / ms(base_p99)
    );
}
