//! Xen vif specs: `k=v,k=v` (xm `configure_vifs`, xl `parse_nic_config`).

use crate::guest::error::{GuestError, Result};
use crate::guest::model::{normalize_mac, Nic};

/// Parses a vif spec `k=v,k=v` (xm `configure_vifs`, xl `parse_nic_config`).
pub fn parse_vif(spec: &str) -> Result<Nic> {
    let mut nic = Nic { mac: None, network: None, model: None };
    for kv in spec.split(',') {
        let kv = kv.trim();
        if kv.is_empty() {
            continue;
        }
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let (k, v) = (k.trim(), v.trim());
        match k {
            "mac" => {
                nic.mac = Some(
                    normalize_mac(v)
                        .ok_or_else(|| GuestError::invalid(format!("vif {spec:?}: bad MAC address {v:?}")))?,
                )
            }
            "bridge" => nic.network = Some(v.to_string()),
            "model" => nic.model = Some(v.to_string()),
            "type" if nic.model.is_none() && v == "vif" => nic.model = Some("netfront".into()),
            _ => {}
        }
    }
    Ok(nic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vifs() {
        let n = parse_vif("mac=00:16:3E:01:02:03, bridge=xenbr0,model=e1000").unwrap();
        assert_eq!(n.mac.as_deref(), Some("00:16:3e:01:02:03"));
        assert_eq!(n.network.as_deref(), Some("xenbr0"));
        assert!(parse_vif("mac=zz").is_err());
        assert_eq!(parse_vif("").unwrap().mac, None);
    }
}
