//! The bar chart of a run (SVG): one group per row, one bar per engine,
//! each value relative to the best peer's on that row ([`Row::relative`]:
//! divided by it, or dividing it where higher is better), on a log scale,
//! so 1× is the best peer and lower is better.
//!
//! [`Row::relative`]: crate::rows::Row::relative

use crate::engines::{is_larix, Result, ENGINES};
use crate::rows::{Results, ROWS};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// One colour per engine, in `ENGINES` order: greens for Larix, others
/// for the peers.
const COLOURS: &[RGBColor] = &[
    RGBColor(161, 217, 155),
    RGBColor(65, 171, 93),
    RGBColor(0, 109, 44),
    RGBColor(230, 85, 13),
    RGBColor(49, 130, 189),
    RGBColor(117, 107, 177),
    RGBColor(189, 158, 57),
];

/// Height of the row labels under the plot, where the legend starts.
const LEGEND_Y: i32 = 60;

/// The colour of engine `name`: its place in `ENGINES`.
fn colour(name: &str) -> RGBColor {
    let i = ENGINES.iter().position(|e| *e == name).unwrap_or(0);
    COLOURS[i % COLOURS.len()]
}

/// Splits `text` into lines of about `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(l) if l.len() + 1 + word.len() <= width => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Draws the chart of `results` to `path`.
///
/// # Errors
/// A drawing or file error.
pub fn draw(results: &Results, path: &Path) -> Result<()> {
    let groups: Vec<_> = ROWS
        .iter()
        .filter(|r| r.compared)
        .filter_map(|r| {
            let (_, best) = results.best(r, |e| !is_larix(e))?;
            (best > 0.0).then(|| {
                let ratios: Vec<Option<f64>> = results
                    .engines
                    .iter()
                    .map(|e| r.relative(results.get(e, r.key)?, best))
                    .collect();
                (r, ratios)
            })
        })
        .collect();
    if groups.is_empty() {
        return Err("nothing to chart: no row has a peer's value".into());
    }
    let all = groups.iter().flat_map(|(_, r)| r.iter().flatten().copied());
    let (lo, hi) = all.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = ((lo / 1.5).max(0.01), hi * 1.5);

    let (width, height) = (140 + 90 * groups.len() as u32, 640);
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, labels) = root.split_vertically(height - LEGEND_Y as u32 - 30);
    let mut chart = ChartBuilder::on(&plot)
        .caption(
            "Cost relative to the best peer (log scale, lower is better)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(0)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..groups.len() as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc("× best peer")
        .y_label_formatter(&|v| format!("{v}"))
        .draw()?;

    let engines = results.engines.len() as f64;
    for (e, name) in results.engines.iter().enumerate() {
        let colour = colour(name);
        chart.draw_series(groups.iter().enumerate().filter_map(|(g, (_, ratios))| {
            let v = ratios[e]?.max(lo);
            let x0 = g as f64 + 0.1 + 0.8 * e as f64 / engines;
            let x1 = x0 + 0.8 / engines;
            Some(Rectangle::new([(x0, lo), (x1, v)], colour.filled()))
        }))?;
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, 1.0), (groups.len() as f64, 1.0)],
        BLACK.stroke_width(1),
    )))?;

    let text = |size| ("sans-serif", size).into_font().color(&BLACK);
    let centred = text(13).pos(Pos::new(HPos::Center, VPos::Top));
    for (g, (row, _)) in groups.iter().enumerate() {
        let (x, _) = chart.backend_coord(&(g as f64 + 0.5, lo));
        for (i, line) in wrap(row.short(), 12).iter().enumerate() {
            labels.draw_text(line, &centred, (x, 6 + 16 * i as i32))?;
        }
    }
    // The legend: one swatch and name per engine, in a row under the labels.
    let (mut x, y) = (70, LEGEND_Y);
    for name in &results.engines {
        labels.draw(&Rectangle::new(
            [(x, y), (x + 14, y + 14)],
            colour(name).filled(),
        ))?;
        labels.draw_text(
            name,
            &text(14).pos(Pos::new(HPos::Left, VPos::Top)),
            (x + 20, y),
        )?;
        x += 40 + 9 * name.len() as i32;
    }
    root.present()?;
    Ok(())
}
