//! LEB128 varints (unsigned) and zigzag (signed), the integer encoding of every record field.

pub fn put_u64(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn put_i64(buf: &mut Vec<u8>, v: i64) {
    put_u64(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_u64(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A cursor over one record's body; every read is bounds-checked.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Short;

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn u8(&mut self) -> Result<u8, Short> {
        let b = *self.buf.get(self.pos).ok_or(Short)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u64(&mut self) -> Result<u64, Short> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Short)
    }

    pub fn u32(&mut self) -> Result<u32, Short> {
        u32::try_from(self.u64()?).map_err(|_| Short)
    }

    pub fn i64(&mut self) -> Result<i64, Short> {
        let v = self.u64()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], Short> {
        let n = usize::try_from(self.u64()?).map_err(|_| Short)?;
        let end = self.pos.checked_add(n).ok_or(Short)?;
        let s = self.buf.get(self.pos..end).ok_or(Short)?;
        self.pos = end;
        Ok(s)
    }

    pub fn string(&mut self) -> Result<String, Short> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_edge_values() {
        let vals = [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX];
        let ivals = [0i64, -1, 1, i64::MIN, i64::MAX, -300];
        let mut buf = Vec::new();
        vals.iter().for_each(|&v| put_u64(&mut buf, v));
        ivals.iter().for_each(|&v| put_i64(&mut buf, v));
        let mut c = Cursor::new(&buf);
        for &v in &vals {
            assert_eq!(c.u64(), Ok(v));
        }
        for &v in &ivals {
            assert_eq!(c.i64(), Ok(v));
        }
        assert!(c.is_empty());
        assert_eq!(c.u8(), Err(Short));
    }

    #[test]
    fn truncated_varint_is_short() {
        assert_eq!(Cursor::new(&[0x80, 0x80]).u64(), Err(Short));
    }
}
