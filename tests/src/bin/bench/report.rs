//! The side-by-side benchmark's report: the markdown table (`report.md`) and the log-log plot of
//! wall time against open fds (`time-vs-fds.svg`).

use std::fmt::Write as _;

use super::{Options, Row};

pub fn report(ordinary: &str, rows: &[Row], options: &Options) -> String {
    let mut out = String::new();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "fdid benchmark: kernel {}, {cpus} CPUs, median of {} runs, peak RSS = largest of the runs\n",
        kernel.trim(),
        options.runs
    );
    let _ = writeln!(out, "{ordinary}");
    let _ = writeln!(
        out,
        "| fds | tool | median wall | peak RSS | fds/s | × raw walk | grouping vs ground truth |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---|");
    for row in rows {
        let raw = rows
            .iter()
            .find(|r| r.fds == row.fds && r.tool.starts_with("raw walk"))
            .and_then(|r| r.wall);
        let (wall, rate, ratio) = match row.wall {
            Some(wall) => (
                format!("{:.1} ms", wall.as_secs_f64() * 1e3),
                format!("{:.2} M", row.fds as f64 / wall.as_secs_f64() / 1e6),
                raw.map(|raw| format!("{:.2}", wall.as_secs_f64() / raw.as_secs_f64()))
                    .unwrap_or_default(),
            ),
            None => ("—".into(), "—".into(), "—".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {wall} | {:.0} MiB | {rate} | {ratio} | {} |",
            row.fds,
            row.tool,
            row.rss_kib as f64 / 1024.0,
            row.note
        );
    }
    out
}

/// A log-log SVG line chart of median wall time against fds, one line per tool.
pub fn plot(rows: &[Row]) -> String {
    let (width, height, margin) = (860.0, 520.0, 70.0);
    let mut tools: Vec<&str> = Vec::new();
    for row in rows {
        if !tools.contains(&row.tool.as_str()) {
            tools.push(&row.tool);
        }
    }
    let points: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| {
            r.wall
                .map(|w| ((r.fds as f64).log10(), (w.as_secs_f64() * 1e3).log10()))
        })
        .collect();
    let (x0, x1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(p.0.floor()), b.max(p.0.ceil()))
    });
    let (y0, y1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), p| {
        (a.min(p.1.floor()), b.max(p.1.ceil()))
    });
    let (x1, y1) = (x1.max(x0 + 1.0), y1.max(y0 + 1.0));
    let sx = |x: f64| margin + (x - x0) / (x1 - x0) * (width - 2.0 * margin - 200.0);
    let sy = |y: f64| height - margin - (y - y0) / (y1 - y0) * (height - 2.0 * margin);
    let colors = [
        "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666",
        "#1f78b4", "#b2df8a", "#fb9a99",
    ];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for decade in (x0 as i32)..=(x1 as i32) {
        let x = sx(f64::from(decade));
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">10^{decade} fds</text>",
            sy(y0),
            sy(y1),
            sy(y0) + 18.0
        );
    }
    for decade in (y0 as i32)..=(y1 as i32) {
        let y = sy(f64::from(decade));
        let label = 10f64.powi(decade);
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{label} ms</text>",
            sx(x0),
            sx(x1),
            sx(x0) - 6.0,
            y + 4.0
        );
    }
    for (k, tool) in tools.iter().enumerate() {
        let color = colors[k % colors.len()];
        let line: Vec<String> = rows
            .iter()
            .filter(|r| r.tool == *tool)
            .filter_map(|r| {
                r.wall.map(|w| {
                    format!(
                        "{:.1},{:.1}",
                        sx((r.fds as f64).log10()),
                        sy((w.as_secs_f64() * 1e3).log10())
                    )
                })
            })
            .collect();
        if line.is_empty() {
            continue;
        }
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        for point in &line {
            let (x, y) = point.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{color}\"/>"
            );
        }
        let ly = margin + 18.0 * k as f64;
        let _ = writeln!(
            svg,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            width - 250.0,
            ly - 4.0,
            width - 232.0,
            ly,
            tool.replace('&', "&amp;").replace('<', "&lt;")
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">median wall time vs open fds (log-log)</text>\n</svg>",
        width / 2.0
    );
    svg
}
