//! xapi tasks: the only trustworthy record of whether an import worked.
//!
//! xapi answers `PUT /import` with `200` before it reads a byte, so success is judged by the
//! task we created and passed as `task_id`: status `success` and a VM reference in its result
//! (`xva-format-and-xapi-import.md` §8.1, §10). The creator must destroy its tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::session::{short, Session};
use super::Error;
use crate::xmlrpc::Value;

/// `task.get_status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Still running.
    Pending,
    /// Finished; the result is in `task.get_result`.
    Success,
    /// Failed; the error is in `task.get_error_info`.
    Failure,
    /// Being cancelled.
    Cancelling,
    /// Cancelled.
    Cancelled,
    /// Something this client does not know.
    Other(String),
}

impl Status {
    fn parse(s: &str) -> Status {
        match s {
            "pending" => Status::Pending,
            "success" => Status::Success,
            "failure" => Status::Failure,
            "cancelling" => Status::Cancelling,
            "cancelled" => Status::Cancelled,
            other => Status::Other(other.to_string()),
        }
    }

    /// True once the task will not change any more.
    pub fn is_final(&self) -> bool {
        !matches!(self, Status::Pending | Status::Cancelling)
    }
}

/// Task calls on a session.
impl Session {
    /// `task.create(label, description)`.
    pub fn task_create(&self, label: &str, description: &str) -> Result<String, Error> {
        self.call_str("task.create", &[Value::str(label), Value::str(description)])
    }

    /// `task.get_status`.
    pub fn task_status(&self, task: &str) -> Result<Status, Error> {
        Ok(Status::parse(&self.call_str("task.get_status", &[Value::str(task)])?))
    }

    /// `task.get_progress`, 0..=1.
    pub fn task_progress(&self, task: &str) -> Result<f64, Error> {
        match self.call("task.get_progress", &[Value::str(task)])? {
            Value::Double(d) => Ok(d),
            Value::Int(i) => Ok(i as f64),
            Value::String(s) => s.trim().parse().map_err(|_| Error::Protocol(format!("task progress {s:?}"))),
            other => Err(Error::Protocol(format!("task.get_progress returned {}", short(&other.to_xml())))),
        }
    }

    /// `task.get_result`: an XML-RPC value serialized into a string.
    pub fn task_result(&self, task: &str) -> Result<String, Error> {
        self.call_str("task.get_result", &[Value::str(task)])
    }

    /// `task.get_error_info`: `[code, params…]`.
    pub fn task_error_info(&self, task: &str) -> Result<Vec<String>, Error> {
        self.call_strs("task.get_error_info", &[Value::str(task)])
    }

    /// `task.cancel`.
    pub fn task_cancel(&self, task: &str) -> Result<(), Error> {
        self.call("task.cancel", &[Value::str(task)]).map(|_| ())
    }

    /// `task.destroy`.
    pub fn task_destroy(&self, task: &str) -> Result<(), Error> {
        self.call("task.destroy", &[Value::str(task)]).map(|_| ())
    }

    /// Polls `task` every `interval` until it is final, reporting progress (0..=1). Returns
    /// [`Error::Cancelled`] when `cancel` is set, and gives up after `limit` if one is given.
    pub fn task_wait(
        &self,
        task: &str,
        interval: Duration,
        limit: Option<Duration>,
        cancel: Option<&AtomicBool>,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Status, Error> {
        let started = std::time::Instant::now();
        loop {
            let status = self.task_status(task)?;
            if status.is_final() {
                return Ok(status);
            }
            if let Ok(p) = self.task_progress(task) {
                progress(p.clamp(0.0, 1.0));
            }
            if limit.is_some_and(|l| started.elapsed() >= l) {
                return Ok(status);
            }
            // Sleep in small steps so Ctrl-C is noticed at once.
            let until = std::time::Instant::now() + interval;
            while std::time::Instant::now() < until {
                if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(Error::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The references in an import task's result: `<value><array><data><value>OpaqueRef:…`
/// (xapi serializes the set of new VMs into the result string). A bare reference is accepted.
pub fn result_refs(result: &str) -> Vec<String> {
    let t = result.trim();
    if t.starts_with("OpaqueRef:") {
        return vec![t.to_string()];
    }
    let Ok(value) = crate::xmlrpc::method::parse_value(t) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_refs(&value, &mut out);
    out
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with("OpaqueRef:") && s != "OpaqueRef:NULL" => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_results() {
        assert_eq!(
            result_refs("<value><array><data><value>OpaqueRef:c1</value></data></array></value>"),
            ["OpaqueRef:c1"]
        );
        assert_eq!(result_refs("OpaqueRef:x"), ["OpaqueRef:x"]);
        assert!(result_refs("").is_empty());
        assert!(result_refs("<value><array><data/></array></value>").is_empty());
        assert!(result_refs("<value>OpaqueRef:NULL</value>").is_empty());
        assert!(result_refs("<value><array>").is_empty());
        assert_eq!(Status::parse("pending"), Status::Pending);
        assert!(Status::parse("success").is_final());
        assert!(!Status::parse("cancelling").is_final());
    }
}
