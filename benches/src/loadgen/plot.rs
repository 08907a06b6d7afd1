//! Plots of one or more runs, each written as SVG and PNG:
//! - the latency percentile distribution, HDR style (x: percentile on a log `1/(1-p)` axis,
//!   y: latency in µs on a log axis);
//! - throughput (deliveries/s) and p99 latency per second over the measurement window.
//!
//! Text is rendered with plotters' `ab_glyph` font backend and the DejaVu Sans font embedded
//! from the `dejavu` crate, so no system font library (fontconfig/freetype) is needed and the
//! SVG and PNG look the same on every machine.

use super::report::RunResult;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Plotting failed (drawing or writing a file).
#[derive(Debug, thiserror::Error)]
#[error("plotting {path}: {msg}")]
pub struct PlotError {
    path: String,
    msg: String,
}

static FONT: Once = Once::new();

/// Registers the bundled DejaVu Sans as plotters' "sans-serif". plotters is built with
/// `ab_glyph` (no system font libraries), which draws nothing, or panics, without it; call it
/// before any plotting, including criterion's HTML reports.
pub fn ensure_font() {
    FONT.call_once(|| {
        // The embedded font is known-good; a failure here would be a packaging bug.
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| ())
            .expect("DejaVu Sans registers");
    });
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type DynErr = Box<dyn std::error::Error>;

fn run_name(r: &RunResult) -> String {
    format!("{} / {}", r.scenario.name, r.label)
}

fn pct_label(x: f64) -> String {
    // x = 1 / (1 - p)
    let p = (1.0 - 1.0 / x) * 100.0;
    if p < 99.0 {
        format!("{p:.0}%")
    } else {
        let s = format!("{p:.4}");
        format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

fn draw_latency<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    runs: &[&RunResult],
    title: &str,
) -> Result<(), DynErr>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let mut xmax = 10.0f64;
    let mut ymin = f64::MAX;
    let mut ymax = 1.0f64;
    let curves: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .map(|r| {
            let n = r.latency.count.max(1) as f64;
            r.latency_distribution
                .iter()
                .map(|&(p, v)| {
                    // The max (p = 100) sits one sample past the last quantile.
                    let x = if p >= 100.0 {
                        n
                    } else {
                        1.0 / (1.0 - p / 100.0)
                    };
                    (x.max(1.0), v.max(0.1))
                })
                .collect()
        })
        .collect();
    for c in &curves {
        for &(x, y) in c {
            xmax = xmax.max(x);
            ymin = ymin.min(y);
            ymax = ymax.max(y);
        }
    }
    if ymin == f64::MAX {
        ymin = 1.0;
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0f64..xmax * 1.5).log_scale(),
            ((ymin * 0.8).max(0.1)..ymax * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_label_formatter(&|x| pct_label(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (c, r)) in curves.iter().zip(runs).enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(c.iter().cloned(), color.stroke_width(2)))?
            .label(format!(
                "{} (p50 {:.0} / p99 {:.0} / p99.9 {:.0} µs)",
                run_name(r),
                r.latency.p50_us,
                r.latency.p99_us,
                r.latency.p999_us
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

fn draw_timeseries<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    runs: &[&RunResult],
    title: &str,
) -> Result<(), DynErr>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 / 2);
    let tmax = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|p| p.t_s))
        .fold(1.0f64, f64::max);
    let rmax = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|p| p.msgs_per_s))
        .fold(1.0f64, f64::max);
    let pmax = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|p| p.p99_us))
        .fold(1.0f64, f64::max);
    let pmin = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|p| p.p99_us))
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min)
        .min(pmax);

    let mut c1 = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0f64..tmax, 0.0f64..rmax * 1.15)?;
    c1.configure_mesh()
        .x_desc("seconds into measurement")
        .y_desc("deliveries / s")
        .y_label_formatter(&|v| {
            if *v >= 1e6 {
                format!("{:.1}M", v / 1e6)
            } else if *v >= 1e3 {
                format!("{:.0}k", v / 1e3)
            } else {
                format!("{v:.0}")
            }
        })
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        c1.draw_series(LineSeries::new(
            r.series.iter().map(|p| (p.t_s, p.msgs_per_s)),
            color.stroke_width(2),
        ))?
        .label(run_name(r))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c1.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()?;

    let mut c2 = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(
            0.0f64..tmax,
            ((pmin * 0.8).max(0.1)..pmax * 1.5).log_scale(),
        )?;
    c2.configure_mesh()
        .x_desc("seconds into measurement")
        .y_desc("p99 latency per second (µs)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 13))
        .draw()?;
    for (i, r) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        c2.draw_series(LineSeries::new(
            r.series
                .iter()
                .filter(|p| p.p99_us > 0.0)
                .map(|p| (p.t_s, p.p99_us)),
            color.stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}

fn both(
    base: &Path,
    size: (u32, u32),
    draw_svg: impl Fn(DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), DynErr>,
    draw_png: impl Fn(DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), DynErr>,
) -> Result<Vec<PathBuf>, PlotError> {
    ensure_font();
    let svg = base.with_extension("svg");
    let png = base.with_extension("png");
    let err = |p: &Path, e: DynErr| PlotError {
        path: p.display().to_string(),
        msg: e.to_string(),
    };
    draw_svg(SVGBackend::new(&svg, size).into_drawing_area()).map_err(|e| err(&svg, e))?;
    draw_png(BitMapBackend::new(&png, size).into_drawing_area()).map_err(|e| err(&png, e))?;
    Ok(vec![svg, png])
}

/// Writes `<base>.svg` and `<base>.png` with the latency percentile distribution of `runs`.
pub fn latency_distribution(
    runs: &[&RunResult],
    base: &Path,
    title: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    both(
        base,
        (1000, 620),
        |a| draw_latency(a, runs, title),
        |a| draw_latency(a, runs, title),
    )
}

/// Writes `<base>.svg` and `<base>.png` with throughput and p99 per second of `runs`.
pub fn timeseries(
    runs: &[&RunResult],
    base: &Path,
    title: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    both(
        base,
        (1000, 760),
        |a| draw_timeseries(a, runs, title),
        |a| draw_timeseries(a, runs, title),
    )
}

#[cfg(test)]
mod tests {
    use super::pct_label;

    #[test]
    fn percentile_axis_labels() {
        assert_eq!(pct_label(1.0), "0%");
        assert_eq!(pct_label(10.0), "90%");
        assert_eq!(pct_label(100.0), "99%");
        assert_eq!(pct_label(1000.0), "99.9%");
    }
}
