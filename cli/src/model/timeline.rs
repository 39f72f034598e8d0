//! Timelines cut to a bounded number of points: the run is split into [`SLICES`] equal
//! slices of time and each slice keeps its highest value (and when it was reached), so a
//! peak survives downsampling however short it was.

/// Slices of the run a timeline is cut into: at most this many points.
pub const SLICES: u64 = 100;

/// No slice open yet.
const NONE: u64 = u64::MAX;

/// The downsampled timeline of a step function (a value that changes at given times),
/// built from its changes in time order over a run that ends at `end_ns`. What most changes
/// touch comes first, so that an owner can keep it in the cache line with its own.
#[repr(C)]
pub struct Downsampler {
    /// Where the open slice ends (the next one starts), and its highest value and when.
    open_end: u64,
    open_t: u64,
    open_max: u64,
    /// The open slice's index, or `NONE`.
    open: u64,
    end_ns: u64,
    points: Vec<(u64, u64)>,
}

impl Downsampler {
    pub fn new(end_ns: u64) -> Downsampler {
        Downsampler {
            open_end: 0,
            open_t: 0,
            open_max: 0,
            open: NONE,
            end_ns,
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

    /// The value goes from `from` (what it was set to last, or 0) to `to` at `t_ns` (times
    /// never decrease; later than the end counts as the end).
    #[inline]
    pub fn set(&mut self, t_ns: u64, from: u64, to: u64) {
        let t_ns = t_ns.min(self.end_ns);
        // Most changes fall in the open slice.
        if t_ns >= self.open_end {
            self.open_slice(t_ns, from);
        }
        if to > self.open_max {
            (self.open_t, self.open_max) = (t_ns, to);
        }
    }

    /// Opens the slice of `t_ns`, closing the one before and carrying `value` (the value
    /// until `t_ns`) through the slices between; the new slice starts at that value.
    #[cold]
    fn open_slice(&mut self, t_ns: u64, value: u64) {
        let slice = self.slice(t_ns);
        if slice == self.open {
            return; // a run that ends at 0 has one slice, ending nowhere
        }
        if self.open == NONE {
            (self.open_t, self.open_max) = (t_ns, 0);
        } else {
            self.close_through(slice, value);
            (self.open_t, self.open_max) = (self.slice_start(slice), value);
        }
        self.open = slice;
        self.open_end = if slice + 1 == SLICES {
            u64::MAX
        } else {
            self.slice_start(slice + 1)
        };
    }

    /// Closes the open slice and gives every slice after it, up to `before`, `value`.
    fn close_through(&mut self, before: u64, value: u64) {
        self.points.push((self.open_t, self.open_max));
        for s in self.open + 1..before {
            self.points.push((self.slice_start(s), value));
        }
    }

    /// The points, one per slice from the first change to the end of the run, less those
    /// in the middle of a run of equal values (a line through the rest draws the same);
    /// `value` is the value at the end.
    pub fn finish(mut self, value: u64) -> Vec<(u64, u64)> {
        if self.open != NONE {
            self.close_through(SLICES, value);
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
        let mut value = 0;
        for (t, v) in [(0, 5), (3, 9), (4, 1), (25, 7), (26, 0)] {
            d.set(t, value, v);
            value = v;
        }
        let p = d.finish(value);
        // Slice 0 peaks at 9; slice 1 carries 1; slice 2 starts at 1 and peaks at 7; then 0
        // until the end, of which the first and last points stay.
        assert_eq!(p, [(3, 9), (10, 1), (25, 7), (30, 0), (990, 0)]);
    }

    #[test]
    fn a_timeline_has_at_most_one_point_per_slice() {
        let mut d = Downsampler::new(1_000_000);
        for t in 0..=1_000_000u64 {
            d.set(t, t.saturating_sub(1), t);
        }
        let p = d.finish(1_000_000);
        assert_eq!(p.len() as u64, SLICES);
        assert_eq!(p[0], (9_999, 9_999));
        assert_eq!(p.last(), Some(&(1_000_000, 1_000_000)));
        // Times past the end count as the end; a timeline may start late.
        let mut d = Downsampler::new(100);
        d.set(500, 0, 3);
        assert_eq!(d.finish(3), [(100, 3)]);
        assert_eq!(Downsampler::new(0).finish(0), []);
    }
}
