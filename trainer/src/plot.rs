//! Training curves of one or more runs, drawn from their logs (see [`crate::log`]) as an SVG
//! image: the training loss (smoothed), the validation losses, and the evaluations logged at
//! each checkpoint. Used for `docs/experiments.md`.

use std::path::Path;

use cappa::{Error, Result};
use plotters::prelude::*;
use serde_json::Value;

use crate::log::series;

/// One run to draw: its label and its log records.
pub struct Run {
    /// Legend label.
    pub label: String,
    /// The records of its `log.jsonl`.
    pub records: Vec<Value>,
}

/// A panel: a title and the log keys drawn in it (with their legend names).
struct Panel {
    title: &'static str,
    keys: &'static [(&'static str, &'static str)],
    /// Values are fractions (drawn 0..1) rather than losses.
    fraction: bool,
}

const PANELS: [Panel; 4] = [
    Panel {
        title: "training loss (mean of 25 steps) and validation Cap loss",
        keys: &[("loss", "train"), ("valid_cap", "valid Cap")],
        fraction: false,
    },
    Panel {
        title: "greedy exact match (one / two objects)",
        keys: &[
            ("eval/greedy/0/exact_match", "one"),
            ("eval/greedy/1/exact_match", "two"),
        ],
        fraction: true,
    },
    Panel {
        title: "word order and zero-shot shape accuracy",
        keys: &[
            ("eval/word_order", "word order"),
            ("eval/zero_shot/0", "zero-shot shape"),
        ],
        fraction: true,
    },
    Panel {
        title: "10-shot linear probe (shape / colour)",
        keys: &[("eval/probe/0", "shape"), ("eval/probe/1", "colour")],
        fraction: true,
    },
];

/// One curve: legend label, run index, measure index, points.
type Line = (String, usize, usize, Vec<(u64, f64)>);

/// Averages consecutive windows of `n` points (the training loss is noisy step to step).
fn smooth(points: &[(u64, f64)], n: usize) -> Vec<(u64, f64)> {
    points
        .chunks(n)
        .map(|c| {
            let mean = c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64;
            (c[c.len() - 1].0, mean)
        })
        .collect()
}

fn draw_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Io(format!("drawing the curves: {e:?}"))
}

/// Draws the curves of `runs` into the SVG file `out`.
pub fn curves(runs: &[Run], out: &Path) -> Result<()> {
    let root = SVGBackend::new(out, (1200, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let areas = root.split_evenly((2, 2));
    let max_step = runs
        .iter()
        .flat_map(|r| series(&r.records, "loss"))
        .map(|p| p.0)
        .max()
        .unwrap_or(1)
        .max(1);
    for (panel, area) in PANELS.iter().zip(&areas) {
        let lines: Vec<Line> = runs
            .iter()
            .enumerate()
            .flat_map(|(ri, run)| {
                panel.keys.iter().enumerate().map(move |(ki, (key, name))| {
                    let pts = series(&run.records, key);
                    let pts = if *key == "loss" {
                        smooth(&pts, 25)
                    } else {
                        pts
                    };
                    (format!("{} {name}", run.label), ri, ki, pts)
                })
            })
            .filter(|l| !l.3.is_empty())
            .collect();
        let y_max = if panel.fraction {
            1.0
        } else {
            lines
                .iter()
                .flat_map(|l| l.3.iter().map(|p| p.1))
                .fold(0.0f64, f64::max)
                .max(1e-3)
                * 1.05
        };
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(0u64..max_step, 0.0..y_max)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(draw_err)?;
        for (label, ri, ki, pts) in lines {
            // Colour tells the run, line style the measure.
            let colour = Palette99::pick(ri * 4 + 1).to_rgba();
            let style = ShapeStyle {
                color: colour.mix(if ki == 0 { 1.0 } else { 0.55 }),
                filled: false,
                stroke_width: if ki == 0 { 2 } else { 3 },
            };
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), style))
                .map_err(draw_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(if panel.fraction {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .draw()
            .map_err(draw_err)?;
    }
    root.present().map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg_with_every_run() {
        let records = |offset: f64| -> Vec<Value> {
            (1..=60u64)
                .map(|s| serde_json::json!({"step": s, "loss": 3.0 - offset - s as f64 * 0.01}))
                .chain([serde_json::json!({"step": 60, "eval": {"word_order": 0.9}})])
                .collect()
        };
        let runs = [
            Run {
                label: "CapPa".into(),
                records: records(0.0),
            },
            Run {
                label: "Cap".into(),
                records: records(0.5),
            },
        ];
        let out = std::env::temp_dir().join(format!("cappa-plot-{}.svg", std::process::id()));
        curves(&runs, &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        assert!(svg.starts_with("<svg"));
        for label in [
            "CapPa train",
            "Cap train",
            "CapPa word order",
            "Cap word order",
        ] {
            assert!(svg.contains(label), "{label}");
        }
        assert!(
            !svg.contains("valid Cap"),
            "a measure without data gets no legend"
        );
    }
}
