//! Identity rules, without I/O: passwords, roles and what they may see.

pub mod login_guard;
pub mod password;
pub mod roles;
