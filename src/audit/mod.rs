//! The audit trail: the log writer, the verification of its MAC chain and `audit tail`.

mod log;
pub mod tail;

pub use log::*;
