//! Identity rules, without I/O: passwords, roles and what they may see.

pub mod password;
pub mod roles;
