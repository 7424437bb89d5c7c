//! TLS from an `http` listener to its backends (`backendTls`), through the
//! real binary against etcd with curl as the client: a backend behind a
//! TLS front with a certificate from a CA made here with openssl is
//! reached, verified by its address (IP SAN) or by `serverName`, and
//! probed over TLS; a certificate from another CA, or a `serverName` it
//! does not name, gets uc-lb's 502 naming the TLS failure; a new CA
//! bundle is picked up without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{certificate, curl, listener, port, Backend, Lb};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

/// A TLS front on 127.0.0.1 for a plain HTTP backend: each connection's
/// TLS terminated with `cert`/`key` and its bytes copied to `to`.
struct TlsFront {
    addr: SocketAddr,
    /// TLS sessions established (handshakes that succeeded).
    sessions: Arc<AtomicU64>,
}

impl TlsFront {
    fn start(to: SocketAddr, cert: &Path, key: &Path) -> TlsFront {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let sessions = Arc::new(AtomicU64::new(0));
        let counted = sessions.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    let (acceptor, counted) = (acceptor.clone(), counted.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        counted.fetch_add(1, Ordering::Relaxed);
                        let Ok(mut plain) = tokio::net::TcpStream::connect(to).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        TlsFront { addr, sessions }
    }
}

#[test]
fn backends_over_tls_are_verified_and_failures_named() {
    let lb = Lb::start("uc-lb-backend-tls", &[]);
    let dir = lb.dir.join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    certificate(&dir, "ca1", "one");
    certificate(&dir, "ca2", "two");
    let plain = Backend::http("a");
    let front = TlsFront::start(plain.addr, &dir.join("one.pem"), &dir.join("one.key"));
    let ca = |name: &str| dir.join(format!("{name}.pem"));
    let http_probe = json!({"type": "http", "path": "/health", "intervalSeconds": 1, "timeoutSeconds": 1, "rise": 1, "fall": 1});
    let put = |name: &str, tls: Value, health: Option<&Value>| {
        let p = port();
        let mut extra = json!({"backendTls": tls});
        if let Some(health) = health {
            extra["healthCheck"] = health.clone();
        }
        lb.put_listener(name, &listener("http", p, &[front.addr], extra));
        p
    };
    let get = |p: u16| curl(&["-m", "5", &format!("http://127.0.0.1:{p}/")]).unwrap();

    // Verified by its address (127.0.0.1 is in the certificate's IP
    // SANs); the HTTP probe speaks TLS too, or the backend would be down.
    let by_address = put(
        "by-address",
        json!({"enable": true, "caFile": ca("ca1"), "serverName": null}),
        Some(&http_probe),
    );
    lb.wait_backend("by-address", front.addr, "up", Duration::from_secs(5));
    let sessions = front.sessions.load(Ordering::Relaxed);
    for _ in 0..3 {
        assert_eq!(get(by_address), (200, "a xff=127.0.0.1 proto=http".into()));
    }
    let used = front.sessions.load(Ordering::Relaxed) - sessions;
    // One pooled connection for the requests; a probe may add one or two.
    assert!(
        used <= 3,
        "{used} TLS sessions for 3 requests: not kept alive"
    );

    // Verified by name.
    let by_name = put(
        "by-name",
        json!({"enable": true, "caFile": ca("ca1"), "serverName": "lb.test"}),
        None,
    );
    lb.wait_backend("by-name", front.addr, "up", Duration::from_secs(5));
    assert_eq!(get(by_name), (200, "a xff=127.0.0.1 proto=http".into()));

    // A certificate from another CA, and a name the certificate lacks:
    // 502 naming the failure (TCP probes: the backend stays up).
    let other_ca_file = dir.join("other-ca.pem");
    std::fs::copy(ca("ca2"), &other_ca_file).unwrap();
    let other_ca = put(
        "other-ca",
        json!({"enable": true, "caFile": other_ca_file, "serverName": null}),
        None,
    );
    let wrong_name = put(
        "wrong-name",
        json!({"enable": true, "caFile": ca("ca1"), "serverName": "other.test"}),
        None,
    );
    lb.wait_backend("other-ca", front.addr, "up", Duration::from_secs(5));
    lb.wait_backend("wrong-name", front.addr, "up", Duration::from_secs(5));
    let backend = front.addr;
    let (code, body) = get(other_ca);
    assert_eq!(code, 502, "{body}");
    // Both test CAs are named alike: the issuer is found by name and its
    // signature does not match (BadSignature, else UnknownIssuer).
    let prefix = format!("uc-lb: TLS to backend {backend} failed: invalid peer certificate");
    assert!(body.starts_with(&prefix), "{body}");
    let (code, body) = get(wrong_name);
    assert_eq!(code, 502, "{body}");
    assert!(
        body.contains(&format!("TLS to backend {backend} failed"))
            && body.contains("not valid for name")
            && body.contains("other.test"),
        "{body}"
    );
    let log = lb.log();
    assert!(log.contains("TLS to the backend failed"), "{log}");

    // The right CA written over the bundle: used for the next connection.
    std::fs::copy(ca("ca1"), dir.join("other-ca.new")).unwrap();
    std::fs::rename(dir.join("other-ca.new"), &other_ca_file).unwrap();
    uc_testkit::wait_for("the new CA bundle", Duration::from_secs(5), || {
        (get(other_ca).0 == 200).then_some(())
    });
    assert!(lb.log().contains("CA bundle reloaded"));
}
