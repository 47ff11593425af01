// `sqlx::migrate!` embeds the migrations at compile time but cannot tell
// Cargo to watch the folder on stable Rust: a new migration file must
// rebuild the crate.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
