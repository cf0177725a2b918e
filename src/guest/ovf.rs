//! OVF descriptors (DMTF OVF 1.x/2.x, VMware and VirtualBox exports), namespace-aware.
//!
//! ```text
//! Envelope
//!  ├ References/File            id → href, size, compression, chunkSize
//!  ├ DiskSection/Disk           diskId → fileRef, capacity × capacityAllocationUnits
//!  ├ NetworkSection/Network
//!  └ VirtualSystem              Name, AnnotationSection, OperatingSystemSection (vmw:osType)
//!      └ VirtualHardwareSection vmw:Config firmware / uefi.secureBoot.enabled
//!          └ Item*              rasd:ResourceType 3 CPU, 4 memory, 5/6/20 controllers,
//!                               10 NIC, 14 floppy, 15/16 CD, 17 disk (AllocationUnits honoured)
//! ```
//! A disk's `href` is kept as written; [`crate::guest::load`] resolves it next to the `.ovf`
//! or inside the `.ova` (chunked files, `ovf:chunkSize`, are joined there). gzip-compressed
//! files are refused with a clear message.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::error::{GuestError, Result};
use super::model::{
    Boot, Cdrom, Controller, Disk, DiskSource, Firmware, Guest, Memory, Nic, OsFamily, OsHint, ScsiModel, Severity,
    SourceKind, Vcpus, MIB,
};
use super::osmap::vmware_os;

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 64;
/// Most elements accepted in one descriptor.
pub const MAX_ELEMENTS: usize = 200_000;
/// Largest size (bytes) a descriptor may state for memory or a disk: 1 PiB.
pub const MAX_BYTES: u64 = 1 << 50;

const NS_OVF1: &str = "http://schemas.dmtf.org/ovf/envelope/1";
const NS_OVF2: &str = "http://schemas.dmtf.org/ovf/envelope/2";
const NS_VMW: &str = "http://www.vmware.com/schema/ovf";

/// An XML element with namespaces resolved.
#[derive(Clone, Debug, Default)]
pub struct Elem {
    /// Namespace URI ("" when unbound).
    pub ns: String,
    /// Local name.
    pub name: String,
    /// (namespace URI, local name, value).
    pub attrs: Vec<(String, String, String)>,
    /// Child elements.
    pub children: Vec<Elem>,
    /// Text content (concatenated).
    pub text: String,
    /// Line of the start tag.
    pub line: usize,
}

fn is_ovf(ns: &str) -> bool {
    ns == NS_OVF1 || ns == NS_OVF2
}

impl Elem {
    /// Attribute by local name in the OVF namespace (or unqualified).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs.iter().find(|(ns, n, _)| n == local && (is_ovf(ns) || ns.is_empty())).map(|(_, _, v)| v.as_str())
    }

    /// Attribute by local name in namespace `ns`.
    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs.iter().find(|(n2, n, _)| n == local && n2 == ns).map(|(_, _, v)| v.as_str())
    }

    /// OVF-namespace children called `local`.
    pub fn ovf_children<'a>(&'a self, local: &'a str) -> impl Iterator<Item = &'a Elem> + 'a {
        self.children.iter().filter(move |c| c.name == local && is_ovf(&c.ns))
    }

    /// First OVF-namespace child called `local`.
    pub fn ovf_child<'a>(&'a self, local: &'a str) -> Option<&'a Elem> {
        self.ovf_children(local).next()
    }

    /// Text of the first child called `local` in any namespace (rasd/sasd/epasd fields).
    pub fn field(&self, local: &str) -> Option<&str> {
        self.children.iter().find(|c| c.name == local).map(|c| c.text.trim())
    }
}

fn line_at(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => return None,
    })
}

/// Parses XML text into an element tree (namespaces resolved, depth and size bounded).
pub fn parse_xml(text: &str) -> Result<Elem> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Elem> = Vec::new();
    let mut root: Option<Elem> = None;
    let mut count = 0usize;
    loop {
        let pos = reader.buffer_position() as usize;
        let ev = reader.read_resolved_event();
        let (res, ev) = match ev {
            Ok(x) => x,
            Err(e) => {
                let at = reader.error_position() as usize;
                return Err(GuestError::syntax(line_at(text, at), format!("XML error: {e}")));
            }
        };
        let ns = match res {
            ResolveResult::Bound(n) => n.0.to_string(),
            _ => String::new(),
        };
        let is_empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(GuestError::invalid("descriptor has too many elements"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(GuestError::syntax(line_at(text, pos), "elements nested too deeply"));
                }
                let line = line_at(text, pos);
                let mut el = Elem { ns, name: e.local_name().as_ref().to_string(), line, ..Default::default() };
                for a in e.attributes() {
                    let a = a.map_err(|err| GuestError::syntax(line, format!("XML attribute error: {err}")))?;
                    let (ares, local) = reader.resolver().resolve_attribute(a.key);
                    let ans = match ares {
                        ResolveResult::Bound(n) => n.0.to_string(),
                        _ => String::new(),
                    };
                    let local = local.as_ref().to_string();
                    if ans == "http://www.w3.org/2000/xmlns/" || a.key.0.starts_with("xmlns") {
                        continue;
                    }
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|err| GuestError::syntax(line, format!("XML attribute value: {err}")))?
                        .into_owned();
                    el.attrs.push((ans, local, v));
                }
                if is_empty {
                    match stack.last_mut() {
                        Some(p) => p.children.push(el),
                        None => {
                            root = Some(el);
                        }
                    }
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(GuestError::syntax(line_at(text, pos), "unbalanced end tag"));
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                let line = line_at(text, pos);
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => entity(&r.xml10_content()),
                    Err(e) => return Err(GuestError::syntax(line, format!("XML reference: {e}"))),
                };
                let Some(ch) = ch else {
                    return Err(GuestError::syntax(line, format!("unknown XML entity &{};", r.xml10_content())));
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(ch);
                }
            }
            Event::DocType(_) => {
                return Err(GuestError::unsupported(
                    "a DOCTYPE in an OVF descriptor is not accepted (entity expansion)",
                ))
            }
            Event::Eof => break,
            _ => {}
        }
        if root.is_some() && stack.is_empty() {
            // Trailing content after the root is ignored except errors found above.
        }
    }
    if !stack.is_empty() {
        return Err(GuestError::syntax(
            line_at(text, text.len()),
            format!("unclosed element <{}> at end of file", stack.last().map(|e| e.name.as_str()).unwrap_or("")),
        ));
    }
    root.ok_or_else(|| GuestError::invalid("empty XML document"))
}

/// Multiplier of an OVF/CIM allocation-units string: `byte`, `byte * 2^20`, `byte * 10^6`,
/// `KiloBytes`, `MegaBytes`, `GigaBytes`, `MB`, `GB`…
pub fn units(s: &str) -> Result<u64> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    let bad = || GuestError::invalid(format!("unsupported allocation units {s:?}"));
    let word = match t.as_str() {
        "" | "byte" | "bytes" | "b" => Some(1u64),
        "kilobytes" | "kb" | "kib" => Some(1 << 10),
        "megabytes" | "mb" | "mib" => Some(1 << 20),
        "gigabytes" | "gb" | "gib" => Some(1 << 30),
        "terabytes" | "tb" | "tib" => Some(1 << 40),
        _ => None,
    };
    if let Some(w) = word {
        return Ok(w);
    }
    let rest = t.strip_prefix("byte*").ok_or_else(bad)?;
    let (base, exp) = rest.split_once('^').ok_or_else(bad)?;
    let base: u64 = base.parse().map_err(|_| bad())?;
    let exp: u32 = exp.parse().map_err(|_| bad())?;
    if base != 2 && base != 10 {
        return Err(bad());
    }
    base.checked_pow(exp)
        .filter(|&m| m <= MAX_BYTES)
        .ok_or_else(|| GuestError::invalid(format!("allocation units {s:?} are impossibly large")))
}

fn quantity(what: &str, qty: &str, unit: &str) -> Result<u64> {
    let q: u64 =
        qty.trim().parse().map_err(|_| GuestError::invalid(format!("{what}: {qty:?} is not a whole number")))?;
    let m = units(unit).map_err(|e| GuestError::invalid(format!("{what}: {}", e.message())))?;
    q.checked_mul(m)
        .filter(|&b| b <= MAX_BYTES)
        .ok_or_else(|| GuestError::invalid(format!("{what}: {qty} × {unit:?} is impossibly large (more than 1 PiB)")))
}

/// A `File` in `References`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    /// `ovf:href`.
    pub href: String,
    /// `ovf:size`.
    pub size: Option<u64>,
}

/// Parses an OVF descriptor.
pub fn parse(text: &str) -> Result<Guest> {
    let text = text.trim_start_matches('\u{feff}');
    let env = parse_xml(text)?;
    if env.name != "Envelope" || !is_ovf(&env.ns) {
        return Err(GuestError::invalid(format!(
            "not an OVF descriptor: the root element is <{}> in namespace {:?}, expected \
             <Envelope> in {NS_OVF1}",
            env.name, env.ns
        )));
    }
    let mut g = Guest::new(SourceKind::Ovf);

    // References.
    let mut files: BTreeMap<String, FileRef> = BTreeMap::new();
    if let Some(refs) = env.ovf_child("References") {
        for f in refs.ovf_children("File") {
            let id = f.attr("id").unwrap_or_default().to_string();
            let href = f.attr("href").unwrap_or_default().to_string();
            if let Some(c) = f.attr("compression").filter(|c| !c.is_empty() && *c != "identity") {
                return Err(GuestError::unsupported(format!(
                    "file {href:?} is {c}-compressed (ovf:compression); decompress it and edit \
                     the descriptor, or re-export without compression"
                ))
                .at_line(f.line));
            }
            let size = f.attr("size").and_then(|s| s.trim().parse().ok());
            files.insert(id, FileRef { href, size });
        }
    }
    // Disks.
    struct DiskDef {
        file: Option<FileRef>,
        capacity: u64,
        format: Option<String>,
    }
    let mut disk_defs: BTreeMap<String, DiskDef> = BTreeMap::new();
    for section in env.children.iter().filter(|c| c.name == "DiskSection" && is_ovf(&c.ns)) {
        for d in section.ovf_children("Disk") {
            let id = d.attr("diskId").unwrap_or_default().to_string();
            let cap = d.attr("capacity").unwrap_or("0");
            let unit = d.attr("capacityAllocationUnits").unwrap_or("byte");
            let capacity = quantity(&format!("disk {id} capacity"), cap, unit).map_err(|e| e.at_line(d.line))?;
            let file = match d.attr("fileRef") {
                Some(r) => Some(files.get(r).cloned().ok_or_else(|| {
                    GuestError::invalid(format!("disk {id}: fileRef {r:?} is not in References")).at_line(d.line)
                })?),
                None => None,
            };
            let format = d.attr("format").map(|f| {
                let f = f.to_ascii_lowercase();
                if f.contains("vmdk") {
                    "vmdk".to_string()
                } else if f.contains("vhd") {
                    "vhd".to_string()
                } else if f.contains("qcow") {
                    "qcow2".to_string()
                } else {
                    f
                }
            });
            disk_defs.insert(id, DiskDef { file, capacity, format });
        }
    }
    let networks: Vec<String> = env
        .ovf_child("NetworkSection")
        .map(|s| s.ovf_children("Network").filter_map(|n| n.attr("name").map(String::from)).collect())
        .unwrap_or_default();

    // The virtual system.
    if env.ovf_child("VirtualSystemCollection").is_some() && env.ovf_child("VirtualSystem").is_none() {
        return Err(GuestError::unsupported(
            "this OVF describes a collection of virtual systems (a vApp); convert one VM at a time",
        ));
    }
    let vs = env.ovf_child("VirtualSystem").ok_or_else(|| GuestError::invalid("no VirtualSystem in the descriptor"))?;
    g.name = vs
        .ovf_child("Name")
        .map(|n| n.text.trim().to_string())
        .filter(|n| !n.is_empty())
        .or_else(|| vs.attr("id").map(String::from))
        .unwrap_or_default();
    if let Some(a) = vs.ovf_child("AnnotationSection").and_then(|s| s.ovf_child("Annotation")) {
        g.description = a.text.trim().to_string();
    }
    if let Some(os) = vs.ovf_child("OperatingSystemSection") {
        let vmw = os.attr_ns(NS_VMW, "osType").or_else(|| os.attr("osType"));
        g.os = match vmw {
            Some(id) if !id.is_empty() => Some(vmware_os(id)),
            _ => {
                let desc = os.ovf_child("Description").map(|d| d.text.trim().to_string()).unwrap_or_default();
                let lower = desc.to_ascii_lowercase();
                let family = if lower.contains("windows") {
                    OsFamily::Windows
                } else if lower.contains("linux")
                    || lower.contains("ubuntu")
                    || lower.contains("debian")
                    || lower.contains("centos")
                    || lower.contains("red hat")
                {
                    OsFamily::Linux
                } else {
                    OsFamily::Other
                };
                (!desc.is_empty() || os.attr("id").is_some()).then(|| OsHint {
                    source_id: os.attr("id").unwrap_or_default().to_string(),
                    family,
                    name: desc.clone(),
                    bits64: lower.contains("64"),
                })
            }
        };
    }
    let hw = vs
        .ovf_child("VirtualHardwareSection")
        .ok_or_else(|| GuestError::invalid("no VirtualHardwareSection in the VirtualSystem"))?;
    let mut uefi = false;
    let mut secure = false;
    for c in hw.children.iter().filter(|c| c.name == "Config" && c.ns == NS_VMW) {
        let key = c.attr_ns(NS_VMW, "key").unwrap_or_default();
        let val = c.attr_ns(NS_VMW, "value").unwrap_or_default().to_ascii_lowercase();
        match key {
            "firmware" => uefi = val == "efi",
            "uefi.secureBoot.enabled" => secure = val == "true",
            _ => {}
        }
    }

    // Items.
    let items: Vec<&Elem> =
        hw.children.iter().filter(|c| matches!(c.name.as_str(), "Item" | "StorageItem" | "EthernetPortItem")).collect();
    let mut controllers: BTreeMap<String, (Controller, u32, u8)> = BTreeMap::new();
    for it in &items {
        let rt = it.field("ResourceType").unwrap_or_default();
        let id = it.field("InstanceID").unwrap_or_default().to_string();
        let sub = it.field("ResourceSubType").unwrap_or_default().to_ascii_lowercase();
        let addr: u32 = it.field("Address").and_then(|a| a.parse().ok()).unwrap_or(0);
        let c = match rt {
            "5" => Some((Controller::Ide, 3u8)),
            "6" => Some((
                Controller::Scsi(match sub.as_str() {
                    "lsilogic" => ScsiModel::LsiLogic,
                    "lsilogicsas" => ScsiModel::LsiSas,
                    "buslogic" => ScsiModel::BusLogic,
                    "virtualscsi" => ScsiModel::Pvscsi,
                    _ => ScsiModel::Unknown,
                }),
                0,
            )),
            "20" => Some(if sub.contains("nvme") { (Controller::Nvme, 1) } else { (Controller::Sata, 2) }),
            _ => None,
        };
        if let Some((c, rank)) = c {
            controllers.insert(id, (c, addr, rank));
        }
    }
    let mut vcpus: Option<u32> = None;
    let mut memory: Option<u64> = None;
    let mut disks: Vec<((u8, u32, u32, usize), Disk)> = Vec::new();
    let mut floppies = 0;
    for (idx, it) in items.iter().enumerate() {
        let rt = it.field("ResourceType").unwrap_or_default();
        let at_line = |e: GuestError| e.at_line(it.line);
        match rt {
            "3" => {
                let q = it.field("VirtualQuantity").unwrap_or("1");
                vcpus = Some(q.parse::<u32>().ok().filter(|n| (1..=4096).contains(n)).ok_or_else(|| {
                    at_line(GuestError::invalid(format!("CPU VirtualQuantity {q:?}: expected 1 to 4096")))
                })?);
            }
            "4" => {
                let q = it.field("VirtualQuantity").unwrap_or("0");
                let u = it.field("AllocationUnits").unwrap_or("byte * 2^20");
                let b = quantity("memory", q, u).map_err(at_line)?;
                if b == 0 {
                    return Err(at_line(GuestError::invalid("memory VirtualQuantity is 0")));
                }
                memory = Some(b);
            }
            "10" => {
                let mac = match it.field("Address").filter(|a| !a.is_empty()) {
                    Some(a) => Some(super::model::normalize_mac(a).ok_or_else(|| {
                        at_line(GuestError::invalid(format!("NIC Address {a:?} is not a MAC address")))
                    })?),
                    None => None,
                };
                g.nics.push(Nic {
                    mac,
                    network: it.field("Connection").map(String::from),
                    model: it.field("ResourceSubType").map(|s| s.to_ascii_lowercase()),
                });
            }
            "14" => floppies += 1,
            "15" | "16" => {
                let host = it.field("HostResource").unwrap_or_default();
                let media = host.strip_prefix("ovf:/file/").and_then(|f| files.get(f)).map(|f| f.href.clone());
                g.cdroms.push(Cdrom { media, device: it.field("ElementName").unwrap_or("cdrom").to_string() });
            }
            "17" => {
                let host = it.field("HostResource").unwrap_or_default();
                let id = host.strip_prefix("ovf:/disk/").or_else(|| host.strip_prefix("/disk/")).ok_or_else(|| {
                    at_line(GuestError::invalid(format!("disk item HostResource {host:?} is not ovf:/disk/<id>")))
                })?;
                let def = disk_defs.get(id).ok_or_else(|| {
                    at_line(GuestError::invalid(format!(
                        "disk item names disk {id:?}, which DiskSection does not define"
                    )))
                })?;
                let Some(file) = &def.file else {
                    g.note(
                        Severity::Warning,
                        format!("disk {id} has no file (an empty disk of {} bytes); it is skipped", def.capacity),
                    );
                    continue;
                };
                let parent = it.field("Parent").unwrap_or_default();
                let (controller, caddr, rank) =
                    controllers.get(parent).copied().unwrap_or((Controller::Scsi(ScsiModel::Unknown), 0, 0));
                let unit: u32 = it.field("AddressOnParent").and_then(|a| a.parse().ok()).unwrap_or(0);
                let device = match controller {
                    Controller::Ide => format!("ide{caddr}:{unit}"),
                    Controller::Sata => format!("sata{caddr}:{unit}"),
                    Controller::Nvme => format!("nvme{caddr}:{unit}"),
                    _ => format!("scsi{caddr}:{unit}"),
                };
                disks.push((
                    (rank, caddr, unit, idx),
                    Disk {
                        source: DiskSource::Path { path: file.href.clone().into() },
                        format: def.format.clone(),
                        bootable: false,
                        read_only: false,
                        controller,
                        device,
                        partition: None,
                        capacity: Some(def.capacity),
                    },
                ));
            }
            _ => {}
        }
    }
    disks.sort_by_key(|(k, _)| *k);
    g.disks = disks.into_iter().map(|(_, d)| d).collect();
    let mem = memory.ok_or_else(|| GuestError::invalid("no memory item (ResourceType 4) in VirtualHardwareSection"))?;
    g.memory = Memory::new(mem, None);
    if mem < 4 * MIB {
        g.note(Severity::Warning, format!("memory is only {mem} bytes; check AllocationUnits"));
    }
    let n = vcpus.unwrap_or(1);
    g.vcpus = Vcpus::new(n, n);
    g.boot = Boot::Hvm {
        firmware: if uefi { Firmware::Uefi } else { Firmware::Bios },
        secure_boot: uefi && secure,
        order: "cd".into(),
    };
    if g.is_windows() {
        g.platform.viridian = Some(true);
    }
    if floppies > 0 {
        g.note(Severity::Info, "floppy drive not carried over");
    }
    if g.nics.iter().any(|n| n.network.as_ref().is_some_and(|c| !networks.contains(c))) && !networks.is_empty() {
        g.note(Severity::Info, "a NIC names a network missing from NetworkSection");
    }
    g.finish();
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_units() {
        assert_eq!(units("byte * 2^20").unwrap(), 1 << 20);
        assert_eq!(units("byte*10^6").unwrap(), 1_000_000);
        assert_eq!(units("MegaBytes").unwrap(), 1 << 20);
        assert!(units("byte * 2^200").is_err());
        assert!(units("hertz * 10^6").is_err());
        assert!(quantity("m", "18446744073709551615", "byte * 2^30").is_err());
    }

    #[test]
    fn xml_basics() {
        let e =
            parse_xml("<a xmlns='urn:x' xmlns:p='urn:p'><p:b p:k='1&amp;2'>t&lt;&#65;<![CDATA[<c>]]></p:b><c/></a>")
                .unwrap();
        assert_eq!(e.ns, "urn:x");
        assert_eq!(e.children[0].ns, "urn:p");
        assert_eq!(e.children[0].attr_ns("urn:p", "k"), Some("1&2"));
        assert_eq!(e.children[0].text, "t<A<c>");
        assert_eq!(e.children[1].name, "c");
        assert!(parse_xml("<a><b></a>").is_err());
        assert!(parse_xml("<!DOCTYPE x [<!ENTITY a 'b'>]><a>&a;</a>").is_err());
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(parse_xml(&deep).is_err());
    }
}
