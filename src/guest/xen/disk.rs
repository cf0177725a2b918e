//! Xen disk specs: xm's `uname,dev,mode` (`phy:`, `file:`, `tap:`/`tap2:`, block-script
//! prefixes), xl's positional/key=value grammar (`xl-disk-configuration(5)`), and the step from
//! a parsed [`DiskEntry`] to a [`Disk`] or [`Cdrom`] of the guest.

use crate::guest::error::{GuestError, Result};
use crate::guest::model::{format_hint, partition_of, Cdrom, Controller, Disk, DiskSource, Guest, ScsiModel, Severity};

/// A disk entry after parsing a spec, before it becomes a [`Disk`] or [`Cdrom`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DiskEntry {
    /// Path/device, `""` for an empty drive.
    pub target: String,
    /// Format hint.
    pub format: Option<String>,
    /// Virtual device (`xvda`, `hdc`, `sda1`).
    pub vdev: String,
    /// CD-ROM.
    pub cdrom: bool,
    /// Read-only.
    pub read_only: bool,
    /// Block script (`block-iscsi`, or the xm prefix `iscsi`).
    pub script: Option<String>,
    /// `w!`: shared writable.
    pub shared_write: bool,
    /// Backend domain, when not dom0.
    pub backend: Option<String>,
}

/// Parses an xm disk spec `uname,dev,mode[,backend[,protocol]]` (`create.py: preprocess_disk`,
/// `blkif.py: parse_uname`).
pub fn parse_xm_disk(spec: &str) -> Result<DiskEntry> {
    let fields: Vec<&str> = spec.split(',').collect();
    if !(3..=5).contains(&fields.len()) {
        return Err(GuestError::invalid(format!(
            "disk {spec:?}: expected 'uname,dev,mode[,backend[,protocol]]' (3 to 5 fields), \
             found {}",
            fields.len()
        )));
    }
    let uname = fields[0].trim();
    let mut dev = fields[1].trim();
    let mode = fields[2].trim();
    let mut e = DiskEntry::default();
    if let Some(b) = fields.get(3).map(|s| s.trim()).filter(|s| !s.is_empty() && *s != "0") {
        e.backend = Some(b.to_string());
    }
    // dev: [ioemu:]name[:cdrom|:disk]
    if let Some(r) = dev.strip_prefix("ioemu:") {
        dev = r;
    }
    if let Some(r) = dev.strip_suffix(":cdrom") {
        dev = r;
        e.cdrom = true;
    } else if let Some(r) = dev.strip_suffix(":disk") {
        dev = r;
    }
    if dev.is_empty() {
        return Err(GuestError::invalid(format!("disk {spec:?}: no device name")));
    }
    e.vdev = dev.to_string();
    match mode {
        "r" | "ro" => e.read_only = true,
        "w" | "rw" => {}
        "w!" => e.shared_write = true,
        other => {
            return Err(GuestError::invalid(format!("disk {spec:?}: unknown mode {other:?} (expected r, w or w!)")))
        }
    }
    if e.cdrom {
        e.read_only = true;
    }
    if uname.is_empty() {
        if !e.cdrom {
            return Err(GuestError::invalid(format!(
                "disk {spec:?}: an empty uname is only allowed for a CD drive (dev:cdrom)"
            )));
        }
        return Ok(e);
    }
    let Some((typ, rest)) = uname.split_once(':') else {
        // No prefix: xend treated it as a file path.
        e.target = uname.to_string();
        return Ok(e);
    };
    match typ {
        "phy" => {
            e.target = if rest.starts_with('/') { rest.to_string() } else { format!("/dev/{rest}") };
            e.format = Some("raw".into());
        }
        "file" => {
            e.target = rest.to_string();
            e.format = Some("raw".into());
        }
        "tap" | "tap2" => {
            // tap:TYPE:PATH, tap:tapdisk:TYPE:PATH, tap:ioemu:TYPE:PATH, tap2:tapdisk:vhd:PATH
            let mut r = rest;
            if let Some(x) = r.strip_prefix("tapdisk:").or_else(|| r.strip_prefix("ioemu:")) {
                r = x;
            }
            let Some((sub, path)) = r.split_once(':') else {
                return Err(GuestError::invalid(format!(
                    "disk {spec:?}: {typ}: needs a type and a path ({typ}:aio:/path)"
                )));
            };
            match sub {
                "aio" | "sync" | "qcow" | "qcow2" | "vmdk" | "vhd" => {
                    e.format = format_hint(sub);
                }
                "ram" => {
                    return Err(GuestError::unsupported(format!(
                        "disk {spec:?}: tap:ram is a RAM disk with no image to convert"
                    )))
                }
                other => {
                    return Err(GuestError::invalid(format!(
                        "disk {spec:?}: unknown {typ}: disk type {other:?} (known: aio, sync, \
                         qcow, qcow2, vmdk, vhd)"
                    )))
                }
            }
            e.target = path.to_string();
        }
        "iscsi" | "drbd" | "nbd" | "enbd" => {
            e.script = Some(typ.to_string());
            e.target = rest.to_string();
        }
        other => {
            return Err(GuestError::invalid(format!(
                "disk {spec:?}: unknown disk prefix {other:?}: (known: phy:, file:, tap:, tap2:, \
                 iscsi:, drbd:, nbd:)"
            )))
        }
    }
    if e.target.is_empty() {
        return Err(GuestError::invalid(format!("disk {spec:?}: empty path")));
    }
    Ok(e)
}

/// Parses an xl disk spec (`xl-disk-configuration(5)`, lexer `libxlu_disk_l.l`).
pub fn parse_xl_disk(spec: &str) -> Result<DiskEntry> {
    let err = |what: &str, tok: &str| GuestError::invalid(format!("disk {spec:?}: {what} at {tok:?}"));
    let mut e = DiskEntry::default();
    let mut target: Option<String> = None;
    let mut format_set = false;
    let mut had_depr_prefix = false;
    let mut vdev: Option<String> = None;
    let mut access_set = false;
    let mut cdrom = false;
    let mut access_ro: Option<bool> = None;
    let mut empty_format = false;
    let set_access = |v: &str| -> Result<bool> {
        match v {
            "r" | "ro" => Ok(true),
            "rw" | "w" | "" => Ok(false),
            other => {
                Err(GuestError::invalid(format!("disk {spec:?}: unknown value for access {other:?} (r, ro, w, rw)")))
            }
        }
    };
    let set_format = |v: &str, e: &mut DiskEntry, empty: &mut bool| -> Result<()> {
        match v {
            "" | "raw" => e.format = Some("raw".into()),
            "qcow" | "qcow2" | "vhd" | "qed" => e.format = Some(v.into()),
            "empty" => {
                *empty = true;
                e.format = None;
            }
            other => return Err(GuestError::invalid(format!("disk {spec:?}: unknown value for format {other:?}"))),
        }
        Ok(())
    };
    let mut rest = spec;
    while !rest.is_empty() {
        // Whitespace before a parameter is ignored (only when something follows it).
        let trimmed = rest.trim_start_matches([' ', '\t', '\n']);
        if trimmed.is_empty() {
            // trailing whitespace: flex's `.` rule → positional? It matches [^=,]+ as a
            // positional parameter of blanks; treat as nothing.
            break;
        }
        rest = trimmed;
        if let Some(t) = rest.strip_prefix("target=") {
            target = Some(t.strip_suffix(',').unwrap_or(t).to_string());
            break;
        }
        let (tok, after) = match rest.find(',') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        // Keyed parameters and flags (whole tokens).
        if let Some((k, v)) = tok.split_once('=') {
            match k {
                "format" => {
                    set_format(v, &mut e, &mut empty_format)?;
                    format_set = true;
                }
                "devtype" => match v {
                    "cdrom" => cdrom = true,
                    "disk" => cdrom = false,
                    _ => return Err(err("unknown value for type", tok)),
                },
                "access" => access_ro = Some(set_access(v)?),
                "backend" => e.backend = Some(v.to_string()),
                "backendtype" => {
                    if !matches!(v, "phy" | "tap" | "qdisk" | "standalone") {
                        return Err(err("unknown value for backendtype", tok));
                    }
                }
                "specification" => {
                    if !matches!(v, "xen" | "virtio") {
                        return Err(err("unknown value for specification", tok));
                    }
                }
                "vdev" => vdev = Some(v.to_string()),
                "script" => e.script = Some(v.to_string()),
                "colo-host" | "colo-port" | "colo-export" | "active-disk" | "hidden-disk" => {}
                "grant_usage" if v == "0" || v == "1" => {}
                _ => {
                    let is_ident = k.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                        && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    return Err(err(if is_ident { "unknown parameter" } else { "bad disk syntax" }, tok));
                }
            }
            rest = after;
            continue;
        }
        match tok {
            "cdrom" => {
                cdrom = true;
                rest = after;
                continue;
            }
            "direct-io-safe" | "discard" | "no-discard" | "colo" | "no-colo" | "trusted" | "untrusted" => {
                rest = after;
                continue;
            }
            _ => {}
        }
        // Deprecated prefixes: `word:` consumed alone, lexing continues after the colon.
        if let Some(colon) = tok.find(':') {
            let word = &tok[..colon];
            let next = tok.as_bytes().get(colon + 1).copied();
            let is_word = word.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if is_word {
                let known = match word {
                    "raw" | "qcow" | "qcow2" | "vhd" => {
                        set_format(word, &mut e, &mut empty_format)?;
                        format_set = true;
                        true
                    }
                    "iscsi" | "nbd" | "enbd" | "drbd" => {
                        e.script = Some(format!("block-{word}"));
                        true
                    }
                    "tapdisk" | "tap" | "tap2" | "aio" | "ioemu" | "file" | "phy" => true,
                    _ => false,
                };
                if known {
                    had_depr_prefix = true;
                    rest = &rest[colon + 1..];
                    continue;
                }
                if next.is_none_or(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit())) {
                    return Err(GuestError::invalid(format!(
                        "disk {spec:?}: unknown deprecated disk prefix {:?} (xl accepts raw: \
                         qcow: qcow2: vhd: iscsi: nbd: enbd: drbd: and ignores tap: tap2: \
                         tapdisk: aio: ioemu: file: phy:)",
                        format!("{word}:")
                    )));
                }
            }
        }
        // Positional parameter.
        if target.is_none() {
            target = Some(tok.to_string());
        } else if !had_depr_prefix && !format_set {
            let t = target.as_deref().unwrap_or("");
            if t.is_empty() && tok.contains(':') {
                let (v, dt) = tok.rsplit_once(':').unwrap_or((tok, ""));
                vdev = Some(v.to_string());
                match dt {
                    "cdrom" => cdrom = true,
                    "disk" => cdrom = false,
                    _ => return Err(err("unknown deprecated type", dt)),
                }
                empty_format = true;
            } else {
                set_format(tok, &mut e, &mut empty_format)?;
            }
            format_set = true;
        } else if vdev.is_none() {
            if let Some((v, dt)) = tok.rsplit_once(':') {
                vdev = Some(v.to_string());
                match dt {
                    "cdrom" => cdrom = true,
                    "disk" => cdrom = false,
                    _ => return Err(err("unknown deprecated type", dt)),
                }
            } else {
                vdev = Some(tok.to_string());
            }
        } else if !access_set {
            access_set = true;
            access_ro = Some(set_access(tok)?);
        } else {
            return Err(err("too many positional parameters", tok));
        }
        rest = after;
    }
    let Some(vdev) = vdev.filter(|v| !v.is_empty()) else {
        return Err(GuestError::invalid(format!("disk {spec:?}: no vdev (the virtual device name, e.g. xvda)")));
    };
    e.vdev = vdev;
    e.target = target.unwrap_or_default();
    e.cdrom = cdrom;
    e.read_only = access_ro.unwrap_or(cdrom) || cdrom;
    if e.format.is_none() && !empty_format {
        e.format = Some("raw".into());
    }
    if empty_format || e.target.is_empty() {
        e.format = None;
        if !cdrom {
            return Err(GuestError::invalid(format!("disk {spec:?}: an empty target is only allowed for a CD drive")));
        }
        e.target.clear();
    }
    Ok(e)
}

/// The controller a Xen vdev name implies (for the record only).
pub fn controller_of(vdev: &str) -> Controller {
    if vdev.starts_with("hd") {
        Controller::Ide
    } else if vdev.starts_with("sd") {
        Controller::Scsi(ScsiModel::Unknown)
    } else {
        Controller::Xen
    }
}

/// Adds a parsed disk entry to the guest as a disk or a CD drive.
pub fn add_disk(g: &mut Guest, e: DiskEntry) {
    if e.cdrom {
        g.cdroms.push(Cdrom { media: (!e.target.is_empty()).then(|| e.target.clone()), device: e.vdev.clone() });
        return;
    }
    if e.shared_write {
        g.note(
            Severity::Warning,
            format!("disk {} was shared writable (w!) in the source; the XVA gets a private copy", e.vdev),
        );
    }
    if let Some(b) = &e.backend {
        g.note(Severity::Info, format!("disk {} was served by backend domain {b:?}; the target uses dom0", e.vdev));
    }
    let source = match &e.script {
        Some(s) => {
            g.note(
                Severity::Warning,
                format!(
                    "disk {} comes from the block script {s:?} ({}) in the source dom0: xva \
                     cannot read it; copy the device to a file and pass --disk, or map it with \
                     --path-map",
                    e.vdev, e.target
                ),
            );
            DiskSource::Script { script: s.clone(), target: e.target.clone() }
        }
        None => DiskSource::Path { path: e.target.clone().into() },
    };
    g.disks.push(Disk {
        source,
        format: e.format.clone(),
        bootable: false,
        read_only: e.read_only,
        controller: controller_of(&e.vdev),
        partition: partition_of(&e.vdev),
        device: e.vdev,
        capacity: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_disk_equivalence_vectors() {
        let want = DiskEntry {
            target: "/dev/vg/guest-volume".into(),
            format: Some("raw".into()),
            vdev: "hda".into(),
            ..Default::default()
        };
        for spec in [
            "/dev/vg/guest-volume,,hda",
            "/dev/vg/guest-volume,raw,hda,rw",
            "format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume",
            "raw:/dev/vg/guest-volume,hda,w",
        ] {
            assert_eq!(parse_xl_disk(spec).unwrap(), want, "{spec}");
        }
        let cd = DiskEntry {
            target: "/root/image.iso".into(),
            format: Some("raw".into()),
            vdev: "hdc".into(),
            cdrom: true,
            read_only: true,
            ..Default::default()
        };
        for spec in ["/root/image.iso,,hdc,cdrom", "raw:/root/image.iso,hdc:cdrom,ro"] {
            assert_eq!(parse_xl_disk(spec).unwrap(), cd, "{spec}");
        }
        let empty = DiskEntry { vdev: "hdc".into(), cdrom: true, read_only: true, ..Default::default() };
        for spec in [",hdc:cdrom,r", "devtype=cdrom,,,hdc"] {
            assert_eq!(parse_xl_disk(spec).unwrap(), empty, "{spec}");
        }
        let iscsi =
            parse_xl_disk("iscsi:iqn.2001-05.com.equallogic:0-8a0906-23fe93404-c82797962054a96d-examplehost,xvda,w")
                .unwrap();
        assert_eq!(iscsi.script.as_deref(), Some("block-iscsi"));
        assert_eq!(iscsi.vdev, "xvda");
        assert!(iscsi.target.starts_with("iqn.2001-05.com.equallogic:0-8a"));
        let drbd = parse_xl_disk("drbd:app01,hda,w").unwrap();
        assert_eq!((drbd.script.as_deref(), drbd.target.as_str()), (Some("block-drbd"), "app01"));
        // target= eats the rest, commas included
        let t = parse_xl_disk("vdev=xvdb, format=qcow2, target=/srv/a,b.qcow2").unwrap();
        assert_eq!(t.target, "/srv/a,b.qcow2");
        assert_eq!(t.format.as_deref(), Some("qcow2"));
        // tap:aio: prefixes are stripped
        let t = parse_xl_disk("tap:aio:/srv/x.img,xvda,w").unwrap();
        assert_eq!(t.target, "/srv/x.img");
    }

    #[test]
    fn xl_disk_errors() {
        for (spec, what) in [
            ("tap:vmdk:/srv/x.vmdk,xvda,w", "unknown deprecated disk prefix"),
            ("/x,raw,xvda,w!", "access"),
            ("/x,bogus,xvda", "format"),
            ("/x,raw,xvda,rw,extra", "too many"),
            ("foo=bar,/x,,xvda", "unknown parameter"),
            ("/x", "no vdev"),
            (",,xvda", "empty target"),
        ] {
            let e = parse_xl_disk(spec).unwrap_err().to_string();
            assert!(e.contains(what), "{spec}: {e}");
        }
    }

    #[test]
    fn xm_disk_specs() {
        let d = parse_xm_disk("phy:sda7,sda1,w").unwrap();
        assert_eq!((d.target.as_str(), d.vdev.as_str()), ("/dev/sda7", "sda1"));
        let d = parse_xm_disk("tap:qcow2:/srv/a.qcow2,xvda,w").unwrap();
        assert_eq!(d.format.as_deref(), Some("qcow2"));
        let d = parse_xm_disk("tap:tapdisk:vmdk:/srv/a.vmdk,xvdb,r").unwrap();
        assert_eq!((d.format.as_deref(), d.read_only), (Some("vmdk"), true));
        let d = parse_xm_disk("tap2:tapdisk:vhd:/srv/a.vhd,xvdc,w").unwrap();
        assert_eq!(d.format.as_deref(), Some("vhd"));
        let d = parse_xm_disk(",hdc:cdrom,r").unwrap();
        assert!(d.cdrom && d.target.is_empty());
        let d = parse_xm_disk("file:/iso/x.iso,ioemu:hdc:cdrom,r").unwrap();
        assert!(d.cdrom && d.vdev == "hdc");
        let d = parse_xm_disk("phy:/dev/vg/shared,xvdd,w!").unwrap();
        assert!(d.shared_write);
        let d = parse_xm_disk("iscsi:iqn.2001-05.com.example:disk1,xvde,w").unwrap();
        assert_eq!(d.script.as_deref(), Some("iscsi"));
        for (spec, what) in [
            ("foo:/x,xvda,w", "unknown disk prefix"),
            ("phy:/x,xvda", "3 to 5"),
            ("phy:/x,xvda,z", "mode"),
            ("tap:bogus:/x,xvda,w", "unknown tap: disk type"),
            (",xvda,w", "empty uname"),
        ] {
            let e = parse_xm_disk(spec).unwrap_err().to_string();
            assert!(e.contains(what), "{spec}: {e}");
        }
    }
}
