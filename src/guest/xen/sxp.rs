//! xend s-expressions: the managed `config.sxp` and `xm list -l` output.
//!
//! Lexer as `xen/xend/sxp.py`: `(` `)` lists, whitespace separates, `#` comments to end of line,
//! `'…'`/`"…"` strings with C escapes (`\xHH`, octal `\ooo`), atoms are runs of printable
//! characters other than whitespace, `#` and `{}()<>[];`. Everything is a string.
//!
//! Mapping prefers the Xen-API keys a managed config carries (`name_label`, `memory_*` in
//! bytes, `VCPUs_*`, `PV_*`, `HVM_boot_policy`, `platform`) over the legacy mirrors (`name`,
//! `memory`/`maxmem` in MiB, `vcpus`, `image`).

use crate::guest::error::{GuestError, Result};
use crate::guest::model::{boot_order, Boot, Firmware, Guest, Memory, Severity, SourceKind, Vcpus, MIB};
use crate::guest::xen::{self, parse_c_int};

/// Deepest list nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// An s-expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sexp {
    /// An atom or string.
    Atom(String),
    /// A list.
    List(Vec<Sexp>),
}

impl Sexp {
    /// The head atom of a list (`(name …)` → `name`).
    pub fn head(&self) -> Option<&str> {
        match self {
            Sexp::List(l) => match l.first() {
                Some(Sexp::Atom(a)) => Some(a),
                _ => None,
            },
            Sexp::Atom(_) => None,
        }
    }

    /// Items after the head.
    pub fn rest(&self) -> &[Sexp] {
        match self {
            Sexp::List(l) if !l.is_empty() => &l[1..],
            _ => &[],
        }
    }

    /// The first child list `(key …)`.
    pub fn child(&self, key: &str) -> Option<&Sexp> {
        self.rest().iter().find(|c| c.head() == Some(key))
    }

    /// Every child list `(key …)`.
    pub fn children<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Sexp> + 'a {
        self.rest().iter().filter(move |c| c.head() == Some(key))
    }

    /// The value of `(key value)`: `Some("")` for `(key)`.
    pub fn value(&self, key: &str) -> Option<&str> {
        let c = self.child(key)?;
        match c.rest().first() {
            Some(Sexp::Atom(a)) => Some(a),
            None => Some(""),
            Some(Sexp::List(_)) => None,
        }
    }
}

/// Parses every top-level expression in `text`.
pub fn parse_sexps(text: &str) -> Result<Vec<Sexp>> {
    let b = text.as_bytes();
    let mut i = 0usize;
    let mut line = 1usize;
    let mut stack: Vec<(Vec<Sexp>, usize)> = Vec::new();
    let mut top = Vec::new();
    let push = |stack: &mut Vec<(Vec<Sexp>, usize)>, top: &mut Vec<Sexp>, s: Sexp| match stack.last_mut() {
        Some((l, _)) => l.push(s),
        None => top.push(s),
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(GuestError::syntax(line, "lists nested too deeply"));
                }
                stack.push((Vec::new(), line));
                i += 1;
            }
            b')' => {
                let Some((l, _)) = stack.pop() else {
                    return Err(GuestError::syntax(line, "unbalanced ')'"));
                };
                push(&mut stack, &mut top, Sexp::List(l));
                i += 1;
            }
            b'\'' | b'"' => {
                let start_line = line;
                let q = c;
                i += 1;
                let mut out: Vec<u8> = Vec::new();
                loop {
                    let Some(&ch) = b.get(i) else {
                        return Err(GuestError::syntax(
                            start_line,
                            "unterminated string (runs to the end of the file)",
                        ));
                    };
                    i += 1;
                    if ch == q {
                        break;
                    }
                    if ch == b'\n' {
                        line += 1;
                    }
                    if ch != b'\\' {
                        out.push(ch);
                        continue;
                    }
                    let Some(&e) = b.get(i) else { continue };
                    i += 1;
                    match e {
                        b'a' => out.push(7),
                        b'b' => out.push(8),
                        b't' => out.push(b'\t'),
                        b'n' => out.push(b'\n'),
                        b'v' => out.push(11),
                        b'f' => out.push(12),
                        b'r' => out.push(b'\r'),
                        b'x' => {
                            let h = text.get(i..i + 2).filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()));
                            match h {
                                Some(h) => {
                                    out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                                    i += 2;
                                }
                                None => out.extend_from_slice(b"\\x"),
                            }
                        }
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            let mut k = 1;
                            while k < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                                v = v * 8 + u32::from(b[i] - b'0');
                                i += 1;
                                k += 1;
                            }
                            out.push((v & 0xff) as u8);
                        }
                        other => out.push(other),
                    }
                }
                push(&mut stack, &mut top, Sexp::Atom(String::from_utf8_lossy(&out).into_owned()));
            }
            _ => {
                let s = i;
                while i < b.len()
                    && !matches!(
                        b[i],
                        b' ' | b'\t'
                            | b'\n'
                            | b'\r'
                            | b'\x0b'
                            | b'\x0c'
                            | b'#'
                            | b'('
                            | b')'
                            | b'{'
                            | b'}'
                            | b'<'
                            | b'>'
                            | b'['
                            | b']'
                            | b';'
                            | b'\''
                            | b'"'
                    )
                {
                    i += 1;
                }
                if i == s {
                    return Err(GuestError::syntax(
                        line,
                        format!("unexpected {:?} (not allowed in an s-expression atom)", c as char),
                    ));
                }
                push(&mut stack, &mut top, Sexp::Atom(String::from_utf8_lossy(&b[s..i]).into_owned()));
            }
        }
    }
    if let Some((_, l)) = stack.last() {
        return Err(GuestError::syntax(*l, "unclosed '(' at end of file"));
    }
    Ok(top)
}

fn num(key: &str, v: &str) -> Result<i64> {
    parse_c_int(v.trim())
        .or_else(|| v.trim().parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
        .ok_or_else(|| GuestError::invalid(format!("({key} {v}): expected a number")))
}

fn bytes(key: &str, v: &str) -> Result<u64> {
    let n = num(key, v)?;
    u64::try_from(n)
        .ok()
        .filter(|&b| b <= 1 << 52)
        .ok_or_else(|| GuestError::invalid(format!("({key} {v}): impossible memory size")))
}

fn flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// `key` in an SXP dict written either as `(name (key v) …)` or `(name ((key v) …))`.
fn dict_get(p: &Sexp, key: &str) -> Option<String> {
    if let Some(v) = p.value(key) {
        return Some(v.to_string());
    }
    for item in p.rest() {
        if let Sexp::List(pairs) = item {
            for pair in pairs {
                if pair.head() == Some(key) {
                    if let Some(Sexp::Atom(a)) = pair.rest().first() {
                        return Some(a.clone());
                    }
                }
            }
        }
    }
    None
}

/// Parses an SXP domain description.
pub fn parse(text: &str) -> Result<Guest> {
    let all = parse_sexps(text)?;
    let dom = all
        .iter()
        .find(|s| s.head() == Some("domain"))
        .ok_or_else(|| GuestError::invalid("no (domain …) expression found"))?;
    let mut g = Guest::new(SourceKind::Sxp);
    g.name = dom.value("name_label").filter(|s| !s.is_empty()).or(dom.value("name")).unwrap_or_default().to_string();
    g.description = dom.value("name_description").unwrap_or_default().to_string();
    g.uuid = dom.value("uuid").filter(|s| !s.is_empty()).map(String::from);

    // Memory: Xen-API keys (bytes) first.
    if let Some(smax) = dom.value("memory_static_max").filter(|s| !s.is_empty()) {
        let smax = bytes("memory_static_max", smax)?;
        let get = |k: &str, d: u64| -> Result<u64> {
            match dom.value(k).filter(|s| !s.is_empty()) {
                Some(v) => bytes(k, v),
                None => Ok(d),
            }
        };
        let dmax = get("memory_dynamic_max", smax)?;
        let dmin = get("memory_dynamic_min", dmax)?;
        let smin = get("memory_static_min", dmin)?;
        g.memory = Memory::from_parts(smin, dmin, dmax, smax);
    } else {
        let mem = dom.value("memory").map(|v| num("memory", v)).transpose()?.unwrap_or(128);
        let target = xen::mib("memory", mem)?;
        let max = match dom.value("maxmem") {
            Some(v) => Some(xen::mib("maxmem", num("maxmem", v)?)?),
            None => None,
        };
        g.memory = Memory::new(target, max);
    }
    if g.memory.static_max < 16 * MIB {
        g.note(Severity::Warning, "memory below 16 MiB; check the memory values");
    }

    // vCPUs.
    let vc = |k: &str| -> Result<Option<u32>> {
        match dom.value(k).filter(|s| !s.is_empty()) {
            Some(v) => u32::try_from(num(k, v)?)
                .ok()
                .filter(|n| (1..=4096).contains(n))
                .map(Some)
                .ok_or_else(|| GuestError::invalid(format!("({k} {v}): must be 1 to 4096"))),
            None => Ok(None),
        }
    };
    let max = vc("VCPUs_max")?.or(vc("vcpus")?).unwrap_or(1);
    let mut start = vc("VCPUs_at_startup")?.unwrap_or(max);
    if dom.value("VCPUs_at_startup").is_none() {
        if let Some(mask) = dom.value("vcpu_avail").and_then(|v| parse_c_int(v.trim())) {
            start = (mask as u64).count_ones().clamp(1, max);
        }
    }
    g.vcpus = Vcpus::new(max, start);

    // Image (legacy) and boot.
    let image = dom.child("image");
    let hvm_image = image.and_then(|i| i.child("hvm"));
    let linux_image = image.and_then(|i| i.child("linux"));
    let policy = dom.value("HVM_boot_policy").unwrap_or_default();
    let is_hvm = !policy.is_empty() || hvm_image.is_some();
    let platform = dom.child("platform");
    let pget = |k: &str| -> Option<String> {
        // (platform (acpi 1) …) or (platform ((acpi 1) …)); else the legacy (image (hvm …)).
        platform.and_then(|p| dict_get(p, k)).or_else(|| hvm_image.and_then(|h| h.value(k)).map(String::from))
    };
    if is_hvm {
        let order = dom
            .child("HVM_boot_params")
            .and_then(|p| dict_get(p, "order"))
            .or_else(|| pget("boot"))
            .unwrap_or_else(|| "cd".into());
        let loader = hvm_image.and_then(|h| h.value("loader")).unwrap_or_default();
        g.boot = Boot::Hvm {
            firmware: if loader.to_ascii_lowercase().contains("ovmf") { Firmware::Uefi } else { Firmware::Bios },
            secure_boot: false,
            order: boot_order(&order),
        };
    } else {
        let bootloader =
            dom.value("PV_bootloader").filter(|s| !s.is_empty()).or(dom.value("bootloader")).filter(|s| !s.is_empty());
        let kernel = dom
            .value("PV_kernel")
            .filter(|s| !s.is_empty())
            .or_else(|| linux_image.and_then(|l| l.value("kernel")))
            .filter(|s| !s.is_empty());
        let ramdisk = dom
            .value("PV_ramdisk")
            .filter(|s| !s.is_empty())
            .or_else(|| linux_image.and_then(|l| l.value("ramdisk")))
            .filter(|s| !s.is_empty());
        let args = dom
            .value("PV_args")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .or_else(|| {
                let l = linux_image?;
                let mut parts = Vec::new();
                if let Some(r) = l.value("root").filter(|r| !r.is_empty()) {
                    parts.push(format!("root={}", r.strip_prefix("root=").unwrap_or(r)));
                }
                if let Some(a) = l.value("args").filter(|a| !a.is_empty()) {
                    parts.push(a.to_string());
                }
                Some(parts.join(" "))
            })
            .unwrap_or_default();
        let bl_args = dom
            .value("PV_bootloader_args")
            .filter(|s| !s.is_empty())
            .or(dom.value("bootloader_args"))
            .unwrap_or_default()
            .to_string();
        g.boot = match (bootloader, kernel) {
            (Some(bl), _) => Boot::PvBootloader { bootloader: bl.to_string(), bootloader_args: bl_args, args },
            (None, Some(k)) => Boot::PvKernel { kernel: k.to_string(), ramdisk: ramdisk.map(String::from), args },
            (None, None) => {
                return Err(GuestError::invalid(
                    "PV domain with neither a bootloader nor a kernel (no PV_bootloader, \
                     bootloader, PV_kernel or (image (linux (kernel …))))",
                ))
            }
        };
    }
    g.platform.acpi = pget("acpi").and_then(|v| flag(&v));
    g.platform.apic = pget("apic").and_then(|v| flag(&v));
    g.platform.pae = pget("pae").and_then(|v| flag(&v));
    g.platform.nx = pget("nx").and_then(|v| flag(&v));
    g.platform.viridian = pget("viridian").and_then(|v| flag(&v));
    g.platform.localtime = pget("localtime").and_then(|v| flag(&v));
    g.platform.timeoffset = pget("rtc_timeoffset").or_else(|| pget("timeoffset")).and_then(|v| parse_c_int(v.trim()));

    // Devices.
    let mut passthrough = Vec::new();
    for dev in dom.children("device") {
        let Some(inner) = dev.rest().first() else { continue };
        let kind = inner.head().unwrap_or_default();
        match kind {
            "vbd" | "tap" | "tap2" => {
                let uname = inner.value("uname").unwrap_or_default();
                let devname = inner.value("dev").unwrap_or_default();
                let mode = inner.value("mode").unwrap_or("w");
                if [uname, devname, mode].iter().any(|s| s.contains(',')) {
                    return Err(GuestError::invalid(format!(
                        "(device ({kind} …)): a ',' in uname, dev or mode is not supported"
                    )));
                }
                let e = xen::parse_xm_disk(&format!("{uname},{devname},{mode}"))?;
                let bootable = inner.value("bootable").and_then(flag).unwrap_or(false);
                let before = g.disks.len();
                xen::add_disk(&mut g, e);
                if bootable && g.disks.len() > before {
                    if let Some(d) = g.disks.last_mut() {
                        d.bootable = true;
                    }
                }
            }
            "vif" => {
                let mut spec = Vec::new();
                for k in ["mac", "bridge", "model", "type"] {
                    if let Some(v) = inner.value(k).filter(|v| !v.is_empty()) {
                        spec.push(format!("{k}={v}"));
                    }
                }
                g.nics.push(xen::parse_vif(&spec.join(","))?);
            }
            "pci" | "vscsi" | "vusb" | "ioports" | "irq" | "vtpm" => passthrough.push(kind.to_string()),
            _ => {}
        }
    }
    // Multiple disks marked bootable: keep the first.
    let mut seen = false;
    for d in &mut g.disks {
        if d.bootable {
            if seen {
                d.bootable = false;
            }
            seen = true;
        }
    }
    if !passthrough.is_empty() {
        g.note(Severity::Warning, format!("pass-through devices cannot be carried over: {}", passthrough.join(", ")));
    }
    g.finish();
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexer() {
        let s = parse_sexps("(a (b 'x y\\n') (c) \"q\\x41\\101\" d-e.f:1) # c\n(z)").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].value("b"), Some("x y\n"));
        assert_eq!(s[0].value("c"), Some(""));
        assert_eq!(s[0].rest()[2], Sexp::Atom("qAA".into()));
        assert!(parse_sexps("(a (b)").is_err());
        assert!(parse_sexps("(a))").is_err());
        assert!(parse_sexps("(a 'x)").is_err());
        assert!(parse_sexps(&"(".repeat(1000)).is_err());
    }
}
