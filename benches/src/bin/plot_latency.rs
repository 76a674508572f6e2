//! Draws the latency-vs-throughput chart of `benches/suite.sh`: p50 and p99 end-to-end
//! latency (log scale) against the achieved throughput of each step of a rate sweep, one
//! pair of lines per sweep series (e.g. `acks=1`, `acks=all`).
//!
//! Run: `cargo run --release -p strata-benches --bin plot_latency -- SWEEP.csv OUT.png [TITLE]`
//!
//! SWEEP.csv has a header line naming its columns; the tool reads `series`,
//! `achieved_msgs_per_sec`, `p50_ms` and `p99_ms` by name (others are ignored). The font is
//! a TrueType file loaded at run time (no system font libraries): `STRATA_PLOT_FONT`, or
//! the first of `FONT_CANDIDATES` that exists. Errors go to stderr with exit status 1
//! (bad input) or 2 (bad usage).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// Environment variable naming the TrueType font to draw text with.
const FONT_ENV: &str = "STRATA_PLOT_FONT";
/// Fonts tried in order when `FONT_ENV` is unset (Debian's, then other common places).
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];
/// Family name the loaded font is registered under.
const FONT_FAMILY: &str = "sans-serif";
const IMAGE_WIDTH_PX: u32 = 1000;
const IMAGE_HEIGHT_PX: u32 = 620;
/// Headroom above the largest figure on each axis, as a factor.
const AXIS_HEADROOM: f64 = 1.15;
/// Largest input file read, so a wrong path cannot exhaust memory.
const MAX_INPUT_BYTES: u64 = 16 << 20;

/// One step of a sweep: what was achieved and the latency it cost.
#[derive(Debug, Clone, PartialEq)]
struct SweepPoint {
    series: String,
    achieved_msgs_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// What can be wrong with a sweep file; each variant says where.
#[derive(Debug, PartialEq)]
enum ParseError {
    Empty,
    MissingColumn(&'static str),
    FieldCount {
        line: usize,
        expected: usize,
        found: usize,
    },
    BadNumber {
        line: usize,
        column: &'static str,
        text: String,
    },
    NoPoints,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Empty => write!(f, "the file is empty (no header line)"),
            ParseError::MissingColumn(c) => write!(f, "the header has no `{c}` column"),
            ParseError::FieldCount {
                line,
                expected,
                found,
            } => write!(f, "line {line}: {found} fields, the header has {expected}"),
            ParseError::BadNumber { line, column, text } => write!(
                f,
                "line {line}: `{column}` is `{text}`, not a finite non-negative number"
            ),
            ParseError::NoPoints => write!(f, "no data lines after the header"),
        }
    }
}

/// Parses a sweep CSV (comma-separated, no quoting; blank lines skipped).
fn parse_sweep(text: &str) -> Result<Vec<SweepPoint>, ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    let (_, header) = lines.next().ok_or(ParseError::Empty)?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let index = |name: &'static str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or(ParseError::MissingColumn(name))
    };
    let (series_i, rate_i, p50_i, p99_i) = (
        index("series")?,
        index("achieved_msgs_per_sec")?,
        index("p50_ms")?,
        index("p99_ms")?,
    );
    let mut points = Vec::new();
    for (line, l) in lines {
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        if fields.len() != columns.len() {
            return Err(ParseError::FieldCount {
                line,
                expected: columns.len(),
                found: fields.len(),
            });
        }
        let number = |i: usize, column: &'static str| {
            fields[i]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| ParseError::BadNumber {
                    line,
                    column,
                    text: fields[i].to_string(),
                })
        };
        points.push(SweepPoint {
            series: fields[series_i].to_string(),
            achieved_msgs_per_sec: number(rate_i, "achieved_msgs_per_sec")?,
            p50_ms: number(p50_i, "p50_ms")?,
            p99_ms: number(p99_i, "p99_ms")?,
        });
    }
    if points.is_empty() {
        return Err(ParseError::NoPoints);
    }
    Ok(points)
}

/// Series names in order of first appearance, each with its points sorted by throughput.
fn group_series(points: &[SweepPoint]) -> Vec<(String, Vec<SweepPoint>)> {
    let mut groups: Vec<(String, Vec<SweepPoint>)> = Vec::new();
    for p in points {
        match groups.iter_mut().find(|(name, _)| *name == p.series) {
            Some((_, members)) => members.push(p.clone()),
            None => groups.push((p.series.clone(), vec![p.clone()])),
        }
    }
    for (_, members) in &mut groups {
        members.sort_by(|a, b| a.achieved_msgs_per_sec.total_cmp(&b.achieved_msgs_per_sec));
    }
    groups
}

/// Loads the font and registers it for `FONT_FAMILY`; the bytes live for the process.
fn load_font() -> Result<(), String> {
    let path = match std::env::var_os(FONT_ENV) {
        Some(p) => PathBuf::from(p),
        None => FONT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "no TrueType font found (tried {}); install fonts-dejavu-core or set {FONT_ENV}",
                    FONT_CANDIDATES.join(", ")
                )
            })?,
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FONT_FAMILY, FontStyle::Normal, leaked)
        .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
}

/// Colours of the series in turn (p50 and p99 of a series share its colour).
const SERIES_COLOURS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

fn draw(points: &[SweepPoint], out: &Path, title: &str) -> Result<(), String> {
    let groups = group_series(points);
    let max_rate_k = points
        .iter()
        .map(|p| p.achieved_msgs_per_sec / 1000.0)
        .fold(1.0_f64, f64::max)
        * AXIS_HEADROOM;
    // A log axis needs a positive lower bound (0.1 ms is below any loopback round trip);
    // starting it at a power of ten makes the axis label its lowest decade.
    let min_ms = 10f64.powf(
        points
            .iter()
            .map(|p| p.p50_ms)
            .fold(f64::INFINITY, f64::min)
            .max(0.1)
            .log10()
            .floor(),
    );
    let max_ms = points.iter().map(|p| p.p99_ms).fold(1.0_f64, f64::max) * AXIS_HEADROOM;

    let err = |e: &dyn std::fmt::Display| format!("drawing {}: {e}", out.display());
    let root = BitMapBackend::new(out, (IMAGE_WIDTH_PX, IMAGE_HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT_FAMILY, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_rate_k, (min_ms..max_ms).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("achieved throughput (thousand msgs/s)")
        .y_desc("end-to-end latency (ms, log scale)")
        .y_labels(20)
        .y_label_formatter(&|v| format!("{v}"))
        .light_line_style(WHITE)
        .label_style((FONT_FAMILY, 14))
        .draw()
        .map_err(|e| err(&e))?;

    for (i, (name, members)) in groups.iter().enumerate() {
        let colour = SERIES_COLOURS[i % SERIES_COLOURS.len()];
        for (label, width, pick) in [
            (
                "p50",
                2,
                (|p: &SweepPoint| p.p50_ms) as fn(&SweepPoint) -> f64,
            ),
            ("p99", 1, |p: &SweepPoint| p.p99_ms),
        ] {
            let style = colour.stroke_width(width);
            let line = members
                .iter()
                .map(|p| (p.achieved_msgs_per_sec / 1000.0, pick(p).max(min_ms)));
            chart
                .draw_series(LineSeries::new(line, style).point_size(3))
                .map_err(|e| err(&e))?
                .label(format!("{name} {label}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT_FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

fn run(args: &[String]) -> Result<(), (u8, String)> {
    let (input, out, title) = match args {
        [input, out] => (input, out, "Strata: latency vs throughput"),
        [input, out, title] => (input, out, title.as_str()),
        _ => {
            return Err((
                2,
                "usage: plot_latency SWEEP.csv OUT.png [TITLE]".to_string(),
            ))
        }
    };
    let len = std::fs::metadata(input)
        .map_err(|e| (1, format!("{input}: {e}")))?
        .len();
    if len > MAX_INPUT_BYTES {
        return Err((
            1,
            format!("{input}: {len} bytes, more than {MAX_INPUT_BYTES}"),
        ));
    }
    let text = std::fs::read_to_string(input).map_err(|e| (1, format!("{input}: {e}")))?;
    let points = parse_sweep(&text).map_err(|e| (1, format!("{input}: {e}")))?;
    load_font().map_err(|e| (1, e))?;
    draw(&points, Path::new(out), title).map_err(|e| (1, e))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("plot_latency: {message}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "series,target_pct,rate_msgs_per_sec,achieved_msgs_per_sec,mb_per_sec,p50_ms,p99_ms";

    #[test]
    fn parses_columns_by_name_and_groups_series_sorted() {
        let text = format!(
            "{HEADER}\nacks=1,30,3000,2990.5,3.1,2.5,9\n\nacks=1,10,1000,1001,1.0,1.5,4.25\nacks=all,10,1000,999,1.0,3,12\n"
        );
        let points = parse_sweep(&text).expect("valid input");
        assert_eq!(points.len(), 3);
        assert_eq!(points[1].p99_ms, 4.25);
        let groups = group_series(&points);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].0, "acks=1");
        assert_eq!(groups[0].1[0].achieved_msgs_per_sec, 1001.0);
        assert_eq!(groups[1].0, "acks=all");
    }

    #[test]
    fn rejects_bad_input_with_the_line() {
        assert_eq!(parse_sweep(""), Err(ParseError::Empty));
        assert_eq!(
            parse_sweep("series,p50_ms,p99_ms\nx,1,2"),
            Err(ParseError::MissingColumn("achieved_msgs_per_sec"))
        );
        assert_eq!(parse_sweep(HEADER), Err(ParseError::NoPoints));
        assert_eq!(
            parse_sweep(&format!("{HEADER}\nacks=1,10,1000,1001,1.0,1.5")),
            Err(ParseError::FieldCount {
                line: 2,
                expected: 7,
                found: 6
            })
        );
        assert_eq!(
            parse_sweep(&format!("{HEADER}\nacks=1,10,1000,NaN,1.0,1.5,2")),
            Err(ParseError::BadNumber {
                line: 2,
                column: "achieved_msgs_per_sec",
                text: "NaN".to_string()
            })
        );
        assert!(matches!(
            parse_sweep(&format!("{HEADER}\nacks=1,10,1000,5,1.0,-1,2")),
            Err(ParseError::BadNumber {
                column: "p50_ms",
                ..
            })
        ));
    }
}
