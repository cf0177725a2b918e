//! Where the files an image names may be: backing files, VMDK extents, VHD parent locators.
//!
//! Disk images come from elsewhere, and a name inside one is untrusted input: a qcow2 whose
//! backing file is `/etc/shadow`, or a VMDK extent `../../other-vm/disk.vmdk`, must not be read
//! just because the image says so. By default a name must resolve (after following symlinks) to
//! a file inside the directory of the image that names it; absolute names and names that
//! climb out with `..` are refused unless the user allows a directory or any path. Chains are
//! limited in depth, and a file that appears twice in one chain is a loop.

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Default maximum number of layers under the top image.
pub const DEFAULT_MAX_DEPTH: u32 = 16;

/// The rules for implicit references. [`OpenPolicy::default`] is the safe default.
#[derive(Clone, Debug)]
pub struct OpenPolicy {
    /// Any path at all may be opened (`--allow-any-path`).
    pub allow_any: bool,
    /// Extra directories references may point into, absolute or with `..` (`--allow-path DIR`).
    pub allowed_dirs: Vec<PathBuf>,
    /// Maximum chain depth below the top image.
    pub max_depth: u32,
    /// Read chains whose parent is not the one the child expects: a VMDK `parentCID` that does
    /// not match the parent's `CID`, and the like for other formats (`--ignore-parent-mismatch`,
    /// formerly `--ignore-cid`); by default such a chain is refused. See [`crate::parent`].
    pub ignore_parent_mismatch: bool,
    /// Read images whose format marks their metadata as possibly inconsistent (the qcow2
    /// corrupt bit) (`--allow-corrupt`); by default they are refused.
    pub allow_corrupt: bool,
}

impl Default for OpenPolicy {
    fn default() -> OpenPolicy {
        OpenPolicy {
            allow_any: false,
            allowed_dirs: Vec::new(),
            max_depth: DEFAULT_MAX_DEPTH,
            ignore_parent_mismatch: false,
            allow_corrupt: false,
        }
    }
}

const HOW_TO_ALLOW: &str = "references must stay in the image's own directory; \
     pass --allow-path DIR (or --allow-any-path) to allow more";

impl OpenPolicy {
    /// Resolves `name`, found in `referrer` as its `what` (e.g. "backing file"), to a path that
    /// may be opened, or refuses with an error that names the file and the rule.
    pub fn resolve(&self, referrer: &Path, name: &str, what: &str) -> Result<PathBuf> {
        let refuse = |rule: &str| {
            Error::new(ErrorKind::RefusedReference, format!("{what} {name:?} refused: {rule}; {HOW_TO_ALLOW}"))
                .with_path(referrer)
        };
        if name.is_empty() {
            return Err(Error::invalid(format!("{what} has an empty name")).with_path(referrer));
        }
        if name.contains('\0') {
            return Err(Error::invalid(format!("{what} name contains a NUL byte")).with_path(referrer));
        }
        let dir = referrer.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let candidate = Path::new(name);
        let joined = if candidate.is_absolute() { candidate.to_path_buf() } else { dir.join(candidate) };
        let canonical = joined.canonicalize().map_err(|e| {
            Error::new(ErrorKind::MissingFile, format!("{what} {name:?} not found at {}", joined.display()))
                .with_source(e)
                .with_path(referrer)
        })?;
        if self.allow_any {
            return Ok(canonical);
        }
        let inside = |base: &Path| base.canonicalize().map(|b| canonical.starts_with(b)).unwrap_or(false);
        if self.allowed_dirs.iter().any(|d| inside(d)) {
            return Ok(canonical);
        }
        if candidate.is_absolute() {
            return Err(refuse("it is an absolute path"));
        }
        if candidate.components().any(|c| c == Component::ParentDir) {
            return Err(refuse("it climbs out of the directory with '..'"));
        }
        if !inside(dir) {
            return Err(refuse(&format!(
                "it resolves to {} (through a symbolic link), outside the directory",
                canonical.display()
            )));
        }
        Ok(canonical)
    }
}

/// The state of one chain being opened: depth and the files already in it.
#[derive(Clone, Debug)]
pub struct OpenCtx<'p> {
    /// The rules.
    pub policy: &'p OpenPolicy,
    /// Depth of the image being opened (0 = the image the user named).
    pub depth: u32,
    /// Canonical paths of the images above this one in the chain (loop detection).
    pub ancestors: Vec<PathBuf>,
}

impl<'p> OpenCtx<'p> {
    /// The context for the image the user named.
    pub fn new(policy: &'p OpenPolicy) -> OpenCtx<'p> {
        OpenCtx { policy, depth: 0, ancestors: Vec::new() }
    }

    /// The context for the parent of the image at `child` (its canonical path is recorded);
    /// errors when the depth limit is reached.
    pub fn descend(&self, child: &Path) -> Result<OpenCtx<'p>> {
        if self.depth + 1 > self.policy.max_depth {
            return Err(Error::new(
                ErrorKind::RefusedReference,
                format!("chain is deeper than {} layers", self.policy.max_depth),
            )
            .with_path(child));
        }
        let mut ancestors = self.ancestors.clone();
        ancestors.push(child.canonicalize().unwrap_or_else(|_| child.to_path_buf()));
        Ok(OpenCtx { policy: self.policy, depth: self.depth + 1, ancestors })
    }

    /// Errors if `candidate` (canonical) is already part of this chain.
    pub fn check_loop(&self, candidate: &Path, referrer: &Path) -> Result<()> {
        if self.ancestors.iter().any(|a| a == candidate) || candidate == referrer.canonicalize().unwrap_or_default() {
            return Err(Error::new(
                ErrorKind::RefusedReference,
                format!("chain loop: {} is already part of this chain", candidate.display()),
            )
            .with_path(referrer));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let vm = t.path().join("vm");
        fs::create_dir(&vm).unwrap();
        fs::create_dir(vm.join("sub")).unwrap();
        fs::write(vm.join("top.img"), b"x").unwrap();
        fs::write(vm.join("base.img"), b"x").unwrap();
        fs::write(vm.join("sub/deep.img"), b"x").unwrap();
        fs::write(t.path().join("outside.img"), b"x").unwrap();
        std::os::unix::fs::symlink(t.path().join("outside.img"), vm.join("link.img")).unwrap();
        (t, vm)
    }

    #[test]
    fn same_directory_and_subdirectories_are_allowed() {
        let (_t, vm) = setup();
        let p = OpenPolicy::default();
        let top = vm.join("top.img");
        assert!(p.resolve(&top, "base.img", "backing file").unwrap().ends_with("vm/base.img"));
        assert!(p.resolve(&top, "sub/deep.img", "extent").unwrap().ends_with("sub/deep.img"));
    }

    #[test]
    fn escapes_are_refused_with_the_rule() {
        let (t, vm) = setup();
        let p = OpenPolicy::default();
        let top = vm.join("top.img");
        let abs = t.path().join("outside.img");
        let e = p.resolve(&top, abs.to_str().unwrap(), "backing file").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RefusedReference);
        assert!(e.to_string().contains("absolute path"), "{e}");
        assert!(e.to_string().contains("top.img"), "{e}");
        let e = p.resolve(&top, "../outside.img", "extent").unwrap_err();
        assert!(e.to_string().contains(".."), "{e}");
        let e = p.resolve(&top, "link.img", "extent").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = p.resolve(&top, "/etc/passwd", "backing file").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RefusedReference);
    }

    #[test]
    fn user_can_allow_more() {
        let (t, vm) = setup();
        let top = vm.join("top.img");
        let p = OpenPolicy { allowed_dirs: vec![t.path().to_path_buf()], ..Default::default() };
        assert!(p.resolve(&top, "../outside.img", "extent").is_ok());
        assert!(p.resolve(&top, "/etc/passwd", "backing file").is_err());
        let p = OpenPolicy { allow_any: true, ..Default::default() };
        assert!(p.resolve(&top, "/etc/passwd", "backing file").is_ok());
    }

    #[test]
    fn missing_files_and_loops_and_depth() {
        let (_t, vm) = setup();
        let p = OpenPolicy { max_depth: 2, ..Default::default() };
        let top = vm.join("top.img");
        let e = p.resolve(&top, "nope.img", "backing file").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingFile);
        let ctx = OpenCtx::new(&p);
        let c1 = ctx.descend(&top).unwrap();
        assert!(c1.check_loop(&top.canonicalize().unwrap(), &vm.join("base.img")).is_err());
        assert!(ctx.check_loop(&top.canonicalize().unwrap(), &top).is_err(), "self-reference");
        assert!(c1.check_loop(&vm.join("base.img").canonicalize().unwrap(), &top).is_ok());
        let c2 = c1.descend(&vm.join("base.img")).unwrap();
        assert!(c2.descend(&vm.join("sub/deep.img")).is_err());
    }
}
