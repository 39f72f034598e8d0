//! The flame graph's call tree: the model's stacks merged from the outermost frame in, by
//! function, with CPU time (Python / native / system) and bytes allocated on every node.

use super::{round, MAX_NODES};
use crate::model::figures::{mib, percent};
use crate::model::{frameless_file, Profile, StackProfile, FRAMELESS};
use rustc_hash::FxHashMap;
use serde::Serialize;

/// A node's label: a function (an index in the profile's functions, as the page's
/// `functions` list has them), or one of these for a stack without frames.
/// Below them, the other pseudo-files of frameless time, in [`FRAMELESS`]'s order (the
/// page names label -n by [`Flame::pseudo`]'s n-th).
const NO_FRAME: i64 = -1;
const UNDEFINED: i64 = -2;

/// The label of a stack without frames shown under pseudo-file `no_frame`.
fn frameless_label(no_frame: &str) -> i64 {
    match FRAMELESS.iter().position(|&f| f == no_frame) {
        Some(i) if i > 0 => UNDEFINED - i as i64,
        _ => NO_FRAME,
    }
}

/// The names of the negative labels, -1 first.
fn pseudo_names() -> Vec<String> {
    let mut names = vec![
        "(no Python frame)".to_string(),
        "(undefined stack)".to_string(),
    ];
    names.extend(FRAMELESS[1..].iter().map(|f| {
        let what = frameless_file(f).unwrap_or_default();
        format!("{f} ({what})")
    }));
    names
}

#[derive(Default)]
struct Tree {
    parent: Vec<u32>,
    label: Vec<i64>,
    /// Python, native and system ns.
    cpu: Vec<[u64; 3]>,
    alloc: Vec<u64>,
    children: FxHashMap<(u32, i64), u32>,
}

impl Tree {
    fn child(&mut self, parent: u32, label: i64) -> u32 {
        let next = self.parent.len() as u32;
        let id = *self.children.entry((parent, label)).or_insert(next);
        if id == next {
            self.parent.push(parent);
            self.label.push(label);
            self.cpu.push([0; 3]);
            self.alloc.push(0);
        }
        id
    }

    fn add(&mut self, node: u32, s: &StackProfile) {
        let i = node as usize;
        let t = &s.times;
        for (sum, v) in self.cpu[i]
            .iter_mut()
            .zip([t.python_ns, t.native_ns, t.sys_ns])
        {
            *sum = sum.saturating_add(v);
        }
        self.alloc[i] = self.alloc[i].saturating_add(s.memory.malloc_bytes);
    }
}

/// The tree as the page reads it: per node (parents before children, node 0 the root) its
/// parent, label, CPU shares in percent of all sampled time and MiB allocated; and how
/// many nodes were left out.
#[derive(Serialize)]
pub struct Flame {
    parent: Vec<u32>,
    label: Vec<i64>,
    py: Vec<f64>,
    native: Vec<f64>,
    sys: Vec<f64>,
    alloc: Vec<f64>,
    dropped: usize,
    /// The name of label -n at n - 1.
    pseudo: Vec<String>,
}

pub fn tree(p: &Profile) -> Flame {
    let mut t = Tree::default();
    t.parent.push(0);
    t.label.push(NO_FRAME);
    t.cpu.push([0; 3]);
    t.alloc.push(0);
    for s in &p.stacks.stacks {
        t.add(0, s);
        let mut node = 0;
        if s.frames.is_empty() {
            let label = if s.undefined {
                UNDEFINED
            } else {
                frameless_label(s.no_frame)
            };
            node = t.child(node, label);
            t.add(node, s);
        }
        // Outermost first: the trace lists frames innermost first.
        for &f in s.frames.iter().rev() {
            let label = p.stacks.frames[f as usize].function as i64;
            node = t.child(node, label);
            t.add(node, s);
        }
    }
    let kept = heaviest(&t, MAX_NODES);
    let base = p.total.share_base();
    let mut number = vec![u32::MAX; t.parent.len()];
    let (mut parent, mut label, mut py, mut native, mut sys, mut alloc) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, _) in kept.iter().enumerate().filter(|(_, &k)| k) {
        number[i] = parent.len() as u32;
        parent.push(number[t.parent[i] as usize]);
        label.push(t.label[i]);
        let [p_ns, n_ns, s_ns] = t.cpu[i];
        py.push(round(percent(p_ns, base), 3));
        native.push(round(percent(n_ns, base), 3));
        sys.push(round(percent(s_ns, base), 3));
        alloc.push(round(mib(t.alloc[i]), 3));
    }
    Flame {
        pseudo: pseudo_names(),
        dropped: t.parent.len() - parent.len(),
        parent,
        label,
        py,
        native,
        sys,
        alloc,
    }
}

/// Which nodes to keep: the `max` heaviest, by the larger of their share of the CPU time
/// and of the bytes allocated. A node weighs at least as much as each of its children and
/// comes before them, so the kept nodes' parents are kept too.
fn heaviest(t: &Tree, max: usize) -> Vec<bool> {
    let n = t.parent.len();
    if n <= max {
        return vec![true; n];
    }
    let cpu_all = t.cpu[0].iter().map(|&v| v as f64).sum::<f64>().max(1.0);
    let alloc_all = (t.alloc[0] as f64).max(1.0);
    let weight: Vec<f64> = (0..n)
        .map(|i| {
            let cpu = t.cpu[i].iter().map(|&v| v as f64).sum::<f64>() / cpu_all;
            cpu.max(t.alloc[i] as f64 / alloc_all)
        })
        .collect();
    // The `max` first in (weight, then index) order, in linear time.
    let mut order: Vec<usize> = (0..n).collect();
    order.select_nth_unstable_by(max - 1, |&a, &b| {
        weight[b].total_cmp(&weight[a]).then(a.cmp(&b))
    });
    let mut kept = vec![false; n];
    for &i in &order[..max] {
        kept[i] = true;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heaviest_nodes_keep_their_parents() {
        // 0 (root) -> 1 -> 2 -> 3, 0 -> 4 (light): keep 3 of 5.
        let mut t = Tree::default();
        for (parent, cpu) in [(0, 100), (0, 60), (1, 50), (2, 50), (0, 5)] {
            t.parent.push(parent);
            t.label.push(0);
            t.cpu.push([cpu, 0, 0]);
            t.alloc.push(0);
        }
        assert_eq!(heaviest(&t, 3), [true, true, true, false, false]);
        assert_eq!(heaviest(&t, 9), [true; 5]);
    }
}
