//! Timelines cut to a bounded number of points: the run is split into [`SLICES`] equal
//! slices of time and each slice keeps its highest value (and when it was reached), so a
//! peak survives downsampling however short it was.

/// Slices of the run a timeline is cut into: at most this many points.
pub const SLICES: u64 = 100;

/// The downsampled timeline of a step function (a value that changes at given times),
/// built from its changes in time order over a run that ends at `end_ns`.
pub struct Downsampler {
    end_ns: u64,
    /// The slice being filled: its index, and its highest value with its time.
    open: Option<(u64, u64, u64)>,
    /// Where the open slice ends (the next one starts).
    open_end: u64,
    /// The value now, which carries into slices with no change.
    value: u64,
    points: Vec<(u64, u64)>,
}

impl Downsampler {
    pub fn new(end_ns: u64) -> Downsampler {
        Downsampler {
            end_ns,
            open: None,
            open_end: 0,
            value: 0,
            points: Vec::new(),
        }
    }

    /// Slice `s` is [s × end / SLICES, (s + 1) × end / SLICES), the last one closed.
    fn slice(&self, t_ns: u64) -> u64 {
        if self.end_ns == 0 {
            return 0;
        }
        let s = u128::from(t_ns) * u128::from(SLICES) / u128::from(self.end_ns);
        (s as u64).min(SLICES - 1)
    }

    fn slice_start(&self, slice: u64) -> u64 {
        (u128::from(slice) * u128::from(self.end_ns)).div_ceil(u128::from(SLICES)) as u64
    }

    /// The value becomes `value` at `t_ns` (times never decrease; later than the end
    /// counts as the end).
    pub fn set(&mut self, t_ns: u64, value: u64) {
        let t_ns = t_ns.min(self.end_ns);
        // Most changes fall in the open slice.
        if let Some((s, _, max)) = self.open {
            if t_ns < self.open_end {
                if value > max {
                    self.open = Some((s, t_ns, value));
                }
                self.value = value;
                return;
            }
        }
        let slice = self.slice(t_ns);
        self.open_end = if slice + 1 == SLICES {
            u64::MAX
        } else {
            self.slice_start(slice + 1)
        };
        match self.open {
            Some((s, _, max)) if s == slice => {
                if value > max {
                    self.open = Some((s, t_ns, value));
                }
            }
            Some((s, _, _)) => {
                self.close_through(s, slice);
                // The slice starts at the value carried in.
                let start = (self.slice_start(slice), self.value);
                self.open = Some(if value > start.1 {
                    (slice, t_ns, value)
                } else {
                    (slice, start.0, start.1)
                });
            }
            None => self.open = Some((slice, t_ns, value)),
        }
        self.value = value;
    }

    /// Closes the open slice and gives every slice after it, up to `before`, the
    /// carried value.
    fn close_through(&mut self, open: u64, before: u64) {
        if let Some((_, t, max)) = self.open.take() {
            self.points.push((t, max));
        }
        for s in open + 1..before {
            self.points.push((self.slice_start(s), self.value));
        }
    }

    /// The points, one per slice from the first change to the end of the run, less those
    /// in the middle of a run of equal values (a line through the rest draws the same).
    pub fn finish(mut self) -> Vec<(u64, u64)> {
        if let Some((s, _, _)) = self.open {
            self.close_through(s, SLICES);
        }
        let p = &self.points;
        let mut out = Vec::with_capacity(p.len());
        for (i, &point) in p.iter().enumerate() {
            let same_as = |j: Option<usize>| j.and_then(|j| p.get(j)).map(|q| q.1) == Some(point.1);
            if !(same_as(i.checked_sub(1)) && same_as(Some(i + 1))) {
                out.push(point);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slice_keeps_its_highest_value() {
        // 1000 ns in 100 slices of 10 ns.
        let mut d = Downsampler::new(1000);
        d.set(0, 5);
        d.set(3, 9);
        d.set(4, 1);
        d.set(25, 7);
        d.set(26, 0);
        let p = d.finish();
        // Slice 0 peaks at 9; slice 1 carries 1; slice 2 starts at 1 and peaks at 7; then 0
        // until the end, of which the first and last points stay.
        assert_eq!(p, [(3, 9), (10, 1), (25, 7), (30, 0), (990, 0)]);
    }

    #[test]
    fn a_timeline_has_at_most_one_point_per_slice() {
        let mut d = Downsampler::new(1_000_000);
        for t in 0..=1_000_000u64 {
            d.set(t, t);
        }
        let p = d.finish();
        assert_eq!(p.len() as u64, SLICES);
        assert_eq!(p[0], (9_999, 9_999));
        assert_eq!(p.last(), Some(&(1_000_000, 1_000_000)));
        // Times past the end count as the end; a timeline may start late.
        let mut d = Downsampler::new(100);
        d.set(500, 3);
        assert_eq!(d.finish(), [(100, 3)]);
        assert_eq!(Downsampler::new(0).finish(), []);
    }
}
