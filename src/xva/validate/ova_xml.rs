//! The `ova.xml` rules (7–22): parsed with ocaml-rpc's rules, then every object checked
//! against the fields each xapi version requires (`xva-format-and-xapi-import.md` §3–§4).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::finding::{Finding, Severity};
use crate::xmlrpc::parse::{self as rpc_parse, ocaml_float_of_string, ocaml_int64_of_string, NoteKind};
use crate::xmlrpc::Value;

/// A streamed VDI as found in ova.xml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamedDisk {
    /// Id.
    pub id: String,
    /// `name_label`.
    pub name_label: String,
    /// `virtual_size`.
    pub virtual_size: u64,
}

/// What the stream phase needs from ova.xml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// `export_vsn` (missing = 0; unparsable counts as 0 too, with an E).
    pub export_vsn: i64,
    /// `(xapi_major, xapi_minor)` when both parse.
    pub xapi_version: Option<(i64, i64)>,
    /// VM `name_label`s.
    pub vm_names: Vec<String>,
    /// Streamed VDIs in read order (rule 18); `None` if one has no usable `virtual_size`.
    pub streamed: Option<Vec<StreamedDisk>>,
}

/// Checks an ova.xml document on its own (rules 7–22). `None` when it cannot be parsed far
/// enough to know the disks.
pub fn check_ova_xml(xml: &[u8], findings: &mut Vec<Finding>) -> Option<Header> {
    check_ova_xml_at(xml, 0, findings)
}

const OVA: Option<&str> = Some("ova.xml");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Bool,
    Double,
    Date,
    Map,
    Set,
    Ref,
    Enum(&'static [&'static str]),
}

/// A field: name, type, and which of HEAD / 1.249 / 1.14 / 1.9.50 require it (`R`) (§4).
type Field = (&'static str, Ty, &'static str);

const POWER: &[&str] = &["Halted", "Paused", "Running", "Suspended"];
const AFTER_SHUTDOWN: &[&str] = &["destroy", "restart"];
const AFTER_CRASH: &[&str] =
    &["destroy", "coredump_and_destroy", "restart", "coredump_and_restart", "preserve", "rename_restart"];
const DOMAIN_TYPE: &[&str] = &["hvm", "pv", "pv_in_pvh", "pvh", "unspecified"];
const VBD_MODE: &[&str] = &["RO", "RW"];
const VBD_TYPE: &[&str] = &["CD", "Disk", "Floppy"];
const VDI_TYPE: &[&str] = &[
    "system",
    "user",
    "ephemeral",
    "suspend",
    "crashdump",
    "ha_statefile",
    "metadata",
    "redo_log",
    "rrd",
    "pvs_cache",
    "cbt_metadata",
];

use Ty::*;

const VM_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("name_label", Str, "----"),
    ("name_description", Str, "----"),
    ("power_state", Enum(POWER), "-RRR"),
    ("user_version", Int, "RRRR"),
    ("is_a_template", Bool, "RRRR"),
    ("suspend_VDI", Ref, "-RRR"),
    ("suspend_SR", Ref, "----"),
    ("resident_on", Ref, "RRRR"),
    ("affinity", Ref, "RRRR"),
    ("memory_static_max", Int, "RRRR"),
    ("memory_dynamic_max", Int, "RRRR"),
    ("memory_dynamic_min", Int, "RRRR"),
    ("memory_static_min", Int, "RRRR"),
    ("memory_target", Int, "----"),
    ("memory_overhead", Int, "----"),
    ("VCPUs_params", Map, "RRRR"),
    ("VCPUs_max", Int, "RRRR"),
    ("VCPUs_at_startup", Int, "RRRR"),
    ("actions_after_shutdown", Enum(AFTER_SHUTDOWN), "RRRR"),
    ("actions_after_reboot", Enum(AFTER_SHUTDOWN), "RRRR"),
    ("actions_after_crash", Enum(AFTER_CRASH), "RRRR"),
    ("VBDs", Set, "----"),
    ("VIFs", Set, "----"),
    ("consoles", Set, "----"),
    ("crash_dumps", Set, "----"),
    ("VTPMs", Set, "----"),
    ("PV_bootloader", Str, "RRRR"),
    ("PV_kernel", Str, "RRRR"),
    ("PV_ramdisk", Str, "RRRR"),
    ("PV_args", Str, "RRRR"),
    ("PV_bootloader_args", Str, "RRRR"),
    ("PV_legacy_args", Str, "RRRR"),
    ("HVM_boot_policy", Str, "RRRR"),
    ("HVM_boot_params", Map, "RRRR"),
    ("HVM_shadow_multiplier", Double, "----"),
    ("platform", Map, "RRRR"),
    ("PCI_bus", Str, "RRRR"),
    ("other_config", Map, "RRRR"),
    ("domid", Int, "RRRR"),
    ("domarch", Str, "RRRR"),
    ("last_boot_CPU_flags", Map, "-RRR"),
    ("is_control_domain", Bool, "RRRR"),
    ("metrics", Ref, "RRRR"),
    ("guest_metrics", Ref, "RRRR"),
    ("recommendations", Str, "RRRR"),
    ("parent", Ref, "----"),
    ("has_vendor_device", Bool, "----"),
    ("generation_id", Str, "----"),
    ("domain_type", Enum(DOMAIN_TYPE), "----"),
    ("tags", Set, "----"),
    ("NVRAM", Map, "----"),
    ("xenstore_data", Map, "----"),
    ("is_a_snapshot", Bool, "----"),
    ("snapshot_of", Ref, "----"),
    ("snapshot_time", Date, "----"),
    ("ha_always_run", Bool, "----"),
    ("bios_strings", Map, "----"),
    ("start_delay", Int, "----"),
    ("shutdown_delay", Int, "----"),
    ("order", Int, "----"),
];

const VBD_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("VM", Ref, "RRRR"),
    ("VDI", Ref, "RRRR"),
    ("device", Str, "-RRR"),
    ("userdevice", Str, "RRRR"),
    ("bootable", Bool, "RRRR"),
    ("mode", Enum(VBD_MODE), "RRRR"),
    ("type", Enum(VBD_TYPE), "RRRR"),
    ("unpluggable", Bool, "----"),
    ("storage_lock", Bool, "RRRR"),
    ("empty", Bool, "RRRR"),
    ("other_config", Map, "RRRR"),
    ("currently_attached", Bool, "-RRR"),
    ("status_code", Int, "RRRR"),
    ("status_detail", Str, "RRRR"),
    ("runtime_properties", Map, "RRRR"),
    ("qos_algorithm_type", Str, "RRRR"),
    ("qos_algorithm_params", Map, "RRRR"),
    ("qos_supported_algorithms", Set, "RRRR"),
    ("metrics", Ref, "-RRR"),
];

const VDI_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("name_label", Str, "----"),
    ("name_description", Str, "----"),
    ("SR", Ref, "RRRR"),
    ("VBDs", Set, "----"),
    ("virtual_size", Int, "RRRR"),
    ("physical_utilisation", Int, "RRRR"),
    ("type", Enum(VDI_TYPE), "RRRR"),
    ("sharable", Bool, "RRRR"),
    ("read_only", Bool, "RRRR"),
    ("other_config", Map, "RRRR"),
    ("storage_lock", Bool, "RRRR"),
    ("managed", Bool, "RRRR"),
    ("missing", Bool, "RRRR"),
    ("parent", Ref, "RRRR"),
    ("location", Str, "----"),
    ("sm_config", Map, "----"),
    ("xenstore_data", Map, "----"),
    ("tags", Set, "----"),
];

const SR_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("name_label", Str, "----"),
    ("name_description", Str, "----"),
    ("VDIs", Set, "----"),
    ("PBDs", Set, "----"),
    ("virtual_allocation", Int, "RRRR"),
    ("physical_utilisation", Int, "RRRR"),
    ("physical_size", Int, "RRRR"),
    ("type", Str, "RRRR"),
    ("content_type", Str, "RRRR"),
    ("shared", Bool, "RRRR"),
    ("other_config", Map, "RRRR"),
];

const VIF_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("device", Str, "RRRR"),
    ("network", Ref, "RRRR"),
    ("VM", Ref, "RRRR"),
    ("MAC", Str, "RRRR"),
    ("MAC_autogenerated", Bool, "----"),
    ("MTU", Int, "RRRR"),
    ("other_config", Map, "RRRR"),
    ("currently_attached", Bool, "-RRR"),
    ("status_code", Int, "RRRR"),
    ("status_detail", Str, "RRRR"),
    ("runtime_properties", Map, "RRRR"),
    ("qos_algorithm_type", Str, "RRRR"),
    ("qos_algorithm_params", Map, "RRRR"),
    ("qos_supported_algorithms", Set, "RRRR"),
    ("metrics", Ref, "-RRR"),
];

const NETWORK_FIELDS: &[Field] = &[
    ("uuid", Str, "RRRR"),
    ("name_label", Str, "----"),
    ("name_description", Str, "----"),
    ("VIFs", Set, "----"),
    ("PIFs", Set, "----"),
    ("bridge", Str, "--RR"),
    ("other_config", Map, "RRRR"),
];

/// Classes xapi knows (others are ignored), §3.2.
const KNOWN_CLASSES: &[&str] = &[
    "VM",
    "VBD",
    "VDI",
    "SR",
    "VIF",
    "network",
    "VM_metrics",
    "VM_guest_metrics",
    "host",
    "GPU_group",
    "VGPU",
    "VGPU_type",
    "PVS_site",
    "PVS_proxy",
    "VTPM",
];

fn fields_of(class: &str) -> Option<&'static [Field]> {
    Some(match class {
        "VM" => VM_FIELDS,
        "VBD" => VBD_FIELDS,
        "VDI" => VDI_FIELDS,
        "SR" => SR_FIELDS,
        "VIF" => VIF_FIELDS,
        "network" => NETWORK_FIELDS,
        _ => return None,
    })
}

/// An object of the export.
struct Obj<'a> {
    class: &'a str,
    id: &'a str,
    snap: &'a Value,
}

impl Obj<'_> {
    fn what(&self) -> String {
        format!("{} {}", self.class, self.id)
    }
    fn str(&self, k: &str) -> Option<&str> {
        match self.snap.get(k) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
    fn int(&self, k: &str) -> Option<i64> {
        match self.snap.get(k) {
            Some(Value::Int(i)) => Some(*i),
            Some(Value::String(s)) => ocaml_int64_of_string(s),
            _ => None,
        }
    }
    fn bool(&self, k: &str) -> Option<bool> {
        match self.snap.get(k) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }
    /// Enum value, lower-cased (xapi matches case-insensitively).
    fn enum_lc(&self, k: &str) -> Option<String> {
        self.str(k).map(str::to_ascii_lowercase)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Int(_) => "an <int>",
        Value::Bool(_) => "a <boolean>",
        Value::Double(_) => "a <double>",
        Value::DateTime(_) => "a <dateTime.iso8601>",
        Value::Struct(_) => "a <struct>",
        Value::Array(_) => "an <array>",
    }
}

/// ISO 8601 as xapi's `Date.of_string` takes it: `YYYYMMDDTHH:MM:SS` or `YYYY-MM-DDTHH:MM:SS`,
/// optional fraction, optional `Z` or `±HH:MM` / `±HHMM`.
fn is_iso8601(s: &str) -> bool {
    let Some((date, time)) = s.split_once('T') else {
        return false;
    };
    let d: String = date.chars().filter(|&c| c != '-').collect();
    if d.len() != 8 || !d.bytes().all(|b| b.is_ascii_digit()) || (date.len() != 8 && date.len() != 10) {
        return false;
    }
    let (clock, tz) = match time.find(['Z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => (time, ""),
    };
    let clock = clock.split('.').next().unwrap_or("");
    let c: Vec<&str> = clock.split(':').collect();
    let clock_ok = c.len() == 3 && c.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()));
    let tz_ok =
        tz.is_empty() || tz == "Z" || (tz.len() >= 3 && tz[1..].bytes().all(|b| b.is_ascii_digit() || b == b':'));
    clock_ok && tz_ok
}

/// Rule 11/12 type check of one field value; pushes findings.
fn check_type(obj: &Obj<'_>, name: &str, ty: Ty, v: &Value, out: &mut Vec<Finding>) {
    let bad = |out: &mut Vec<Finding>, rule: u8, msg: String| {
        out.push(Finding::new(Severity::Error, rule, OVA, None, format!("{}: {name}: {msg}", obj.what())));
    };
    match (ty, v) {
        (Str | Ref, Value::String(_)) => {}
        (Str | Ref, v) => bad(out, 11, format!("must be a string, is {}", type_name(v))),
        (Int, Value::Int(_)) => {}
        (Int, Value::String(s)) if ocaml_int64_of_string(s).is_some() => {}
        (Int, Value::String(s)) => bad(out, 11, format!("{s:?} is not a 64-bit integer")),
        (Int, v) => bad(out, 11, format!("must be an integer, is {}", type_name(v))),
        (Bool, Value::Bool(_)) => {}
        (Bool, v) => bad(
            out,
            11,
            format!(
                "must be <boolean>0</boolean> or <boolean>1</boolean>, is {} (xapi fails with \"Expected bool\")",
                type_name(v)
            ),
        ),
        (Double, Value::Double(_) | Value::Int(_)) => {}
        (Double, Value::String(s)) if ocaml_float_of_string(s).is_some() => {}
        (Double, v) => bad(out, 11, format!("must be a <double>, is {}", type_name(v))),
        (Date, Value::DateTime(s) | Value::String(s)) if is_iso8601(s) => {}
        (Date, v) => bad(out, 11, format!("must be an ISO 8601 date, is {}", type_name(v))),
        (Map, Value::Struct(m)) => {
            if let Some((k, v)) = m.iter().find(|(_, v)| !matches!(v, Value::String(_))) {
                bad(out, 11, format!("map values must be strings; {k:?} is {}", type_name(v)));
            }
        }
        (Map, v) => bad(out, 11, format!("must be a <struct> map, is {}", type_name(v))),
        (Set, Value::Array(items)) => {
            if let Some(v) = items.iter().find(|v| !matches!(v, Value::String(_))) {
                bad(out, 11, format!("set elements must be strings, one is {}", type_name(v)));
            }
        }
        (Set, v) => bad(out, 11, format!("must be an <array>, is {}", type_name(v))),
        (Enum(vals), Value::String(s)) => {
            if !vals.iter().any(|e| e.eq_ignore_ascii_case(s)) {
                bad(out, 12, format!("{s:?} is not one of {} (xapi fails the import)", vals.join(", ")));
            }
        }
        (Enum(_), v) => bad(out, 11, format!("must be a string, is {}", type_name(v))),
    }
}

fn note_finding(n: &rpc_parse::Note, base: u64) -> Option<Finding> {
    let path = n.path.join(".");
    let (sev, rule, msg) = match &n.kind {
        NoteKind::BoolBody(b) => {
            (Severity::Warning, 11, format!("{path}: <boolean> body {b:?} is neither 0 nor 1; xapi reads it as false"))
        }
        NoteKind::ScalarWhitespace(s) => {
            (Severity::Warning, 13, format!("{path}: value {s:?} has leading/trailing whitespace, which xapi keeps"))
        }
        NoteKind::NameWhitespace(s) => {
            (Severity::Warning, 13, format!("member name {s:?} has whitespace, which becomes part of the key"))
        }
        NoteKind::TrailingContent => {
            (Severity::Warning, 7, "content after the root <value> element is ignored by xapi".to_string())
        }
        _ => return None,
    };
    Some(Finding::new(sev, rule, OVA, Some(base + n.offset as u64), msg))
}

pub(super) fn check_ova_xml_at(xml: &[u8], base: u64, out: &mut Vec<Finding>) -> Option<Header> {
    let e = |out: &mut Vec<Finding>, rule: u8, msg: String| {
        out.push(Finding::new(Severity::Error, rule, OVA, Some(base), msg));
    };
    let w = |out: &mut Vec<Finding>, rule: u8, msg: String| {
        out.push(Finding::new(Severity::Warning, rule, OVA, Some(base), msg));
    };
    // Rule 7.
    let parsed = match rpc_parse::parse(xml) {
        Ok(p) => p,
        Err(err) => {
            out.push(Finding::new(
                Severity::Error,
                7,
                OVA,
                Some(base + err.offset as u64),
                format!("ova.xml does not parse as xapi parses it: {err}"),
            ));
            return None;
        }
    };
    out.extend(parsed.notes.iter().filter_map(|n| note_finding(n, base)));
    let root = &parsed.value;
    // Rule 8.
    if !matches!(root, Value::Struct(_)) {
        e(out, 8, format!("the root value must be a <struct>, is {}", type_name(root)));
        return None;
    }
    let version = root.get("version");
    let objects = root.get("objects");
    let mut fatal = false;
    if !matches!(version, Some(Value::Struct(_))) {
        e(out, 8, "the top-level struct has no \"version\" struct".into());
        fatal = true;
    }
    let Some(Value::Array(objects)) = objects else {
        e(out, 8, "the top-level struct has no \"objects\" array".into());
        return None;
    };
    // Rule 9.
    let mut export_vsn = 0i64;
    let mut xapi_version = None;
    if let Some(v @ Value::Struct(_)) = version {
        for k in ["hostname", "date", "product_version", "product_brand", "build_number"] {
            match v.get(k) {
                Some(Value::String(_)) => {}
                Some(other) => e(out, 9, format!("version.{k} must be a string, is {}", type_name(other))),
                None => e(out, 9, format!("version.{k} is missing (\"Failed to find key '{k}' in version data\")")),
            }
        }
        let int = |k: &str| match v.get(k) {
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(Value::String(s)) => ocaml_int64_of_string(s).map(Some).ok_or(()),
            Some(_) => Err(()),
            None => Ok(None),
        };
        let major = int("xapi_major");
        let minor = int("xapi_minor");
        match (major, minor) {
            (Ok(Some(a)), Ok(Some(b))) => {
                xapi_version = Some((a, b));
                if (a, b) > (1, 1) {
                    w(out, 9, format!("xapi_major.xapi_minor is {a}.{b}: hosts whose xapi is older refuse the import (IMPORT_INCOMPATIBLE_VERSION); 1.1 reaches every host"));
                }
            }
            (a, b) => {
                for (k, r) in [("xapi_major", a), ("xapi_minor", b)] {
                    match r {
                        Ok(Some(_)) => {}
                        Ok(None) => e(out, 9, format!("version.{k} is missing")),
                        Err(()) => e(out, 9, format!("version.{k} is not an integer")),
                    }
                }
            }
        }
        match int("export_vsn") {
            Ok(Some(n)) => export_vsn = n,
            Ok(None) => export_vsn = 0,
            Err(()) => e(out, 9, "version.export_vsn is not an integer".into()),
        }
        if export_vsn == 0 {
            e(out, 9, "export_vsn is 0 (or missing): current xapi cannot read such a stream; write 2".into());
        } else if export_vsn != 2 {
            w(out, 9, format!("export_vsn is {export_vsn}; xapi writes 2"));
        }
    }
    // Objects (rule 8), ids (rule 14), fields (10–12).
    let mut objs: Vec<Obj<'_>> = Vec::new();
    let mut seen_ids: HashSet<&str> = HashSet::new();
    for (i, o) in objects.iter().enumerate() {
        if !matches!(o, Value::Struct(_)) {
            e(out, 8, format!("objects[{i}] must be a <struct>, is {}", type_name(o)));
            fatal = true;
            continue;
        }
        let class = match o.get("class") {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                e(out, 8, format!("objects[{i}] has no string \"class\""));
                fatal = true;
                continue;
            }
        };
        let id = match o.get("id") {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                e(out, 8, format!("objects[{i}] ({class}) has no string \"id\""));
                fatal = true;
                continue;
            }
        };
        let Some(snap) = o.get("snapshot") else {
            e(out, 8, format!("objects[{i}] ({class} {id}) has no \"snapshot\""));
            fatal = true;
            continue;
        };
        if !KNOWN_CLASSES.contains(&class) {
            w(
                out,
                8,
                format!(
                    "objects[{i}]: class {class:?} is unknown to xapi and ignored (class names are case-sensitive)"
                ),
            );
            continue;
        }
        if !seen_ids.insert(id) {
            e(out, 14, format!("object id {id:?} is used more than once; xapi silently uses the first"));
            continue;
        }
        let Some(fields) = fields_of(class) else {
            continue;
        };
        if !matches!(snap, Value::Struct(_)) {
            e(out, 8, format!("{class} {id}: snapshot must be a <struct>, is {}", type_name(snap)));
            fatal = true;
            continue;
        }
        let obj = Obj { class, id, snap };
        for &(name, ty, req) in fields {
            match snap.get(name) {
                Some(v) => check_type(&obj, name, ty, v, out),
                None if req.starts_with('R') => e(
                    out,
                    10,
                    format!("{}: required field {name} is missing (\"Field {name} not present in rpc\")", obj.what()),
                ),
                None if req.contains('R') => {
                    w(out, 10, format!("{}: field {name} is missing; xapi versions before HEAD require it", obj.what()))
                }
                None => {}
            }
        }
        for k in ["allowed_operations", "current_operations"] {
            let non_empty = match snap.get(k) {
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::Struct(m)) => !m.is_empty(),
                _ => false,
            };
            if non_empty {
                w(out, 12, format!("{}: {k} is not empty; emit it empty as xapi's exporter does (enum members differ between versions)", obj.what()));
            }
        }
        objs.push(obj);
    }
    if fatal {
        return None;
    }
    let by_id: HashMap<&str, &Obj<'_>> = objs.iter().map(|o| (o.id, o)).collect();
    let of_class = |c: &'static str| objs.iter().filter(move |o| o.class == c);
    let is = |id: &str, class: &str| by_id.get(id).is_some_and(|o| o.class == class);
    let vm_names: Vec<String> = of_class("VM").map(|o| o.str("name_label").unwrap_or("").to_string()).collect();
    // Rule 15: references.
    for vbd in of_class("VBD") {
        if let Some(vm) = vbd.str("VM") {
            if !is(vm, "VM") {
                e(
                    out,
                    15,
                    format!(
                        "{}: VM {vm:?} is not a VM object of this export (IMPORT_ERROR_FAILED_TO_FIND_OBJECT)",
                        vbd.what()
                    ),
                );
            }
        }
    }
    for vif in of_class("VIF") {
        let migrate = matches!(vif.snap.get("other_config"), Some(Value::Struct(m)) if m.iter().any(|(k, _)| k.contains("storage_migrate") || k.contains("storage-migrate")));
        if migrate {
            continue;
        }
        if let Some(vm) = vif.str("VM") {
            if !is(vm, "VM") {
                e(out, 15, format!("{}: VM {vm:?} is not a VM object of this export", vif.what()));
            }
        }
        if let Some(n) = vif.str("network") {
            if !is(n, "network") {
                e(out, 15, format!("{}: network {n:?} is not a network object of this export", vif.what()));
            }
        }
    }
    for vdi in of_class("VDI") {
        if let Some(sr) = vdi.str("SR") {
            if !is(sr, "SR") {
                e(
                    out,
                    15,
                    format!(
                        "{}: SR {sr:?} is not an SR object of this export (IMPORT_ERROR_FAILED_TO_FIND_OBJECT)",
                        vdi.what()
                    ),
                );
            }
        }
    }
    // Rules 16, 17.
    let mut userdevices: BTreeMap<(&str, String), &str> = BTreeMap::new();
    for vbd in of_class("VBD") {
        let ty = vbd.enum_lc("type").unwrap_or_default();
        let mode = vbd.enum_lc("mode").unwrap_or_default();
        let vdi_id = vbd.str("VDI").unwrap_or("");
        let vdi = by_id.get(vdi_id).filter(|o| o.class == "VDI");
        if ty == "disk" && vdi.is_none() {
            w(
                out,
                16,
                format!("{}: Disk VBD whose VDI {vdi_id:?} is not in the export; xapi silently drops it", vbd.what()),
            );
        }
        if ty == "cd" && mode == "rw" {
            e(out, 17, format!("{}: a CD VBD must be mode RO", vbd.what()));
        }
        if vbd.bool("empty") == Some(true) && ty != "cd" {
            e(out, 17, format!("{}: only CD VBDs may be empty", vbd.what()));
        }
        if let Some(vdi) = vdi {
            if mode == "rw" && vdi.bool("read_only") == Some(true) {
                e(out, 17, format!("{}: RW VBD on read-only VDI {}", vbd.what(), vdi.id));
            }
            if let Some(t) = vdi.enum_lc("type") {
                if matches!(t.as_str(), "ha_statefile" | "redo_log" | "cbt_metadata") {
                    e(out, 17, format!("{}: VBD.create refuses VDI {} of type {t}", vbd.what(), vdi.id));
                }
            }
        }
        if let Some(ud) = vbd.str("userdevice") {
            let ok = ud.parse::<u32>().ok().filter(|n| *n <= 254 && (ud == "0" || !ud.starts_with('0'))).is_some();
            if !ok && ud != "autodetect" {
                e(out, 17, format!("{}: userdevice {ud:?} is not a number 0..254", vbd.what()));
            }
            let vm = vbd.str("VM").unwrap_or("");
            if ok {
                if let Some(prev) = userdevices.insert((vm, ud.to_string()), vbd.id) {
                    e(out, 17, format!("{}: userdevice {ud} is already used by VBD {prev} of the same VM", vbd.what()));
                }
            }
        }
    }
    // Rules 19, 20.
    for vm in of_class("VM") {
        let what = vm.what();
        let m = |k| vm.int(k);
        if let (Some(smin), Some(dmin), Some(dmax), Some(smax)) =
            (m("memory_static_min"), m("memory_dynamic_min"), m("memory_dynamic_max"), m("memory_static_max"))
        {
            if !(smin <= dmin && dmin <= dmax && dmax <= smax) {
                w(out, 19, format!("{what}: memory must satisfy static_min <= dynamic_min <= dynamic_max <= static_max (MEMORY_CONSTRAINT_VIOLATION at VM.start)"));
            }
        }
        if let (Some(max), Some(start)) = (m("VCPUs_max"), m("VCPUs_at_startup")) {
            if max < 1 || start < 1 || start > max {
                w(out, 19, format!("{what}: need VCPUs_max >= 1 and 1 <= VCPUs_at_startup <= VCPUs_max"));
            }
        }
        if let Some(v) = vm.snap.get("HVM_shadow_multiplier") {
            let f = match v {
                Value::Double(d) => Some(*d),
                Value::Int(i) => Some(*i as f64),
                Value::String(s) => ocaml_float_of_string(s),
                _ => None,
            };
            if f.is_some_and(|f| f < 1.0) {
                w(out, 19, format!("{what}: HVM_shadow_multiplier must be >= 1"));
            }
        }
        let hvm = vm.str("HVM_boot_policy").is_some_and(|p| !p.is_empty());
        let crash = vm.enum_lc("actions_after_crash").unwrap_or_default();
        if crash == "rename_restart" || (hvm && crash.starts_with("coredump")) {
            w(out, 19, format!("{what}: actions_after_crash {crash} is rejected at VM.start"));
        }
        if let Some(dt) = vm.enum_lc("domain_type") {
            let consistent = match dt.as_str() {
                "hvm" => hvm,
                "pv" | "pvh" | "pv_in_pvh" => !hvm,
                _ => true,
            };
            if !consistent {
                w(
                    out,
                    20,
                    format!(
                        "{what}: domain_type {dt} does not match HVM_boot_policy {:?}",
                        vm.str("HVM_boot_policy").unwrap_or("")
                    ),
                );
            }
        }
        if !hvm {
            let bl = vm.str("PV_bootloader").unwrap_or("");
            let kernel = vm.str("PV_kernel").unwrap_or("");
            if !bl.is_empty() && !kernel.is_empty() {
                w(out, 20, format!("{what}: PV_bootloader is set, so PV_kernel {kernel:?} is ignored"));
            } else if bl.is_empty() && !kernel.is_empty() {
                w(out, 20, format!("{what}: direct kernel boot: {kernel:?} must exist on the host in its allowed directory (cannot be checked offline)"));
            } else if bl.is_empty() && kernel.is_empty() {
                w(out, 20, format!("{what}: PV guest with neither PV_bootloader nor PV_kernel cannot boot"));
            }
        }
    }
    // Rules 21, 22.
    for vif in of_class("VIF") {
        if vif.str("MAC").is_some_and(|m| !m.is_empty()) {
            w(out, 21, format!("{}: MAC is set but a normal import (restore=false) regenerates it", vif.what()));
        }
    }
    for net in of_class("network") {
        let nl = net.str("name_label").unwrap_or("");
        let br = net.str("bridge").unwrap_or("");
        if nl.is_empty() && br.is_empty() {
            w(
                out,
                22,
                format!(
                    "{}: neither name_label nor bridge is set; xapi will create a new internal network",
                    net.what()
                ),
            );
        }
    }
    // Rule 18: streamed set in read order.
    let mut streamed_ids: Vec<&str> = Vec::new();
    for vdi in of_class("VDI") {
        let by_vbd =
            of_class("VBD").any(|b| b.str("VDI") == Some(vdi.id) && b.enum_lc("type").is_some_and(|t| t != "cd"));
        let suspend = vdi.enum_lc("type").as_deref() == Some("suspend");
        let sr_ok = vdi
            .str("SR")
            .and_then(|sr| by_id.get(sr))
            .filter(|o| o.class == "SR")
            .is_some_and(|sr| sr.str("content_type") != Some("iso"));
        if (by_vbd || suspend) && sr_ok {
            streamed_ids.push(vdi.id);
        }
    }
    streamed_ids.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut streamed = Some(Vec::new());
    for id in streamed_ids {
        let Some(vdi) = by_id.get(id) else { continue };
        match vdi.int("virtual_size").and_then(|s| u64::try_from(s).ok()) {
            Some(vs) => {
                if let Some(s) = streamed.as_mut() {
                    s.push(StreamedDisk {
                        id: id.to_string(),
                        name_label: vdi.str("name_label").unwrap_or("").to_string(),
                        virtual_size: vs,
                    });
                }
            }
            None => {
                if vdi.int("virtual_size").is_some() {
                    e(out, 11, format!("{}: virtual_size is negative", vdi.what()));
                }
                streamed = None;
            }
        }
    }
    Some(Header { export_vsn, xapi_version, vm_names, streamed })
}
