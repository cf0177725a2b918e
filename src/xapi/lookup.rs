//! Finding the objects an import needs (pool default SR, an SR by name or uuid, the management
//! network) and acting on the imported VM (uuid, start, destroy with its disks).

use super::session::Session;
use super::Error;
use crate::xmlrpc::Value;

/// The null reference.
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// An SR chosen for the import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sr {
    /// Reference.
    pub reference: String,
    /// UUID.
    pub uuid: String,
    /// Name.
    pub name: String,
}

/// A network, by the fields xapi's importer matches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// `name_label`.
    pub name: String,
    /// `bridge`.
    pub bridge: String,
}

/// True for the 8-4-4-4-12 hex form.
pub fn looks_like_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Session {
    /// The pool (there is exactly one per master).
    pub fn pool(&self) -> Result<String, Error> {
        self.call_strs("pool.get_all", &[])?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("pool.get_all returned no pool".into()))
    }

    /// The pool's default SR, or `None` when it has none.
    pub fn default_sr(&self) -> Result<Option<Sr>, Error> {
        let pool = self.pool()?;
        let r = self.call_str("pool.get_default_SR", &[Value::str(&pool)])?;
        if r.is_empty() || r == NULL_REF {
            return Ok(None);
        }
        self.sr(&r).map(Some)
    }

    /// The SR `reference`, checked to be usable for an import (not an ISO library).
    pub fn sr(&self, reference: &str) -> Result<Sr, Error> {
        let r = Value::str(reference);
        let uuid = self.call_str("SR.get_uuid", std::slice::from_ref(&r))?;
        let name = self.call_str("SR.get_name_label", std::slice::from_ref(&r))?;
        let content = self.call_str("SR.get_content_type", std::slice::from_ref(&r))?;
        if content == "iso" {
            return Err(Error::Lookup(format!(
                "SR {name:?} ({uuid}) is an ISO library; disks cannot be imported into it"
            )));
        }
        Ok(Sr { reference: reference.to_string(), uuid, name })
    }

    /// An SR by uuid or by name (a unique name is required).
    pub fn find_sr(&self, name_or_uuid: &str) -> Result<Sr, Error> {
        if looks_like_uuid(name_or_uuid) {
            match self.call_str("SR.get_by_uuid", &[Value::str(name_or_uuid)]) {
                Ok(r) => return self.sr(&r),
                Err(e) if e.code() == Some("UUID_INVALID") => {}
                Err(e) => return Err(e),
            }
        }
        let refs = self.call_strs("SR.get_by_name_label", &[Value::str(name_or_uuid)])?;
        match refs.as_slice() {
            [] => Err(Error::Lookup(format!("the host has no SR named {name_or_uuid:?} (give a name or a uuid)"))),
            [one] => self.sr(one),
            many => {
                let uuids: Vec<String> = many
                    .iter()
                    .map(|r| self.call_str("SR.get_uuid", &[Value::str(r)]).unwrap_or_else(|_| r.clone()))
                    .collect();
                Err(Error::Lookup(format!(
                    "{} SRs are named {name_or_uuid:?}; pick one by uuid: {}",
                    many.len(),
                    uuids.join(", ")
                )))
            }
        }
    }

    /// The network called `name`, if exactly one is.
    pub fn find_network(&self, name: &str) -> Result<Network, Error> {
        let refs = self.call_strs("network.get_by_name_label", &[Value::str(name)])?;
        match refs.as_slice() {
            [one] => self.network(one),
            [] => Err(Error::Lookup(format!(
                "the host has no network named {name:?}; xapi would create a new internal network for it"
            ))),
            many => Err(Error::Lookup(format!("{} networks are named {name:?}", many.len()))),
        }
    }

    fn network(&self, reference: &str) -> Result<Network, Error> {
        let r = [Value::str(reference)];
        Ok(Network {
            name: self.call_str("network.get_name_label", &r)?,
            bridge: self.call_str("network.get_bridge", &r)?,
        })
    }

    /// The network of the pool master's management interface, if it has one.
    pub fn management_network(&self) -> Result<Option<Network>, Error> {
        let pool = self.pool()?;
        let master = self.call_str("pool.get_master", &[Value::str(&pool)])?;
        for pif in self.call_strs("host.get_PIFs", &[Value::str(&master)])? {
            let p = [Value::str(&pif)];
            if matches!(self.call("PIF.get_management", &p)?, Value::Bool(true)) {
                let net = self.call_str("PIF.get_network", &p)?;
                return self.network(&net).map(Some);
            }
        }
        Ok(None)
    }

    /// `VM.get_uuid`.
    pub fn vm_uuid(&self, vm: &str) -> Result<String, Error> {
        self.call_str("VM.get_uuid", &[Value::str(vm)])
    }

    /// `VM.start(vm, start_paused = false, force = false)`.
    pub fn vm_start(&self, vm: &str) -> Result<(), Error> {
        self.call("VM.start", &[Value::str(vm), Value::Bool(false), Value::Bool(false)]).map(|_| ())
    }

    /// VMs whose `other_config:import_task` is `task` (what a failed import may have left).
    pub fn vms_of_import(&self, task: &str) -> Result<Vec<String>, Error> {
        let all = self.call("VM.get_all_records", &[])?;
        let Value::Struct(records) = all else {
            return Err(Error::Protocol("VM.get_all_records did not return a map".into()));
        };
        Ok(records
            .into_iter()
            .filter(|(_, rec)| {
                rec.get("other_config").and_then(|o| o.get("import_task")).and_then(Value::as_str) == Some(task)
            })
            .map(|(r, _)| r)
            .collect())
    }

    /// Destroys `vm` and the disks (VDIs of its `Disk` VBDs). Returns what could not be destroyed.
    pub fn vm_destroy_with_disks(&self, vm: &str) -> Vec<String> {
        let mut left = Vec::new();
        let mut vdis = Vec::new();
        match self.call_strs("VM.get_VBDs", &[Value::str(vm)]) {
            Ok(vbds) => {
                for vbd in vbds {
                    let b = [Value::str(&vbd)];
                    if self.call_str("VBD.get_type", &b).is_ok_and(|t| t == "Disk") {
                        match self.call_str("VBD.get_VDI", &b) {
                            Ok(vdi) if vdi != NULL_REF => vdis.push(vdi),
                            Ok(_) => {}
                            Err(e) => left.push(format!("a disk of VM {vm} ({})", super::full_message(&e))),
                        }
                    }
                }
            }
            Err(e) => left.push(format!("the disks of VM {vm} ({})", super::full_message(&e))),
        }
        if let Err(e) = self.call("VM.destroy", &[Value::str(vm)]) {
            left.push(format!("VM {vm} ({})", super::full_message(&e)));
        }
        for vdi in vdis {
            if let Err(e) = self.call("VDI.destroy", &[Value::str(&vdi)]) {
                left.push(format!("VDI {vdi} ({})", super::full_message(&e)));
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert!(looks_like_uuid("0bd07c9e-4c33-4f0a-8e7e-0a5c4a4b3e0e"));
        assert!(!looks_like_uuid("Local storage"));
        assert!(!looks_like_uuid("0bd07c9e-4c33-4f0a-8e7e-0a5c4a4b3e0"));
    }
}
