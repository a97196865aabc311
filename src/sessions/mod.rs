//! Sessions: who is logged in, until when.

mod memory;

pub use memory::*;
