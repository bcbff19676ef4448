//! The SQL migrations are embedded at compile time (`refinery::embed_migrations!` in
//! src/storage/mod.rs), which Cargo cannot see: without this, adding or editing a file
//! under migrations/ left an incremental build with the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
