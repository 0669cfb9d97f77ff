//! The report's charts as SVG text (plotters' SVG backend, no fonts
//! loaded: text is left to the browser).
//!
//! Pure: each function takes plain data and returns an SVG document or the
//! reason it cannot be drawn (nothing finite to plot). Styling decisions
//! (what is red, what a threshold looks like) live here so every chart
//! reads the same way: overloaded points are red crosses, thresholds are
//! dashed lines labelled with their value.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Chart size in pixels.
pub(crate) const CHART_SIZE: (u32, u32) = (640, 360);
const FONT: &str = "sans-serif";

/// Colours of series, in order (colour-blind friendly, from Okabe & Ito).
pub(crate) const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
];
const OVERLOAD: RGBColor = RGBColor(213, 0, 0);
const THRESHOLD: RGBColor = RGBColor(90, 90, 90);

/// Why a chart is not drawn (shown on the page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NotDrawn(pub String);

/// One point of a scatter series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub x: f64,
    pub y: f64,
    /// Marked with a red cross.
    pub overloaded: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub label: String,
    pub points: Vec<Point>,
    /// Join the mean of the points at each x with a line.
    pub mean_line: bool,
}

/// A horizontal reference line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Threshold {
    pub y: f64,
    pub label: String,
}

/// A scatter chart of one or more series against a common x.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct XyChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub thresholds: Vec<Threshold>,
    /// Start the y axis at 0 (counts, rates, percentages).
    pub y_from_zero: bool,
    /// Where the legend goes (away from where the data usually is).
    pub legend: SeriesLabelPosition,
}

/// Means of `points` per distinct x, ascending in x.
pub(crate) fn means_by_x(points: &[Point]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points.iter().map(|p| (p.x, p.y)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out: Vec<(f64, f64, u32)> = Vec::new();
    for (x, y) in sorted {
        match out.last_mut() {
            Some(last) if last.0 == x => {
                last.1 += y;
                last.2 += 1;
            }
            _ => out.push((x, y, 1)),
        }
    }
    out.into_iter()
        .map(|(x, sum, n)| (x, sum / f64::from(n)))
        .collect()
}

/// Axis range around `min..=max` with 5 % padding; `from_zero` starts it
/// at 0 for non-negative data. A single value gets a range that holds it
/// (from 0 when `from_zero`, never negative for non-negative data).
fn padded_range(min: f64, max: f64, from_zero: bool) -> (f64, f64) {
    let low = if from_zero { min.min(0.0) } else { min };
    if max <= low {
        if low >= 0.0 && (from_zero || low == 0.0) {
            return (0.0, if max > 0.0 { max * 1.1 } else { 1.0 });
        }
        let half = if low == 0.0 { 1.0 } else { low.abs() * 0.1 };
        return (low - half, max + half);
    }
    let pad = (max - low) * 0.05;
    let start = if from_zero && low >= 0.0 {
        low
    } else {
        low - pad
    };
    (start, max + pad)
}

fn draw_error(e: impl std::fmt::Display) -> NotDrawn {
    NotDrawn(format!("drawing failed: {e}"))
}

/// Short tick label: no trailing zeros, thousands as `k`/`M`/`G`.
pub(crate) fn tick(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = if magnitude >= 1e9 {
        (value / 1e9, "G")
    } else if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e4 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    let text = if text == "-0" { "0" } else { text };
    format!("{text}{suffix}")
}

/// Draws `chart`; points with a non-finite coordinate are left out (the
/// caller counts and reports them).
pub(crate) fn xy_chart(chart: &XyChart) -> Result<String, NotDrawn> {
    let finite: Vec<&Point> = chart
        .series
        .iter()
        .flat_map(|s| &s.points)
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .collect();
    if finite.is_empty() {
        return Err(NotDrawn("no finite value to plot".to_string()));
    }
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in &finite {
        x_min = x_min.min(p.x);
        x_max = x_max.max(p.x);
        y_min = y_min.min(p.y);
        y_max = y_max.max(p.y);
    }
    for t in chart.thresholds.iter().filter(|t| t.y.is_finite()) {
        y_min = y_min.min(t.y);
        y_max = y_max.max(t.y);
    }
    let (x0, x1) = padded_range(x_min, x_max, true);
    let (y0, y1) = padded_range(y_min, y_max, chart.y_from_zero);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(&chart.title, (FONT, 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(62)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(draw_error)?;
        ctx.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_error)?;

        for t in chart.thresholds.iter().filter(|t| t.y.is_finite()) {
            let style = THRESHOLD.stroke_width(1);
            ctx.draw_series(DashedLineSeries::new([(x0, t.y), (x1, t.y)], 6, 4, style))
                .map_err(draw_error)?
                .label(t.label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
        }
        for (i, series) in chart.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .filter(|p| p.x.is_finite() && p.y.is_finite())
                .map(|p| (p.x, p.y))
                .collect();
            let drawn = ctx
                .draw_series(
                    points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 3, color.mix(0.75).filled())),
                )
                .map_err(draw_error)?;
            drawn
                .label(series.label.as_str())
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, color.filled()));
            if series.mean_line {
                let finite: Vec<Point> = series
                    .points
                    .iter()
                    .copied()
                    .filter(|p| p.x.is_finite() && p.y.is_finite())
                    .collect();
                ctx.draw_series(LineSeries::new(means_by_x(&finite), color.stroke_width(2)))
                    .map_err(draw_error)?;
            }
        }
        let overloaded: Vec<(f64, f64)> = finite
            .iter()
            .filter(|p| p.overloaded)
            .map(|p| (p.x, p.y))
            .collect();
        if !overloaded.is_empty() {
            ctx.draw_series(
                overloaded
                    .iter()
                    .map(|&(x, y)| Cross::new((x, y), 6, OVERLOAD.stroke_width(2))),
            )
            .map_err(draw_error)?
            .label("overloaded node")
            .legend(|(x, y)| Cross::new((x + 9, y), 5, OVERLOAD.stroke_width(2)));
        }
        ctx.configure_series_labels()
            .position(chart.legend.clone())
            .label_font((FONT, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(draw_error)?;
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// Bars, one per x, e.g. cooldown seconds per iteration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// `(x, height)`; non-finite heights are left out.
    pub bars: Vec<(u64, f64)>,
    pub thresholds: Vec<Threshold>,
}

pub(crate) fn bar_chart(chart: &BarChart) -> Result<String, NotDrawn> {
    let bars: Vec<(u64, f64)> = chart
        .bars
        .iter()
        .copied()
        .filter(|(_, h)| h.is_finite())
        .collect();
    let (Some(first), Some(last)) = (
        bars.iter().map(|b| b.0).min(),
        bars.iter().map(|b| b.0).max(),
    ) else {
        return Err(NotDrawn("no finite value to plot".to_string()));
    };
    let top = bars
        .iter()
        .map(|b| b.1)
        .chain(chart.thresholds.iter().map(|t| t.y))
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let (_, y1) = padded_range(0.0, top.max(1.0), true);
    let (x0, x1) = (first as f64 - 0.5, last as f64 + 0.5);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(&chart.title, (FONT, 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(62)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(draw_error)?;
        ctx.configure_mesh()
            .disable_x_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .x_label_formatter(&|v| {
                if v.fract() == 0.0 {
                    tick(*v)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| tick(*v))
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_error)?;
        let color = PALETTE[0];
        ctx.draw_series(bars.iter().map(|&(x, h)| {
            let x = x as f64;
            Rectangle::new([(x - 0.4, 0.0), (x + 0.4, h)], color.mix(0.8).filled())
        }))
        .map_err(draw_error)?;
        for t in chart.thresholds.iter().filter(|t| t.y.is_finite()) {
            let style = THRESHOLD.stroke_width(1);
            ctx.draw_series(DashedLineSeries::new([(x0, t.y), (x1, t.y)], 6, 4, style))
                .map_err(draw_error)?
                .label(t.label.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
        }
        if !chart.thresholds.is_empty() {
            ctx.configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

/// What a cell of the rate x rate grid holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CellState {
    /// Measured: mean node CPU over its iterations; overloaded by the
    /// majority rule.
    Measured { node_cpu: f64, overloaded: bool },
    /// In skipped.csv, dominating an overloaded configuration.
    Dominated,
    /// In skipped.csv without dominating any overloaded configuration: an
    /// operational failure (or a skip by another writer's rule).
    Failed,
    /// Not in the dataset, but dominating an overloaded configuration: a
    /// campaign would skip it.
    Predicted,
}

/// A rate x rate grid for one pair of functions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GridChart {
    pub title: String,
    pub x_function: String,
    pub y_function: String,
    pub x_rates: Vec<u64>,
    pub y_rates: Vec<u64>,
    /// `(x index, y index, state)`; cells not listed are not in the dataset.
    pub cells: Vec<(usize, usize, CellState)>,
    /// The CPU value of the darkest colour.
    pub cpu_scale_max: f64,
}

/// Sequential colour for `t` in 0..=1: pale yellow to dark red.
pub(crate) fn heat(t: f64) -> RGBColor {
    const STOPS: [(f64, (f64, f64, f64)); 4] = [
        (0.0, (255.0, 247.0, 188.0)),
        (0.4, (254.0, 196.0, 79.0)),
        (0.7, (236.0, 112.0, 20.0)),
        (1.0, (153.0, 52.0, 4.0)),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    for pair in STOPS.windows(2) {
        let ((t0, c0), (t1, c1)) = (pair[0], pair[1]);
        if t <= t1 {
            let f = (t - t0) / (t1 - t0);
            let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
            return RGBColor(mix(c0.0, c1.0), mix(c0.1, c1.1), mix(c0.2, c1.2));
        }
    }
    RGBColor(153, 52, 4)
}

pub(crate) const DOMINATED_FILL: RGBColor = RGBColor(160, 160, 160);
pub(crate) const FAILED_FILL: RGBColor = RGBColor(178, 171, 210);
pub(crate) const PREDICTED_FILL: RGBColor = RGBColor(224, 224, 224);

pub(crate) fn grid_chart(chart: &GridChart) -> Result<String, NotDrawn> {
    let (nx, ny) = (chart.x_rates.len(), chart.y_rates.len());
    if nx == 0 || ny == 0 || chart.cells.is_empty() {
        return Err(NotDrawn("no configuration of this pair".to_string()));
    }
    let cell_px = (560 / nx.max(ny)).clamp(14, 56) as u32;
    let width = cell_px * nx as u32 + 110;
    let height = cell_px * ny as u32 + 100;
    let with_values = cell_px >= 30;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(&chart.title, (FONT, 17))
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)
            .map_err(draw_error)?;
        // Rates label the cell centres; plotters' own ticks would fall on
        // round numbers of the index axis, so they are drawn here instead.
        ctx.configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc(format!("{} (req/s)", chart.x_function))
            .y_desc(format!("{} (req/s)", chart.y_function))
            .axis_desc_style((FONT, 13))
            .draw()
            .map_err(draw_error)?;
        let centred = |h: HPos, v: VPos| {
            TextStyle::from((FONT, 11).into_font())
                .color(&BLACK)
                .pos(Pos::new(h, v))
        };
        for (i, rate) in chart.x_rates.iter().enumerate() {
            let (x, y) = ctx.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(
                rate.to_string(),
                (x, y + 6),
                centred(HPos::Center, VPos::Top),
            ))
            .map_err(draw_error)?;
        }
        for (j, rate) in chart.y_rates.iter().enumerate() {
            let (x, y) = ctx.backend_coord(&(0.0, j as f64 + 0.5));
            root.draw(&Text::new(
                rate.to_string(),
                (x - 6, y),
                centred(HPos::Right, VPos::Center),
            ))
            .map_err(draw_error)?;
        }

        let cell = |i: usize, j: usize| [(i as f64, j as f64), (i as f64 + 1.0, j as f64 + 1.0)];
        // Every cell first with a faint outline: "not in the dataset".
        ctx.draw_series((0..nx).flat_map(|i| {
            (0..ny)
                .map(move |j| Rectangle::new(cell(i, j), RGBColor(225, 225, 225).stroke_width(1)))
        }))
        .map_err(draw_error)?;
        let scale = if chart.cpu_scale_max > 0.0 {
            chart.cpu_scale_max
        } else {
            1.0
        };
        for &(i, j, state) in &chart.cells {
            let fill = match state {
                CellState::Measured { node_cpu, .. } => heat(node_cpu / scale),
                CellState::Dominated => DOMINATED_FILL,
                CellState::Failed => FAILED_FILL,
                CellState::Predicted => PREDICTED_FILL,
            };
            ctx.draw_series([
                Rectangle::new(cell(i, j), fill.filled()),
                Rectangle::new(cell(i, j), WHITE.stroke_width(1)),
            ])
            .map_err(draw_error)?;
            let centre = (i as f64 + 0.5, j as f64 + 0.5);
            let letter = match state {
                CellState::Measured {
                    overloaded: true, ..
                } => {
                    // White under red: visible on the darkest fill too.
                    let size = (cell_px as i32 / 2 - 5).max(4);
                    ctx.draw_series([
                        Cross::new(centre, size, WHITE.stroke_width(5)),
                        Cross::new(centre, size, OVERLOAD.stroke_width(2)),
                    ])
                    .map_err(draw_error)?;
                    None
                }
                CellState::Measured { node_cpu, .. } if with_values && node_cpu.is_finite() => {
                    Some(format!("{node_cpu:.0}"))
                }
                CellState::Measured { .. } => None,
                CellState::Dominated => Some("D".to_string()),
                CellState::Failed => Some("F".to_string()),
                CellState::Predicted => Some("P".to_string()),
            };
            if let Some(text) = letter {
                ctx.draw_series([Text::new(text, centre, centred(HPos::Center, VPos::Center))])
                    .map_err(draw_error)?;
            }
        }
        root.present().map_err(draw_error)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.95), "0.95");
        assert_eq!(tick(12.5), "12.5");
        assert_eq!(tick(150.0), "150");
        assert_eq!(tick(25_000.0), "25k");
        assert_eq!(tick(1.5e9), "1.5G");
        assert_eq!(tick(-0.001), "0");
    }

    #[test]
    fn ranges_hold_single_values_without_going_negative() {
        assert_eq!(padded_range(0.0, 0.0, true), (0.0, 1.0));
        assert_eq!(padded_range(200.0, 200.0, true), (0.0, 210.0));
        assert_eq!(padded_range(0.0, 100.0, true), (0.0, 105.0));
        assert_eq!(padded_range(50.0, 100.0, false), (47.5, 102.5));
        assert_eq!(padded_range(50.0, 50.0, false), (45.0, 55.0));
        assert_eq!(padded_range(-2.0, -2.0, false), (-2.2, -1.8));
    }

    #[test]
    fn means_per_x() {
        let p = |x, y| Point {
            x,
            y,
            overloaded: false,
        };
        assert_eq!(
            means_by_x(&[p(10.0, 1.0), p(0.0, 4.0), p(10.0, 3.0)]),
            [(0.0, 4.0), (10.0, 2.0)]
        );
    }

    #[test]
    fn heat_runs_from_pale_to_dark() {
        assert_eq!(heat(0.0), RGBColor(255, 247, 188));
        assert_eq!(heat(1.0), RGBColor(153, 52, 4));
        assert_eq!(heat(f64::NAN), heat(0.0));
        assert_eq!(heat(7.0), heat(1.0));
    }

    #[test]
    fn nothing_finite_is_not_drawn() {
        let chart = XyChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                label: "s".into(),
                points: vec![Point {
                    x: 1.0,
                    y: f64::NAN,
                    overloaded: false,
                }],
                mean_line: true,
            }],
            thresholds: vec![],
            y_from_zero: true,
            legend: SeriesLabelPosition::UpperLeft,
        };
        assert_eq!(
            xy_chart(&chart),
            Err(NotDrawn("no finite value to plot".into()))
        );
    }

    #[test]
    fn grids_of_one_cell_are_drawn() {
        let chart = GridChart {
            title: "a x b".into(),
            x_function: "a".into(),
            y_function: "b".into(),
            x_rates: vec![10],
            y_rates: vec![20],
            cells: vec![(
                0,
                0,
                CellState::Measured {
                    node_cpu: 50.0,
                    overloaded: true,
                },
            )],
            cpu_scale_max: 100.0,
        };
        let svg = grid_chart(&chart).unwrap();
        assert!(svg.contains("\n10\n") && svg.contains("\n20\n"), "{svg}");
    }

    #[test]
    fn svg_is_drawn() {
        let chart = XyChart {
            title: "success <&> rate".into(),
            x_label: "rate".into(),
            y_label: "success".into(),
            series: vec![Series {
                label: "figlet".into(),
                points: vec![
                    Point {
                        x: 0.0,
                        y: 1.0,
                        overloaded: false,
                    },
                    Point {
                        x: 100.0,
                        y: 0.5,
                        overloaded: true,
                    },
                ],
                mean_line: true,
            }],
            thresholds: vec![Threshold {
                y: 0.9,
                label: "min 0.9".into(),
            }],
            y_from_zero: true,
            legend: SeriesLabelPosition::LowerLeft,
        };
        let svg = xy_chart(&chart).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("success &lt;&amp;&gt; rate"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
