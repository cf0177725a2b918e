//! LVM2 physical volumes: the label, the first metadata area's text, and the logical volumes
//! that lie in one contiguous run of this PV (linear LVs: the usual root and swap).
//! Own code (`dependencies.md` §9 left LVM open; `lvm2` 0.0.3 failed on real metadata).
//!
//! Layout (LVM2 `lib/format_text/layout.h`): a sector among the first four starts with
//! `LABELONE`; at `offset_xl` (+20) from it the PV header: 32-byte PV UUID, device size, then
//! (offset, size) u64 pairs — data areas, a zero pair, metadata areas, a zero pair. A metadata
//! area starts with `mda_header`: checksum, magic ` LVM2 x[5A%r0N*>` (+4), version, start, size
//! (+28), then raw locations (offset +40, size +48, checksum, flags) pointing at the current
//! metadata text, relative to the area, wrapping past its end to just after the 512-byte header.

use std::collections::BTreeMap;

use super::{Disk, Error, ErrorKind, Result};

/// Largest metadata text read.
const MAX_TEXT: u64 = 1 << 20;
/// Deepest nesting accepted in the text.
const MAX_DEPTH: usize = 16;
const MDA_MAGIC: &[u8; 16] = b" LVM2 x[5A%r0N*>";

/// A logical volume found on this PV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lv {
    /// `vg/lv`.
    pub name: String,
    /// Byte offset in the PV.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

fn corrupt(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupt, what)
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// The LVs of the PV in `pv`, or `None` when it carries no LVM2 label. LVs that are not one
/// contiguous run on this PV are listed in `skipped`.
pub fn read_pv(pv: &Disk, skipped: &mut Vec<String>) -> Result<Option<Vec<Lv>>> {
    let head = pv.read_vec(0, 4096)?;
    let Some(label) = (0..4).map(|i| i * 512).find(|&o| head.len() >= o + 512 && &head[o..o + 8] == b"LABELONE") else {
        return Ok(None);
    };
    let hdr = label + u32::from_le_bytes(head[label + 20..label + 24].try_into().unwrap_or([0; 4])) as usize;
    if hdr + 48 > head.len() {
        return Err(corrupt("LVM2 PV header lies outside the label area"));
    }
    let uuid = String::from_utf8_lossy(&head[hdr..hdr + 32]).into_owned();
    // Areas: data areas, a zero pair, metadata areas, a zero pair.
    let mut at = hdr + 40;
    let mut zeros = 0;
    let mut mda = None;
    while at + 16 <= head.len() && zeros < 2 {
        let (off, size) = (le64(&head, at), le64(&head, at + 8));
        at += 16;
        if off == 0 && size == 0 {
            zeros += 1;
        } else if zeros == 1 && mda.is_none() {
            mda = Some((off, size));
        }
    }
    let Some((mda_off, mda_size)) = mda else { return Err(corrupt("LVM2 PV without a metadata area")) };
    let mh = pv.read_vec(mda_off, 512)?;
    if mh.len() < 64 || &mh[4..20] != MDA_MAGIC {
        return Err(corrupt(format!("LVM2 metadata area at byte {mda_off} has no mda_header magic")));
    }
    let (text_off, text_len) = (le64(&mh, 40), le64(&mh, 48));
    if text_len == 0 || text_len > MAX_TEXT || text_off >= mda_size || text_off < 512 {
        return Err(corrupt(format!("LVM2 metadata text at {text_off}+{text_len} in a {mda_size}-byte area")));
    }
    let first = text_len.min(mda_size - text_off);
    let mut text = pv.read_vec(mda_off + text_off, first as usize)?;
    if first < text_len {
        text.extend(pv.read_vec(mda_off + 512, (text_len - first) as usize)?);
    }
    let text = String::from_utf8_lossy(&text);
    let tree = parse(&text)?;
    Ok(Some(linear_lvs(&tree, &uuid, skipped)))
}

/// A value of the metadata text.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number.
    Int(i64),
    /// A string.
    Str(String),
    /// `[ … ]`.
    List(Vec<Value>),
    /// `name { … }`.
    Section(BTreeMap<String, Value>),
}

impl Value {
    fn get(&self, k: &str) -> Option<&Value> {
        match self {
            Value::Section(m) => m.get(k),
            _ => None,
        }
    }

    fn int(&self, k: &str) -> Option<u64> {
        match self.get(k)? {
            Value::Int(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    fn str(&self, k: &str) -> Option<&str> {
        match self.get(k)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn sections(&self) -> impl Iterator<Item = (&String, &Value)> {
        let m = match self {
            Value::Section(m) => Some(m),
            _ => None,
        };
        m.into_iter().flat_map(|m| m.iter()).filter(|(_, v)| matches!(v, Value::Section(_)))
    }
}

/// Parses LVM2 metadata text (`key = value`, `name { … }`, `[ … ]`, `#` comments).
pub fn parse(text: &str) -> Result<Value> {
    let toks = tokens(text)?;
    let mut pos = 0;
    let v = section(&toks, &mut pos, 0)?;
    Ok(v)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

fn tokens(text: &str) -> Result<Vec<Tok>> {
    let mut out = Vec::new();
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '#' => while it.next_if(|&c| c != '\n').is_some() {},
            '"' => {
                let mut s = String::new();
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => s.extend(it.next()),
                        Some(c) => s.push(c),
                        None => return Err(corrupt("LVM2 metadata: unterminated string")),
                    }
                }
                out.push(Tok::Str(s));
            }
            '=' | '{' | '}' | '[' | ']' | ',' => out.push(Tok::Punct(c)),
            c if c.is_whitespace() || c == '\0' => {}
            c => {
                let mut w = c.to_string();
                while let Some(c) = it.next_if(|c| !c.is_whitespace() && !"=[]{},\"#".contains(*c)) {
                    w.push(c);
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

fn section(t: &[Tok], pos: &mut usize, depth: usize) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(corrupt("LVM2 metadata nested too deeply"));
    }
    let mut m = BTreeMap::new();
    while let Some(tok) = t.get(*pos) {
        *pos += 1;
        let key = match tok {
            Tok::Punct('}') if depth > 0 => return Ok(Value::Section(m)),
            Tok::Word(w) => w.clone(),
            other => return Err(corrupt(format!("LVM2 metadata: unexpected {other:?}"))),
        };
        match t.get(*pos) {
            Some(Tok::Punct('{')) => {
                *pos += 1;
                m.insert(key, section(t, pos, depth + 1)?);
            }
            Some(Tok::Punct('=')) => {
                *pos += 1;
                m.insert(key, value(t, pos)?);
            }
            other => return Err(corrupt(format!("LVM2 metadata: {key} followed by {other:?}"))),
        }
    }
    if depth > 0 {
        return Err(corrupt("LVM2 metadata: unclosed section"));
    }
    Ok(Value::Section(m))
}

fn value(t: &[Tok], pos: &mut usize) -> Result<Value> {
    let tok = t.get(*pos).ok_or_else(|| corrupt("LVM2 metadata: value missing at the end"))?;
    *pos += 1;
    match tok {
        Tok::Str(s) => Ok(Value::Str(s.clone())),
        Tok::Word(w) => w.parse().map(Value::Int).map_err(|_| corrupt(format!("LVM2 metadata: bad number {w:?}"))),
        Tok::Punct('[') => {
            let mut items = Vec::new();
            loop {
                match t.get(*pos) {
                    Some(Tok::Punct(']')) => {
                        *pos += 1;
                        return Ok(Value::List(items));
                    }
                    Some(Tok::Punct(',')) => *pos += 1,
                    Some(_) => items.push(value(t, pos)?),
                    None => return Err(corrupt("LVM2 metadata: unclosed list")),
                }
            }
        }
        other => Err(corrupt(format!("LVM2 metadata: unexpected {other:?} as a value"))),
    }
}

/// LVs whose segments lie, in order and back to back, on the PV whose id is `uuid`.
fn linear_lvs(tree: &Value, uuid: &str, skipped: &mut Vec<String>) -> Vec<Lv> {
    let mut out = Vec::new();
    let bare = |s: &str| s.replace('-', "");
    for (vg_name, vg) in tree.sections() {
        let Some(extent) = vg.int("extent_size").and_then(|e| e.checked_mul(512)) else { continue };
        let Some((pv_name, pv)) = vg
            .get("physical_volumes")
            .into_iter()
            .flat_map(Value::sections)
            .find(|(_, pv)| pv.str("id").is_some_and(|id| bare(id) == uuid))
        else {
            continue;
        };
        let pe_start = pv.int("pe_start").unwrap_or(0).saturating_mul(512);
        for (lv_name, lv) in vg.get("logical_volumes").into_iter().flat_map(Value::sections) {
            let name = format!("{vg_name}/{lv_name}");
            match lv_run(lv, pv_name, pe_start, extent) {
                Some((start, len)) => out.push(Lv { name, start, len }),
                None => skipped.push(format!("LV {name}: not one contiguous linear run on this PV")),
            }
        }
    }
    out
}

/// (byte start, byte length) of an LV made of linear segments, back to back on `pv_name`.
fn lv_run(lv: &Value, pv_name: &str, pe_start: u64, extent: u64) -> Option<(u64, u64)> {
    let count = lv.int("segment_count")?;
    let mut run: Option<(u64, u64)> = None;
    for i in 1..=count.min(64) {
        let seg = lv.get(&format!("segment{i}"))?;
        if seg.str("type")? != "striped" || seg.int("stripe_count")? != 1 {
            return None;
        }
        let Value::List(stripes) = seg.get("stripes")? else { return None };
        let (Some(Value::Str(pv)), Some(Value::Int(first))) = (stripes.first(), stripes.get(1)) else { return None };
        if pv != pv_name {
            return None;
        }
        let start = u64::try_from(*first).ok()?.checked_mul(extent)?.checked_add(pe_start)?;
        let len = seg.int("extent_count")?.checked_mul(extent)?;
        run = match run {
            None => Some((start, len)),
            Some((s, l)) if s.checked_add(l)? == start => Some((s, l.checked_add(len)?)),
            Some(_) => return None,
        };
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const META: &str = r#"vg0 {
id = "abc"
seqno = 2
extent_size = 8 # 4 KiB
physical_volumes {
pv0 { id = "Aaaaaa-bbbb-cccc-dddd-eeee-ffff-gggggg" device = "/dev/sda2" pe_start = 16 pe_count = 100 }
}
logical_volumes {
root { id = "x" status = ["READ", "WRITE", "VISIBLE"] segment_count = 2
segment1 { start_extent = 0 extent_count = 10 type = "striped" stripe_count = 1 stripes = [ "pv0", 5 ] }
segment2 { start_extent = 10 extent_count = 2 type = "striped" stripe_count = 1 stripes = [ "pv0", 15 ] }
}
split { segment_count = 2
segment1 { extent_count = 1 type = "striped" stripe_count = 1 stripes = [ "pv0", 40 ] }
segment2 { extent_count = 1 type = "striped" stripe_count = 1 stripes = [ "pv0", 60 ] }
}
thin { segment_count = 1 segment1 { extent_count = 1 type = "thin" } }
}
}
contents = "Text Format Volume Group"
version = 1
"#;

    #[test]
    fn parses_and_maps_linear_lvs() {
        let tree = parse(META).unwrap();
        let mut skipped = Vec::new();
        let lvs = linear_lvs(&tree, "Aaaaaabbbbccccddddeeeeffffgggggg", &mut skipped);
        assert_eq!(lvs, vec![Lv { name: "vg0/root".into(), start: 16 * 512 + 5 * 4096, len: 12 * 4096 }]);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(linear_lvs(&tree, "other", &mut skipped).is_empty());
    }

    #[test]
    fn bad_text_is_an_error() {
        for t in ["a {", "a = [1, 2", "a = \"x", "a b", "}", "x = y"] {
            assert!(parse(t).is_err(), "{t}");
        }
        let deep = "a {".repeat(40) + &"}".repeat(40);
        assert!(parse(&deep).is_err());
    }
}
