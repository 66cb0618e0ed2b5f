//! TLS to PostgreSQL: `sslmode=require` encrypts every connection of the backend (writer,
//! readers, listener) and checks the server's certificate.

use mishkah_store::conformance;
use mishkah_store::Backend;
use mishkah_store_postgres::PostgresBackend;
use mishkah_test_support::postgres::tls_server;

#[test]
fn sslmode_require_connects_over_tls_to_a_server_whose_certificate_it_checks() {
    let (server, ca) = tls_server().unwrap_or_else(|why| panic!("a TLS PostgreSQL for the test: {why}"));
    let url = format!("{server}/postgres?sslmode=require");

    // The only test of this binary: no other thread reads the environment meanwhile.
    std::env::remove_var("PGSSLROOTCERT");
    let unknown_ca = PostgresBackend::new(&url).expect("a valid url").ping();
    assert!(
        unknown_ca.as_ref().is_err_and(|e| e.to_string().contains("certificate")),
        "a certificate no trusted root signed is refused: {unknown_ca:?}"
    );

    std::env::set_var("PGSSLROOTCERT", &ca);
    let backend = PostgresBackend::new(&url).expect("a valid url");
    backend.ping().expect("TLS with the CA of PGSSLROOTCERT");
    // Writes, reads and the log over TLS (the cluster admits nothing else).
    conformance::writes::a_refused_write_fails_alone(&backend);
    let plain = PostgresBackend::new(&format!("{server}/postgres?sslmode=disable")).expect("a valid url");
    assert!(plain.ping().is_err(), "the test cluster refuses connections in the clear");
}
