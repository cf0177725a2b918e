//! VMware guest OS ids → OS family and name, for both spellings: the `.vmx` `guestOS` key
//! (`windows9srv-64`) and the vim guest id OVF carries (`windows9Server64Guest`). After
//! `vmware/open-vm-tools:open-vm-tools/lib/include/guest_os_tables.h` (`GUEST_OS_KEY_MAP`).
//! Matching is case-insensitive.

use super::model::{OsFamily, OsHint};

/// Maps a VMware guest id (either spelling) to an OS hint. Unknown ids give family `Other`.
pub fn vmware_os(id: &str) -> OsHint {
    let lower = id.trim().to_ascii_lowercase();
    let mut k = lower.as_str();
    k = k.strip_suffix("guest").unwrap_or(k);
    let bits64 = k.ends_with("64") || k.contains("-64") || k.contains("_64");
    for suf in ["-64", "_64", "64"] {
        if let Some(s) = k.strip_suffix(suf) {
            k = s;
            break;
        }
    }
    let k = k.trim_end_matches(['-', '_']);
    let windows = |name: &str| (OsFamily::Windows, name.to_string());
    let (family, name) = match k {
        "win31" => windows("Windows 3.1"),
        "win95" => windows("Windows 95"),
        "win98" => windows("Windows 98"),
        "winme" => windows("Windows Me"),
        "winnt" | "nt4" => windows("Windows NT"),
        k if k.starts_with("win2000") => windows("Windows 2000"),
        "winxphome" | "whistler" | "winxppro" => windows("Windows XP"),
        k if k.starts_with("winnet") => windows("Windows Server 2003"),
        "longhorn" | "winlonghorn" => windows("Windows Server 2008"),
        k if k.starts_with("winserver2008") => windows("Windows Server 2008"),
        k if k.starts_with("winvista") => windows("Windows Vista"),
        "windows7" => windows("Windows 7"),
        "windows7srv" | "windows7server" => windows("Windows Server 2008 R2"),
        "windows8" => windows("Windows 8"),
        "windows8srv" | "windows8server" => windows("Windows Server 2012"),
        "windows9" => windows("Windows 10"),
        "windows9srv" | "windows9server" => windows("Windows Server 2016"),
        "windows2019srv" => windows("Windows Server 2019"),
        "windows2019srvnext" => windows("Windows Server 2022"),
        "windows2022srvnext" => windows("Windows Server 2025"),
        "windows11" => windows("Windows 11"),
        "windows12" => windows("Windows 12"),
        "winhyperv" => windows("Hyper-V Server"),
        k if k.starts_with("win") => windows("Windows"),
        k if k.contains("freebsd") => (OsFamily::Bsd, titled("FreeBSD", k, "freebsd")),
        k if k.starts_with("solaris") => (OsFamily::Solaris, titled("Solaris", k, "solaris")),
        k => match linux_name(k) {
            Some(n) => (OsFamily::Linux, n),
            None => (OsFamily::Other, id.trim().to_string()),
        },
    };
    OsHint {
        source_id: id.trim().to_string(),
        family,
        name: if bits64 && family != OsFamily::Other { format!("{name} (64-bit)") } else { name },
        bits64,
    }
}

fn titled(base: &str, k: &str, prefix: &str) -> String {
    let v = k.strip_prefix(prefix).unwrap_or("").trim_matches(['-', '_']);
    if v.is_empty() {
        base.to_string()
    } else {
        format!("{base} {v}")
    }
}

fn linux_name(k: &str) -> Option<String> {
    const TABLE: &[(&str, &str)] = &[
        ("rhel", "Red Hat Enterprise Linux"),
        ("redhat", "Red Hat Linux"),
        ("centos", "CentOS"),
        ("oraclelinux", "Oracle Linux"),
        ("oracle", "Oracle Linux"),
        ("sles", "SUSE Linux Enterprise"),
        ("opensuse", "openSUSE"),
        ("suse", "SUSE Linux"),
        ("debian", "Debian"),
        ("ubuntu", "Ubuntu"),
        ("fedora", "Fedora"),
        ("mandrake", "Mandrake Linux"),
        ("mandriva", "Mandriva Linux"),
        ("asianux", "Asianux"),
        ("amazonlinux", "Amazon Linux"),
        ("almalinux", "AlmaLinux"),
        ("rockylinux", "Rocky Linux"),
        ("coreos", "CoreOS"),
        ("flatcar", "Flatcar"),
        ("vmware-photon", "VMware Photon OS"),
        ("vmwarephoton", "VMware Photon OS"),
        ("genericlinux", "Linux"),
        ("otherlinux", "Other Linux"),
    ];
    for (prefix, name) in TABLE {
        if let Some(rest) = k.strip_prefix(prefix) {
            let v = rest.trim_matches(['-', '_']);
            let v = v.strip_suffix("guest").unwrap_or(v);
            return Some(if v.is_empty() || !v.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                name.to_string()
            } else {
                format!("{name} {v}")
            });
        }
    }
    if k.starts_with("other") && k.ends_with("linux") || k == "linux" {
        return Some("Other Linux".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings() {
        for (id, fam, name) in [
            ("windows9srv-64", OsFamily::Windows, "Windows Server 2016 (64-bit)"),
            ("windows9Server64Guest", OsFamily::Windows, "Windows Server 2016 (64-bit)"),
            ("windows7srv-64", OsFamily::Windows, "Windows Server 2008 R2 (64-bit)"),
            ("windows7Server64Guest", OsFamily::Windows, "Windows Server 2008 R2 (64-bit)"),
            ("windows2019srvNext-64", OsFamily::Windows, "Windows Server 2022 (64-bit)"),
            ("WinXPPro", OsFamily::Windows, "Windows XP"),
            ("winNetEnterprise-64", OsFamily::Windows, "Windows Server 2003 (64-bit)"),
            ("rhel7-64", OsFamily::Linux, "Red Hat Enterprise Linux 7 (64-bit)"),
            ("ubuntu64Guest", OsFamily::Linux, "Ubuntu (64-bit)"),
            ("debian11_64Guest", OsFamily::Linux, "Debian 11 (64-bit)"),
            ("other26xlinux", OsFamily::Linux, "Other Linux"),
            ("freeBSD-64", OsFamily::Bsd, "FreeBSD (64-bit)"),
            ("dos", OsFamily::Other, "dos"),
        ] {
            let h = vmware_os(id);
            assert_eq!((h.family, h.name.as_str()), (fam, name), "{id}");
        }
    }
}
