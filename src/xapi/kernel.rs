//! Direct-kernel PV guests: where a host boots dom0 kernels from, and copying them there with
//! the system's OpenSSH client.
//!
//! ```text
//!   host.get_software_version(master)["xapi_build" | "xapi"] ─► XapiVersion ─► kernel_dir
//!     < 23.9: /boot/guest/     ≥ 23.9: /var/lib/xcp/guest/ (the only one from 24.20)
//!   Remote: ssh USER@HOST mkdir -p DIR; scp LOCAL USER@HOST:DIR/NAME; on failure rm + rmdir
//! ```
//! xapi boots a `PV_kernel` only from its allowed directories (`xva-format-and-xapi-import.md`
//! §7.7 #8, `target-profiles.md` §1.5 #4). ssh and scp are the user's own: their agent, keys,
//! `~/.ssh/config` and known_hosts apply; no password is ever given to them (they run with
//! `BatchMode=yes`, so they fail instead of prompting).

use std::ffi::OsString;
use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::session::Session;
use super::Error;
use crate::xmlrpc::Value;

/// The guest-kernel directory of current xapi (the only one accepted from 24.20.0).
pub const CURRENT_DIR: &str = "/var/lib/xcp/guest";
/// The guest-kernel directory of xapi before 23.9.0 (refused from 24.20.0).
pub const OLD_DIR: &str = "/boot/guest";
/// File name of the kernel inside the VM's directory.
pub const KERNEL_NAME: &str = "vmlinuz";
/// File name of the ramdisk inside the VM's directory.
pub const RAMDISK_NAME: &str = "initrd";

/// A host's xapi version (`software_version`'s `xapi_build`, or `xapi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct XapiVersion {
    /// Major (1 up to Citrix Hypervisor 8.2 / XCP-ng 8.2; the year-based 23, 24, … after).
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch (0 when not given).
    pub patch: u32,
}

impl XapiVersion {
    /// Parses `MAJOR.MINOR[.PATCH…]` (anything after the third number is ignored).
    pub fn parse(s: &str) -> Option<XapiVersion> {
        let mut it = s.trim().split(['.', '-']);
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = it.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(XapiVersion { major, minor, patch })
    }

    /// The directory this xapi boots direct kernels from. Both directories are accepted from
    /// 23.9.0 to 24.19.x, only the new one from 24.20.0, so the new one is used from 23.9 on (it
    /// keeps working after the host is updated).
    pub fn kernel_dir(self) -> &'static str {
        if (self.major, self.minor) >= (23, 9) {
            CURRENT_DIR
        } else {
            OLD_DIR
        }
    }

    /// False for XenServer 8 / XCP-ng 8.3 (year-based xapi): their Xen has no 32-bit PV and no
    /// shadow paging, so PV guests do not start at all (`target-profiles.md` §1.5 #3).
    pub fn runs_pv(self) -> bool {
        self.major < 23
    }
}

impl fmt::Display for XapiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Session {
    /// The pool master's xapi version, or `None` if its `software_version` names none.
    pub fn xapi_version(&self) -> Result<Option<XapiVersion>, Error> {
        let pool = self.pool()?;
        let master = self.call_str("pool.get_master", &[Value::str(&pool)])?;
        let sv = self.call("host.get_software_version", &[Value::str(&master)])?;
        Ok(["xapi_build", "xapi"].iter().filter_map(|k| sv.get(k).and_then(Value::as_str)).find_map(XapiVersion::parse))
    }
}

/// True for an absolute path made of `[A-Za-z0-9._+-]` components, none of them `.` or `..`:
/// safe on a remote shell's command line and in scp's remote syntax without quoting.
pub fn is_safe_remote_path(p: &str) -> bool {
    p.starts_with('/')
        && p.split('/').skip(1).all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '+' | '-'))
        })
}

/// `s` quoted for a POSIX shell (for commands shown to the user).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A host reached with the system's `ssh` and `scp`.
#[derive(Clone, Debug)]
pub struct Remote {
    /// Login name.
    pub user: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Environment variables removed from the children (the password's).
    pub scrub_env: Vec<String>,
}

/// A command to run: its argv (program first) and how it is shown to the user (paste-able,
/// without the non-interactive options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    /// Program and arguments.
    pub argv: Vec<OsString>,
    /// The command as shown.
    pub shown: String,
}

/// Options given to both ssh and scp: never prompt, do not wait forever for a dead host.
const SSH_OPTS: [&str; 4] = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=30"];

impl Remote {
    /// `USER@HOST`, as ssh takes it.
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// `USER@HOST:PATH` (`USER@[V6]:PATH`), as scp takes it.
    pub fn scp_target(&self, remote: &str) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{remote}", self.user, self.host)
        } else {
            format!("{}@{}:{remote}", self.user, self.host)
        }
    }

    /// `ssh … USER@HOST COMMAND…`: the remote command's words must be safe (see
    /// [`is_safe_remote_path`]); the remote shell joins them.
    pub fn ssh(&self, command: &[&str]) -> Cmd {
        let mut argv: Vec<OsString> = ["ssh"].iter().chain(&SSH_OPTS).map(OsString::from).collect();
        argv.push("--".into());
        argv.push(self.destination().into());
        argv.extend(command.iter().map(OsString::from));
        let shown = format!("ssh {} {}", shell_quote(&self.destination()), command.join(" "));
        Cmd { argv, shown }
    }

    /// `scp … -- LOCAL USER@HOST:REMOTE`. `local` must be absolute (a relative name with a
    /// colon would be taken for a host).
    pub fn scp(&self, local: &Path, remote: &str) -> Cmd {
        let mut argv: Vec<OsString> = ["scp", "-q"].iter().chain(&SSH_OPTS).map(OsString::from).collect();
        argv.push("--".into());
        argv.push(local.as_os_str().to_owned());
        argv.push(self.scp_target(remote).into());
        let shown = format!("scp {} {}", shell_quote(&local.to_string_lossy()), shell_quote(&self.scp_target(remote)));
        Cmd { argv, shown }
    }

    /// Runs `argv` (stdin closed, output captured); `Err` says what failed, with the command's
    /// own complaint.
    pub fn run(&self, cmd: &Cmd) -> Result<(), String> {
        let (prog, args) = cmd.argv.split_first().ok_or("empty command")?;
        let mut child = Command::new(prog);
        child.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for k in &self.scrub_env {
            child.env_remove(k);
        }
        let out = child.output().map_err(|e| format!("cannot run {}: {e}", prog.to_string_lossy()))?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = said.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let tail = said[said.len().saturating_sub(3)..].join(" / ");
        let status = match out.status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        Err(if tail.is_empty() {
            format!("`{}` {status}", cmd.shown)
        } else {
            format!("`{}` {status}: {tail}", cmd.shown)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_directories() {
        let v = |s| XapiVersion::parse(s).unwrap();
        assert_eq!(v("24.39.1"), XapiVersion { major: 24, minor: 39, patch: 1 });
        assert_eq!(v("1.20"), XapiVersion { major: 1, minor: 20, patch: 0 });
        assert_eq!(XapiVersion::parse("xapi"), None);
        assert_eq!(XapiVersion::parse("24"), None);
        assert_eq!(v("1.249.41").kernel_dir(), OLD_DIR);
        assert_eq!(v("23.8.0").kernel_dir(), OLD_DIR);
        assert_eq!(v("23.9.0").kernel_dir(), CURRENT_DIR);
        assert_eq!(v("24.19.2").kernel_dir(), CURRENT_DIR);
        assert_eq!(v("25.33").kernel_dir(), CURRENT_DIR);
        assert!(v("1.249").runs_pv() && !v("24.19.2").runs_pv());
    }

    #[test]
    fn remote_paths_and_commands() {
        assert!(is_safe_remote_path("/var/lib/xcp/guest/0bd07c9e-4c33/vmlinuz"));
        for bad in ["var/lib", "/a/../b", "/a b", "/a;rm", "/a//b", "/a/", "/$(x)", "/a/./b"] {
            assert!(!is_safe_remote_path(bad), "{bad}");
        }
        assert_eq!(shell_quote("/boot/vmlinuz"), "/boot/vmlinuz");
        assert_eq!(shell_quote("/my boot/it's"), r"'/my boot/it'\''s'");
        let r = Remote { user: "root".into(), host: "::1".into(), scrub_env: vec![] };
        assert_eq!(r.scp_target("/x"), "root@[::1]:/x");
        let r = Remote { user: "root".into(), host: "xs1".into(), scrub_env: vec![] };
        let c = r.scp(Path::new("/k ernel"), "/var/lib/xcp/guest/u/vmlinuz");
        assert_eq!(c.argv.first().unwrap(), "scp");
        assert_eq!(c.argv[c.argv.len() - 3], "--");
        assert_eq!(c.argv[c.argv.len() - 2], "/k ernel");
        assert_eq!(c.shown, "scp '/k ernel' root@xs1:/var/lib/xcp/guest/u/vmlinuz");
        let c = r.ssh(&["mkdir", "-p", "/d"]);
        assert_eq!(c.argv[c.argv.len() - 4..], ["root@xs1", "mkdir", "-p", "/d"]);
        assert_eq!(c.shown, "ssh root@xs1 mkdir -p /d");
    }
}
