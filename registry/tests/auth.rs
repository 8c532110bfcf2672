//! Authentication, TLS and retries: htpasswd Basic auth with credentials from a docker
//! config, Bearer tokens from a token server (with a mount's source scope), a registry
//! behind a self-signed certificate, and a fake server that fails on purpose.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_registry::{AuthFiles, BlobDir, Client, Error, Options, Reference};
use support::{Auth, Layout, PASSWORD, Registry, docker_config, noise};

#[test]
fn basic_auth_needs_credentials_and_takes_them_from_docker_config() {
    let registry = Registry::start_with(Auth::Htpasswd, false);
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(20, 2000)]);
    let target = registry.reference("private/app:1");

    let anonymous = registry.client();
    let err = anonymous
        .push(&layout.blobs(), &image.manifest, &target, None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unauthorized {
                credentials: None,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "registry {} requires authentication",
            registry.host()
        )),
        "{err}"
    );

    let wrong = Client::new(Options {
        auth_files: AuthFiles::docker_config(docker_config(
            &tmp.path().join("wrong"),
            &registry.host(),
            "nope",
        )),
        ..registry.options()
    })
    .unwrap();
    let err = wrong
        .pull(&target, &BlobDir::new(tmp.path().join("x")))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unauthorized {
                credentials: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("refused the credentials from"),
        "{err}"
    );

    let config = docker_config(tmp.path(), &registry.host(), PASSWORD);
    let client = Client::new(Options {
        auth_files: AuthFiles::docker_config(&config),
        ..registry.options()
    })
    .unwrap();
    let report = client
        .push(&layout.blobs(), &image.manifest, &target, None)
        .unwrap();
    assert_eq!(report.uploaded, 2);
    let pulled = client
        .pull(&target, &BlobDir::new(tmp.path().join("pulled")))
        .unwrap();
    assert_eq!(pulled.manifest.digest, image.manifest.digest);
    // skopeo with the same file agrees the image is there.
    let url = format!("docker://{}/private/app:1", registry.host());
    let authfile = config.join("config.json");
    let digest = support::skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--authfile",
        authfile.to_str().unwrap(),
        "--format",
        "{{.Digest}}",
        &url,
    ]);
    assert_eq!(digest.trim(), image.manifest.digest.as_str());
}

#[test]
fn bearer_tokens_cover_push_and_the_mount_source() {
    let registry = Registry::start_with(Auth::Token, false);
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(21, 2000), noise(22, 2000)]);
    let config = docker_config(tmp.path(), &registry.host(), PASSWORD);
    let client = Client::new(Options {
        auth_files: AuthFiles::docker_config(&config),
        ..registry.options()
    })
    .unwrap();

    let source = registry.reference("stacks/run:1");
    let report = client
        .push(&layout.blobs(), &image.manifest, &source, None)
        .unwrap();
    assert_eq!(report.uploaded, 3);
    let target = registry.reference("apps/web:1");
    let report = client
        .push(&layout.blobs(), &image.manifest, &target, Some(&source))
        .unwrap();
    assert_eq!((report.mounted, report.uploaded), (3, 0));
    let scopes = registry
        .tokens
        .as_ref()
        .unwrap()
        .scopes
        .lock()
        .unwrap()
        .clone();
    assert!(
        scopes.contains(&vec![
            "repository:apps/web:pull,push".to_owned(),
            "repository:stacks/run:pull".to_owned()
        ]),
        "{scopes:?}"
    );
    let pulled = client
        .pull(&target, &BlobDir::new(tmp.path().join("pulled")))
        .unwrap();
    assert_eq!(pulled.stats.downloaded, 4);

    // Without credentials the token grants nothing: a clear 401.
    let err = registry
        .client()
        .pull(&target, &BlobDir::new(tmp.path().join("anon")))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unauthorized {
                credentials: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn tls_works_with_the_ca_and_fails_clearly_without_it() {
    let registry = Registry::start_with(Auth::None, true);
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(23, 2000)]);
    let target = registry.reference("secure/app:1");

    let untrusting = registry.client();
    let err = untrusting
        .push(&layout.blobs(), &image.manifest, &target, None)
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "TLS connection to registry {} failed",
            registry.host()
        )),
        "{err}"
    );

    let ca = registry.dir.path().join("tls.crt");
    let client = Client::new(Options {
        ca_file: Some(ca),
        ..registry.options()
    })
    .unwrap();
    let report = client
        .push(&layout.blobs(), &image.manifest, &target, None)
        .unwrap();
    assert_eq!(report.uploaded, 2);
    let pulled = client
        .pull(&target, &BlobDir::new(tmp.path().join("pulled")))
        .unwrap();
    assert_eq!(pulled.manifest.digest, image.manifest.digest);

    let not_a_cert = tmp.path().join("key.pem");
    std::fs::write(&not_a_cert, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let err = Client::new(Options {
        ca_file: Some(not_a_cert),
        ..registry.options()
    })
    .err()
    .unwrap();
    assert!(matches!(err, Error::CaFile { .. }), "{err:?}");
}

/// A fake registry: `/v2/` answers 200; the tags endpoint answers `status` for the
/// first `failures` requests, then the tags. Returns its port and the tags-request count.
fn fake_registry(status: u16, failures: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
            }
            let (code, body) = if line.contains("/tags/list") {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                if n < failures && status == 404 {
                    (
                        status,
                        r#"{"errors":[{"code":"NAME_UNKNOWN","message":"no such repository"}]}"#
                            .to_owned(),
                    )
                } else if n < failures {
                    (
                        status,
                        r#"{"errors":[{"code":"UNKNOWN","message":"nope"}]}"#.to_owned(),
                    )
                } else {
                    (200, r#"{"name":"app","tags":["a","b"]}"#.to_owned())
                }
            } else {
                (200, "{}".to_owned())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, count)
}

fn fake_client(port: u16) -> (Client, Reference) {
    let host = format!("127.0.0.1:{port}");
    let client = Client::new(Options {
        insecure: vec![host.clone()],
        retry: support::quick_retry(),
        auth_files: AuthFiles::default(),
        ..Options::default()
    })
    .unwrap();
    (client, Reference::parse(&format!("{host}/app")).unwrap())
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let (port, count) = fake_registry(503, 2);
    let (client, repo) = fake_client(port);
    assert_eq!(client.list_tags(&repo).unwrap(), ["a", "b"]);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    // More failures than tries: the last error is reported.
    let (port, count) = fake_registry(502, 10);
    let (client, repo) = fake_client(port);
    let err = client.list_tags(&repo).unwrap_err();
    assert!(matches!(err, Error::Http { status: 502, .. }), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[test]
fn client_errors_are_never_retried() {
    let (port, count) = fake_registry(400, 10);
    let (client, repo) = fake_client(port);
    let err = client.list_tags(&repo).unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    assert!(err.to_string().ends_with("nope"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let (port, count) = fake_registry(404, 10);
    let (client, repo) = fake_client(port);
    let err = client.list_tags(&repo).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn plain_http_is_spoken_only_to_registries_listed_as_insecure() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let reference = registry.reference("app:1");
    let strict = Client::new(Options {
        insecure: Vec::new(),
        ..registry.options()
    })
    .unwrap();
    let err = strict
        .pull(&reference, &BlobDir::new(tmp.path()))
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("insecure registry"), "{err}");
    assert_eq!(
        registry.count("GET", "/v2/"),
        0,
        "no plain request went out"
    );
    // Listed, the same request reaches the registry (which does not have the image).
    let err = registry
        .client()
        .pull(&reference, &BlobDir::new(tmp.path()))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("manifest 1 not found in {}/app", registry.host())
    );
}
