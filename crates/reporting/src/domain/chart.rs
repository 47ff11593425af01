//! Charts people can look at: a report's result drawn as a standalone SVG
//! (bar, line, pie or funnel) with its title, axis names and units, and a
//! legend, by `plotters`. Text is SVG `<text>`, so no font files are
//! needed to draw and any viewer renders it.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// What a chart shows: categories along one axis, one or more series of
/// values over them.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartData {
    pub title: String,
    /// The categories' axis name (a dimension).
    pub x_label: String,
    /// The values' axis name with their unit ("sum_amount (EUR)").
    pub y_label: String,
    pub categories: Vec<String>,
    /// (legend name, one value per category).
    pub series: Vec<(String, Vec<f64>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    Bar,
    Line,
    Pie,
    Funnel,
}

impl ChartKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "" | "bar" => Some(ChartKind::Bar),
            "line" => Some(ChartKind::Line),
            "pie" => Some(ChartKind::Pie),
            "funnel" => Some(ChartKind::Funnel),
            _ => None,
        }
    }
}

pub const WIDTH: u32 = 720;
pub const HEIGHT: u32 = 400;

/// Colours of the series, in order (then again).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

type DrawResult<T> = Result<T, String>;

fn failed<E: std::fmt::Display>(e: E) -> String {
    format!("drawing the chart: {e}")
}

/// The chart as an SVG document.
pub fn render(kind: ChartKind, data: &ChartData) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        if data.categories.is_empty() || data.series.is_empty() {
            root.titled(&data.title, ("sans-serif", 20))
                .map_err(failed)?;
            root.draw_text(
                "No data for this period",
                &TextStyle::from(("sans-serif", 16)).color(&BLACK),
                (WIDTH as i32 / 2 - 90, HEIGHT as i32 / 2),
            )
            .map_err(failed)?;
        } else {
            match kind {
                ChartKind::Bar => bars(&root, data)?,
                ChartKind::Line => lines(&root, data)?,
                ChartKind::Pie => pie(&root, data)?,
                ChartKind::Funnel => funnel(&root, data)?,
            }
        }
        root.present().map_err(failed)?;
    }
    Ok(svg)
}

/// The values' range, from zero (or the lowest negative) to the highest,
/// with room above.
fn value_range(data: &ChartData) -> (f64, f64) {
    let values = data.series.iter().flat_map(|(_, v)| v.iter().copied());
    let (low, high) = values.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let high = if high <= low { low + 1.0 } else { high };
    (low, high * 1.1)
}

fn category_label(data: &ChartData, x: f64) -> String {
    let i = x.floor();
    if i < 0.0 || (x - i - 0.5).abs() > 0.01 {
        return String::new();
    }
    data.categories.get(i as usize).cloned().unwrap_or_default()
}

type Axes<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The titled chart area with the categories along x (named at each
/// category's middle), the values along y from zero, and both axes named.
fn axes<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, plotters::coord::Shift>,
    data: &ChartData,
    x_mesh: bool,
) -> DrawResult<Axes<'a, DB>> {
    let (low, high) = value_range(data);
    let n = data.categories.len() as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(&data.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..n, low..high)
        .map_err(failed)?;
    let mut mesh = chart.configure_mesh();
    if !x_mesh {
        mesh.disable_x_mesh();
    }
    mesh.x_labels(data.categories.len() * 2 + 1)
        .x_label_formatter(&|x| category_label(data, *x))
        .x_desc(&data.x_label)
        .y_desc(&data.y_label)
        .draw()
        .map_err(failed)?;
    Ok(chart)
}

fn bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    data: &ChartData,
) -> DrawResult<()> {
    let mut chart = axes(root, data, false)?;
    let width = 0.8 / data.series.len() as f64;
    for (s, (name, values)) in data.series.iter().enumerate() {
        let fill = color(s);
        chart
            .draw_series(values.iter().enumerate().map(|(i, v)| {
                let left = i as f64 + 0.1 + s as f64 * width;
                Rectangle::new([(left, 0.0), (left + width, *v)], fill.filled())
            }))
            .map_err(failed)?
            .label(name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], fill.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(failed)
}

fn lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    data: &ChartData,
) -> DrawResult<()> {
    let mut chart = axes(root, data, true)?;
    for (s, (name, values)) in data.series.iter().enumerate() {
        let stroke = color(s);
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as f64 + 0.5, *v))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), stroke.stroke_width(2)))
            .map_err(failed)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 12, y)], stroke.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, stroke.filled())),
            )
            .map_err(failed)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(failed)
}

/// A legend drawn by hand (pie and funnel have no axes): a swatch and a
/// name per entry, top right.
fn legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[String],
) -> DrawResult<()> {
    let x = WIDTH as i32 - 200;
    for (i, name) in entries.iter().enumerate().take(12) {
        let y = 48 + i as i32 * 20;
        root.draw(&Rectangle::new(
            [(x, y), (x + 12, y + 12)],
            color(i).filled(),
        ))
        .map_err(failed)?;
        root.draw_text(
            name,
            &TextStyle::from(("sans-serif", 13)).color(&BLACK),
            (x + 18, y),
        )
        .map_err(failed)?;
    }
    Ok(())
}

fn pie<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    data: &ChartData,
) -> DrawResult<()> {
    let area = root
        .titled(&data.title, ("sans-serif", 20))
        .map_err(failed)?;
    let (_, values) = &data.series[0];
    let sizes: Vec<f64> = values.iter().map(|v| v.max(0.0)).collect();
    if sizes.iter().sum::<f64>() <= 0.0 {
        return Ok(());
    }
    let colors: Vec<RGBColor> = (0..sizes.len()).map(color).collect();
    let center = (WIDTH as i32 / 2 - 90, HEIGHT as i32 / 2);
    let radius = f64::from(HEIGHT) / 3.0;
    let mut chart = Pie::new(&center, &radius, &sizes, &colors, &data.categories);
    chart.start_angle(-90.0);
    chart.label_style(("sans-serif", 13).into_font().color(&BLACK));
    chart.percentages(("sans-serif", 12).into_font().color(&WHITE));
    area.draw(&chart).map_err(failed)?;
    legend(root, &data.categories)
}

fn funnel<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    data: &ChartData,
) -> DrawResult<()> {
    let area = root
        .titled(&data.title, ("sans-serif", 20))
        .map_err(failed)?;
    let (_, values) = &data.series[0];
    let top = values.iter().copied().fold(0.0f64, f64::max).max(1.0);
    let steps = values.len().max(1) as i32;
    let band = (HEIGHT as i32 - 80) / steps;
    let middle = (WIDTH as i32 - 200) / 2;
    let full = f64::from(WIDTH - 260);
    for (i, (name, value)) in data.categories.iter().zip(values).enumerate() {
        let half = (full * value.max(0.0) / top / 2.0) as i32;
        let y = 10 + i as i32 * band;
        area.draw(&Rectangle::new(
            [
                (middle - half.max(1), y),
                (middle + half.max(1), y + band - 6),
            ],
            color(i).filled(),
        ))
        .map_err(failed)?;
        let share = match i {
            0 => String::new(),
            _ if values[i - 1] > 0.0 => format!(" ({:.1}%)", value / values[i - 1] * 100.0),
            _ => String::new(),
        };
        area.draw_text(
            &format!("{name}: {value}{share}"),
            &TextStyle::from(("sans-serif", 13)).color(&BLACK),
            (middle + half.max(1) + 8, y + band / 2 - 8),
        )
        .map_err(failed)?;
    }
    legend(root, &data.categories)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> ChartData {
        ChartData {
            title: "Won by month".into(),
            x_label: "closed_at".into(),
            y_label: "sum_amount (EUR)".into(),
            categories: vec!["2026-09".into(), "2026-10".into(), "2026-11".into()],
            series: vec![("sum_amount".into(), vec![1200.0, 0.0, 4100.5])],
        }
    }

    #[test]
    fn every_kind_draws_its_title_legend_and_shapes() {
        for kind in [
            ChartKind::Bar,
            ChartKind::Line,
            ChartKind::Pie,
            ChartKind::Funnel,
        ] {
            let svg = render(kind, &data()).expect("drawn");
            assert!(svg.starts_with("<svg"), "{kind:?}");
            assert!(svg.contains("Won by month"), "{kind:?}: the title");
            assert!(svg.contains("2026-11"), "{kind:?}: the categories");
            let shapes = svg.matches("<rect").count()
                + svg.matches("<polyline").count()
                + svg.matches("<path").count()
                + svg.matches("<polygon").count();
            assert!(shapes >= 3, "{kind:?}: {shapes} shapes");
        }
        let bar = render(ChartKind::Bar, &data()).expect("drawn");
        assert!(bar.contains("sum_amount (EUR)"), "the unit on the axis");
    }

    #[test]
    fn text_is_escaped_and_nothing_to_show_says_so() {
        let mut hostile = data();
        hostile.title = "<script>alert(1)</script>".into();
        let svg = render(ChartKind::Bar, &hostile).expect("drawn");
        assert!(!svg.contains("<script>"));
        let empty = ChartData {
            categories: vec![],
            ..data()
        };
        let svg = render(ChartKind::Pie, &empty).expect("drawn");
        assert!(svg.contains("No data for this period"));
    }
}
