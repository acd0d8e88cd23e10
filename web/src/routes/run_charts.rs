//! Small server-rendered SVG line charts for the run page (no chart library, no script).

/// Series colours, in order.
const COLOURS: [&str; 6] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG line chart of `series` (name, y values at x = 0, 1, ...) titled `title`, with a
/// legend; `x_label` names the x axis.
pub fn line_chart(title: &str, series: &[(String, Vec<f64>)], x_label: &str) -> String {
    let (w, h) = (420.0, 220.0);
    let (left, right, top, bottom) = (48.0, 12.0, 28.0, 44.0);
    let n = series.iter().map(|s| s.1.len()).max().unwrap_or(0).max(2);
    let values = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|y| y.is_finite());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let (lo, hi) = if lo.is_finite() {
        (lo, if hi > lo { hi } else { lo + 1.0 })
    } else {
        (0.0, 1.0)
    };
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v - lo) / (hi - lo));
    let mut svg = format!(
        r##"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{t}"><rect width="{w}" height="{h}" fill="#fff"/><text x="{cx}" y="18" text-anchor="middle" font-size="13" font-weight="600">{t}</text>"##,
        t = escape(title),
        cx = w / 2.0
    );
    for (v, label) in [(lo, lo), (hi, hi)] {
        svg.push_str(&format!(
            r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e4e6ea"/><text x="{tx}" y="{ty:.1}" text-anchor="end" font-size="10">{label:.3}</text>"##,
            x2 = w - right,
            yy = y(v),
            tx = left - 4.0,
            ty = y(v) + 3.0,
        ));
    }
    svg.push_str(&format!(
        r##"<text x="{cx}" y="{ly}" text-anchor="middle" font-size="10" fill="#6a7180">{xl}</text>"##,
        cx = (left + w - right) / 2.0,
        ly = h - bottom + 14.0,
        xl = escape(x_label)
    ));
    for (i, (name, ys)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = ys
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        if points.len() == 1 {
            let (px, py) = points[0].split_once(',').unwrap_or(("0", "0"));
            svg.push_str(&format!(
                r##"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"##
            ));
        }
        svg.push_str(&format!(
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        ));
        let lx = left + 90.0 * (i % 4) as f64;
        let ly = h - 16.0 + 12.0 * (i / 4) as f64;
        svg.push_str(&format!(
            r##"<rect x="{lx}" y="{ry}" width="10" height="3" fill="{colour}"/><text x="{tx}" y="{ly}" font-size="10">{}</text>"##,
            escape(name),
            ry = ly - 4.0,
            tx = lx + 14.0,
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_a_polyline_per_series() {
        let svg = line_chart(
            "VQA <accuracy>",
            &[("a".into(), vec![0.1, 0.5]), ("b".into(), vec![0.2])],
            "round",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("VQA &lt;accuracy&gt;"));
    }
}
