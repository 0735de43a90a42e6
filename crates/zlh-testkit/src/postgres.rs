//! Databases on the tests' PostgreSQL (`cargo xtask test` starts it and says where in
//! `ZLH_TEST_POSTGRES`): a fresh one per test, made with Debian's `psql`.

use std::process::Command;

/// The URL of a new, empty database of the tests' PostgreSQL.
pub fn fresh_database() -> String {
    let server = std::env::var("ZLH_TEST_POSTGRES").expect(
        "this test needs the tests' PostgreSQL: run `cargo xtask test`, or `eval \"$(cargo xtask fixtures)\"` first",
    );
    fresh_database_on(&server)
}

/// The URL of a new, empty database on the PostgreSQL server at `server` (no database named).
pub fn fresh_database_on(server: &str) -> String {
    let name = format!("zlh_test_{}", crate::random_hex(8));
    let output = Command::new("psql")
        .arg(format!("{server}/postgres"))
        .args(["-v", "ON_ERROR_STOP=1", "-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs");
    assert!(output.status.success(), "CREATE DATABASE: {}", String::from_utf8_lossy(&output.stderr));
    format!("{server}/{name}")
}
