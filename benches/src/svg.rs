//! A minimal SVG grouped-bar chart writer for the report (no plotting
//! crate): categories along x, one colored bar per series, linear or
//! logarithmic y axis with labeled grid lines and a legend.

use std::fmt::Write;

const COLORS: [&str; 6] = [
    "#d62728", "#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#9467bd",
];

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A grouped bar chart. `series` are (name, one value per category);
/// non-finite or non-positive values (on a log axis) are left out.
pub fn bar_chart(
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<f64>)],
    log: bool,
) -> String {
    let (w, h) = (
        (120 + categories.len() * (series.len() * 14 + 24)).max(640) as f64,
        420.0,
    );
    let (left, right, top, bottom) = (70.0, 170.0, 40.0, 90.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let vals = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|v| v.is_finite() && (!log || *v > 0.0));
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in vals {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !hi.is_finite() || hi <= 0.0 {
        hi = 1.0;
    }
    let (y0, y1) = if log {
        let lo = if lo.is_finite() { lo } else { hi / 10.0 };
        (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        )
    } else {
        (0.0, hi * 1.1)
    };
    let y_of = |v: f64| {
        let t = if log { v.log10() } else { v };
        top + plot_h - (t - y0) / (y1 - y0) * plot_h
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        left + plot_w / 2.0,
        esc(title)
    );
    // Grid lines and y labels.
    let ticks: Vec<f64> = if log {
        (y0 as i32..=y1 as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        let step = nice_step(y1 / 5.0);
        (0..=((y1 / step) as i32))
            .map(|k| k as f64 * step)
            .collect()
    };
    for t in ticks {
        let y = y_of(t);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            fmt_num(t)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{}</text>"#,
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        esc(y_label)
    );
    // Bars.
    let group_w = plot_w / categories.len().max(1) as f64;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (ci, cat) in categories.iter().enumerate() {
        let gx = left + ci as f64 * group_w + group_w * 0.1;
        for (si, (_, vals)) in series.iter().enumerate() {
            let Some(&v) = vals.get(ci) else { continue };
            if !v.is_finite() || (log && v <= 0.0) {
                continue;
            }
            let y = y_of(v).max(top);
            let base = if log { top + plot_h } else { y_of(0.0) };
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                gx + si as f64 * bar_w,
                bar_w.max(1.0),
                (base - y).max(0.0),
                COLORS[si % COLORS.len()],
                esc(cat),
                fmt_num(v)
            );
        }
        let lx = gx + group_w * 0.4;
        let ly = top + plot_h + 14.0;
        let _ = writeln!(
            s,
            r#"<text x="{lx:.1}" y="{ly:.1}" transform="rotate(30 {lx:.1} {ly:.1})">{}</text>"#,
            esc(cat)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#333"/>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h
    );
    // Legend.
    for (si, (name, _)) in series.iter().enumerate() {
        let y = top + 10.0 + si as f64 * 18.0;
        let x = left + plot_w + 12.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
            y - 10.0,
            COLORS[si % COLORS.len()],
            x + 16.0,
            y,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let n = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * mag
}

/// A compact number: `0.05`, `3.2`, `10`, `120`, `45k`, `2.1M`.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || (a >= 1.0 && v.fract() == 0.0) {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else if a == 0.0 || !a.is_finite() {
        format!("{v}")
    } else {
        // Three significant digits, trailing zeros trimmed.
        let d = (2 - a.log10().floor() as i32).clamp(0, 12) as usize;
        let s = format!("{v:.d$}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_one_bar_per_finite_value_and_a_legend() {
        let cats = vec!["a".to_string(), "b".to_string()];
        let series = vec![
            ("kiln".to_string(), vec![10.0, 100.0]),
            ("clif".to_string(), vec![1.0, f64::NAN]),
        ];
        let svg = bar_chart("t", "y", &cats, &series, true);
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains(">kiln</text>") && svg.contains(">clif</text>"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(fmt_num(2_100_000.0), "2.1M");
        assert_eq!(fmt_num(45_000.0), "45k");
        assert_eq!(fmt_num(3.25), "3.2");
        assert_eq!(fmt_num(0.05), "0.05");
        assert_eq!(fmt_num(0.001), "0.001");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(10.0), "10");
    }
}
