//! XML-RPC: the value tree, its writer, and the two readers over one lexer. A leaf: it imports
//! nothing else from the crate, so the XVA code (`ova.xml`) and the XenAPI client share it.
//!
//! ```text
//!   value.rs   Value and its serializer (ova.xml, methodCall bodies)
//!   lexer.rs   the one XML scanner (Xmlm signals: start, end, data), total, depth-capped
//!   parse.rs   ocaml-rpc's parser, quirks included: how xapi reads ova.xml (+ Notes)
//!   method.rs  methodCall / methodResponse and the XenAPI envelope: how the client reads replies
//! ```

mod lexer;
pub mod method;
pub mod parse;
pub mod value;

pub use method::{CallError, MalformedResponse, XapiError};
pub use value::Value;
