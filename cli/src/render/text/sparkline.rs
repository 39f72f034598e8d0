//! Sparklines: a timeline in one line of text, with eight heights of block (▁ to █).

const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The timeline (`(t_ns, value)` points in time order, as [`crate::model::timeline`] makes them,
/// over a run that ends at `end_ns`) drawn in `width` columns, each the highest value that
/// falls in it, scaled so that `max` is a full block. A column before the first point is
/// blank; one with no point of its own holds the last value before it; zero is blank.
pub fn sparkline(points: &[(u64, u64)], end_ns: u64, width: usize, max: u64) -> String {
    if width == 0 {
        return String::new();
    }
    // Per column: the highest value in it, and the last. Column c is the slice
    // [c × end / width, (c + 1) × end / width) of the run, the last one closed.
    let mut cols: Vec<Option<(u64, u64)>> = vec![None; width];
    let col = |t: u64| match end_ns {
        0 => 0,
        _ => (u128::from(t) * width as u128 / u128::from(end_ns)).min(width as u128 - 1) as usize,
    };
    for &(t, v) in points {
        let c = &mut cols[col(t)];
        *c = Some(c.map_or((v, v), |(high, _)| (high.max(v), v)));
    }
    let mut carried = None;
    for c in &mut cols {
        match c {
            Some((_, last)) => carried = Some((*last, *last)),
            None => *c = carried,
        }
    }
    cols.iter()
        .map(|c| match *c {
            None | Some((0, _)) => ' ',
            Some((v, _)) => level(v, max),
        })
        .collect()
}

/// The block for `v` on a scale of 0 to `max`: any value above zero shows.
fn level(v: u64, max: u64) -> char {
    if max == 0 {
        return LEVELS[LEVELS.len() - 1];
    }
    let i = (v as f64 / max as f64 * LEVELS.len() as f64).ceil() as usize;
    LEVELS[i.clamp(1, LEVELS.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_keep_their_highest_value_and_carry_it_on() {
        // 10 columns of 10 ns.
        let p = [(25, 8), (27, 2), (31, 4), (45, 6), (72, 0)];
        assert_eq!(sparkline(&p, 100, 10, 8), "  █▄▆▆▆   ");
        assert_eq!(sparkline(&p[..2], 100, 10, 8), "  █▂▂▂▂▂▂▂");
        assert_eq!(sparkline(&[], 100, 4, 8), "    ");
    }

    #[test]
    fn levels_scale_to_the_maximum() {
        let p: Vec<(u64, u64)> = (0..8).map(|i| (i * 10, i + 1)).collect();
        assert_eq!(sparkline(&p, 80, 8, 8), "▁▂▃▄▅▆▇█");
        assert_eq!(level(1, 1000), '▁');
        assert_eq!(level(5000, 1000), '█');
        assert_eq!(level(3, 0), '█');
    }
}
