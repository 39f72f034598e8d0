//! Line numbers from a copied line table, per CPython's table format. Writer side.

/// The line of the instruction at byte offset `addrq` (as recorded in a `RawFrame`), or None
/// when that instruction has no line. A negative `addrq` (not started yet) means the first
/// line, as in CPython. Bounded by the table length; a corrupt table yields None. What
/// `co_lines()` says, against which the tests hold the decoders.
#[cfg(test)]
pub fn decode_line(version_hex: u32, table: &[u8], first_line: i32, addrq: i32) -> Option<u32> {
    decode(version_hex, table, first_line, addrq, false)
}

/// The line a sample at `addrq` is charged to: its instruction's line, or, for an
/// instruction with no line of its own (a loop's backward jump, the cleanup after a `with`
/// or `for`), the line of the nearest instruction before it that has one (the code
/// object's first line when none does). A sample is never left without a line this way;
/// only a corrupt table yields None.
pub fn charged_line(version_hex: u32, table: &[u8], first_line: i32, addrq: i32) -> Option<u32> {
    decode(version_hex, table, first_line, addrq, true)
}

/// `inherit`: an instruction without a line takes the running line (the last line set by
/// an entry before it), which is the nearest preceding instruction's line.
fn decode(
    version_hex: u32,
    table: &[u8],
    first_line: i32,
    addrq: i32,
    inherit: bool,
) -> Option<u32> {
    let (major, minor) = (version_hex >> 24, (version_hex >> 16) & 0xff);
    if major != 3 {
        return None;
    }
    let line = if addrq < 0 {
        Some(first_line)
    } else if minor <= 9 {
        lnotab(table, first_line, addrq)
    } else if minor == 10 {
        linetable_310(table, first_line, addrq, inherit)
    } else {
        locations(table, first_line, addrq, inherit)
    };
    line.and_then(|l| u32::try_from(l).ok())
}

/// 3.8/3.9 co_lnotab: (address increment u8, line increment i8) pairs; the line of `addrq` is
/// the sum of the line increments of all pairs whose cumulative address is <= addrq.
fn lnotab(table: &[u8], first_line: i32, addrq: i32) -> Option<i32> {
    let (mut line, mut addr) = (first_line, 0i32);
    for pair in table.chunks_exact(2) {
        addr += pair[0] as i32;
        if addr > addrq {
            break;
        }
        line = line.wrapping_add(pair[1] as i8 as i32);
    }
    Some(line)
}

/// 3.10 co_linetable (PEP 626): (range length u8, line delta i8) pairs; -128 means the range
/// has no line and leaves the running line unchanged.
fn linetable_310(table: &[u8], first_line: i32, addrq: i32, inherit: bool) -> Option<i32> {
    let (mut line, mut end) = (first_line, 0i32);
    for pair in table.chunks_exact(2) {
        let start = end;
        end += pair[0] as i32;
        let delta = pair[1] as i8;
        if delta != -128 {
            line = line.wrapping_add(delta as i32);
        }
        let this = (delta != -128 || inherit).then_some(line);
        if (start..end).contains(&addrq) {
            return this;
        }
    }
    None
}

/// 3.11+ location table (PEP 657). Each entry starts with a byte with bit 7 set:
/// code = bits 3-6, length = (bits 0-2) + 1 code units. Codes 0-9: same line; 10-12: line
/// +0..2; 13 (no columns) and 14 (long form): signed varint line delta; 15: no location.
/// Continuation bytes never have bit 7 set.
fn locations(table: &[u8], first_line: i32, addrq: i32, inherit: bool) -> Option<i32> {
    let (mut line, mut addr, mut i) = (first_line, 0i32, 0usize);
    while i < table.len() {
        let head = table[i];
        if head & 0x80 == 0 {
            return None; // desynchronised: not an entry start
        }
        i += 1;
        let code = (head >> 3) & 15;
        let end = addr + 2 * ((head & 7) as i32 + 1);
        line = line.wrapping_add(match code {
            10..=12 => code as i32 - 10,
            13 | 14 => signed_varint(table, &mut i)?,
            _ => 0,
        });
        if (addr..end).contains(&addrq) {
            return (code != 15 || inherit).then_some(line);
        }
        addr = end;
        while i < table.len() && table[i] & 0x80 == 0 {
            i += 1; // columns and end line of this entry
        }
    }
    None
}

/// 6-bit little-endian chunks, 0x40 = more; the low bit of the value is the sign.
fn signed_varint(table: &[u8], i: &mut usize) -> Option<i32> {
    let (mut value, mut shift) = (0u32, 0u32);
    loop {
        let b = *table.get(*i)?;
        *i += 1;
        value |= ((b & 63) as u32).checked_shl(shift)?;
        if b & 64 == 0 {
            break;
        }
        shift += 6;
        if shift > 30 {
            return None;
        }
    }
    let magnitude = (value >> 1) as i32;
    Some(if value & 1 != 0 {
        -magnitude
    } else {
        magnitude
    })
}

#[cfg(test)]
mod tests {
    use super::{charged_line, decode_line};
    use std::process::Command;

    const V38: u32 = 0x0308_10f0;
    const V310: u32 = 0x030a_00f0;

    #[test]
    fn lnotab_hand_made() {
        // first line 10: +1 at 0, then +300 at 6 split as CPython 3.8 does (127, 127, 46),
        // then 260 bytes later (255 + 5) back 2 lines.
        let t = [0, 1, 6, 127, 0, 127, 0, 46, 255, 0, 5, (-2i8) as u8];
        let line = |q| decode_line(V38, &t, 10, q);
        assert_eq!(line(-1), Some(10));
        assert_eq!(line(0), Some(11));
        assert_eq!(line(5), Some(11));
        assert_eq!(line(6), Some(311));
        assert_eq!(line(260), Some(311));
        assert_eq!(line(266), Some(309));
        assert_eq!(line(10_000), Some(309));
        assert_eq!(decode_line(V38, &[], 7, 4), Some(7));
    }

    #[test]
    fn linetable_310_hand_made() {
        // [0,8) line 2; zero-length +127; [8,14) +20 -> 149; [14,18) no line; [18,20) -5 -> 144.
        let t = [8, 1, 0, 127, 6, 20, 4, 0x80, 2, (-5i8) as u8];
        let line = |q| decode_line(V310, &t, 1, q);
        assert_eq!(line(-1), Some(1));
        assert_eq!(line(0), Some(2));
        assert_eq!(line(7), Some(2));
        assert_eq!(line(8), Some(149));
        assert_eq!(line(13), Some(149));
        assert_eq!(line(14), None);
        assert_eq!(line(18), Some(144));
        assert_eq!(line(20), None);
        // Charged: the line-less range takes the line before it; past the end stays None.
        assert_eq!(charged_line(V310, &t, 1, 14), Some(149));
        assert_eq!(charged_line(V310, &t, 1, 18), Some(144));
        assert_eq!(charged_line(V310, &t, 1, 20), None);
    }

    #[test]
    fn locations_hand_made() {
        let v311 = 0x030b_07f0;
        // [0,2) one-line +1; [2,6) no columns -70 (svarint 141 = 0x4d|0x40, 0x02); [6,8) none;
        // [8,10) long +3 (end line, columns); [10,12) short form; stray continuation byte.
        let t = [
            0x80 | (11 << 3),
            4,
            5,
            0x80 | (13 << 3) | 1,
            0x40 | 13,
            2,
            0x80 | (15 << 3),
            0x80 | (14 << 3),
            6,
            0,
            1,
            2,
            0x80,
            3,
            0x05,
        ];
        let line = |q| decode_line(v311, &t, 100, q);
        assert_eq!(line(0), Some(101));
        assert_eq!(line(2), Some(31));
        assert_eq!(line(4), Some(31));
        assert_eq!(line(6), None);
        assert_eq!(charged_line(v311, &t, 100, 6), Some(31));
        assert_eq!(line(8), Some(34));
        assert_eq!(line(10), Some(34));
        assert_eq!(line(12), None);
        assert_eq!(decode_line(v311, &[0x05, 0x80], 1, 0), None);
    }

    /// Checks decode_line against `co_lines()` of a real interpreter for every code unit of
    /// every code object that tests/probe/linetable_truth.py dumps. Returns (codes, offsets).
    fn check_against(python: &str) -> (usize, usize) {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/probe/linetable_truth.py"
        );
        let out = Command::new(python)
            .arg(script)
            .output()
            .unwrap_or_else(|e| panic!("{python} must be runnable for this test: {e}"));
        assert!(
            out.status.success(),
            "{python}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines().peekable();
        let version: u32 = lines
            .next()
            .unwrap()
            .strip_prefix("V ")
            .unwrap()
            .parse()
            .unwrap();
        let (mut codes, mut offsets, mut no_line) = (0, 0, 0);
        while let Some(head) = lines.next() {
            let f: Vec<&str> = head.split(' ').collect();
            assert_eq!(f[0], "C", "{head}");
            let first: i32 = f[1].parse().unwrap();
            let table = hex(f[2]);
            let ncode: i32 = f[3].parse().unwrap();
            let mut ranges = vec![];
            while let Some(r) = lines.next_if(|l| l.starts_with("R ")) {
                let r: Vec<i64> = r[2..].split(' ').map(|x| x.parse().unwrap()).collect();
                ranges.push(r);
            }
            // The line of the nearest code unit at or before each offset that has one.
            let mut before = u32::try_from(first).ok();
            for q in (0..ncode).step_by(2) {
                let want = ranges
                    .iter()
                    .find(|r| r[0] <= q as i64 && (q as i64) < r[1])
                    .and_then(|r| u32::try_from(r[2]).ok());
                let got = decode_line(version, &table, first, q);
                assert_eq!(got, want, "{python}: offset {q} of code at line {first}");
                before = want.or(before);
                let charged = charged_line(version, &table, first, q);
                assert_eq!(charged, before, "{python}: charged offset {q} of {first}");
                if want.is_none() {
                    no_line += 1;
                }
                offsets += 1;
            }
            assert_eq!(
                decode_line(version, &table, first, -1),
                u32::try_from(first).ok()
            );
            codes += 1;
        }
        assert!(
            version < 0x030a_0000 || no_line > 0,
            "{python}: no line-less instruction was checked"
        );
        (codes, offsets)
    }

    fn hex(s: &str) -> Vec<u8> {
        if s == "-" {
            return vec![];
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn matches_pyenv_python3() {
        let (codes, offsets) = check_against("python3");
        assert!(
            codes > 500 && offsets > 20_000,
            "{codes} codes, {offsets} offsets"
        );
    }

    #[test]
    fn matches_system_python311() {
        let (codes, offsets) = check_against("/usr/bin/python3.11");
        assert!(
            codes > 500 && offsets > 20_000,
            "{codes} codes, {offsets} offsets"
        );
    }
}
