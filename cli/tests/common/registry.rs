//! What the CLI's registry tests share: the registry harness of the registry client's tests
//! (Debian's `docker-registry` on loopback, see [`support`]), `strata build` to a registry,
//! what skopeo sees there, and a proxy that goes down in the middle of a transfer.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[path = "../../../registry/tests/support/mod.rs"]
pub mod support;

use support::{Registry, skopeo};

use super::{assert_exit, copy_tree, examples, run_image_dir, strata};

/// `strata build` of the example app `app` with the example builder, run image `run_image`,
/// to `output`, with `--json` and `extra`.
pub fn build(cwd: &Path, app: &Path, run_image: &str, output: &str, extra: &[&str]) -> Output {
    let builder = examples().join("builder.toml");
    let mut args = vec![
        "build",
        app.to_str().unwrap(),
        "--builder",
        builder.to_str().unwrap(),
        "--run-image",
        run_image,
        "--output",
        output,
        "--json",
    ];
    args.extend_from_slice(extra);
    strata(cwd, &args)
}

/// The JSON report of a command that must have succeeded.
pub fn json(out: &Output) -> serde_json::Value {
    assert_exit(out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The manifest digest skopeo sees at `docker://HOST/NAME`.
pub fn remote_digest(registry: &Registry, name: &str) -> String {
    let url = format!("docker://{}/{name}", registry.host());
    let raw = skopeo(&["inspect", "--tls-verify=false", &url]);
    let inspect: serde_json::Value = serde_json::from_str(&raw).unwrap();
    inspect["Digest"].as_str().unwrap().to_owned()
}

/// The manifest skopeo reads at `docker://HOST/NAME`, as stored.
pub fn remote_manifest(registry: &Registry, name: &str) -> serde_json::Value {
    let url = format!("docker://{}/{name}", registry.host());
    serde_json::from_str(&skopeo(&["inspect", "--raw", "--tls-verify=false", &url])).unwrap()
}

/// A copy of the example run image layout whose tag `multi` is an index of the image for
/// each of `archs` on linux (the same manifest each time, as far as the tests care); and the
/// manifest's digest.
pub fn platform_index_layout(root: &Path, archs: &[&str]) -> (PathBuf, String) {
    let dir = root.join("multi");
    std::fs::create_dir_all(&dir).unwrap();
    copy_tree(&run_image_dir(), &dir);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "busybox")
        .unwrap()
        .clone();
    let platform_entry = |arch: &str| {
        serde_json::json!({
            "mediaType": entry["mediaType"],
            "digest": entry["digest"],
            "size": entry["size"],
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    let child = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": archs.iter().map(|a| platform_entry(a)).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&child).unwrap();
    let hex = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&bytes)
            .iter()
            .fold(String::new(), |mut s, b| {
                use std::fmt::Write as _;
                let _ = write!(s, "{b:02x}");
                s
            })
    };
    std::fs::write(dir.join("blobs/sha256").join(&hex), &bytes).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    (dir, entry["digest"].as_str().unwrap().to_owned())
}

/// A TCP proxy in front of a registry that goes down (drops every connection and refuses new
/// ones, as a registry that stopped) once the registry has answered `cut_after` blob uploads
/// with `201 Created`, until [`CutProxy::up`].
pub struct CutProxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    armed: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(upstream: u16, cut_after: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicBool::new(true));
        let created = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&down);
        let trigger = Arc::clone(&armed);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if flag.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (flag, created) = (Arc::clone(&flag), Arc::clone(&created));
                let armed = Arc::clone(&trigger);
                std::thread::spawn(move || {
                    relay(client, server, &flag, &armed, &created, cut_after);
                });
            }
        });
        Self { port, down, armed }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Back up for good: connections are relayed again and never cut.
    pub fn up(&self) {
        self.armed.store(false, Ordering::SeqCst);
        self.down.store(false, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    down: &Arc<AtomicBool>,
    armed: &AtomicBool,
    created: &AtomicUsize,
    cut_after: usize,
) {
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let flag = Arc::clone(down);
    let upstream = std::thread::spawn(move || {
        let mut buf = vec![0; 64 << 10];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if flag.load(Ordering::SeqCst) || s_write.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Both);
        let _ = c_read.shutdown(Shutdown::Both);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if down.load(Ordering::SeqCst) {
            break;
        }
        let _ = c_write.write_all(&buf[..n]);
        let chunk = String::from_utf8_lossy(&buf[..n]);
        // A finished blob upload: `201 Created` with the blob's location.
        if armed.load(Ordering::SeqCst)
            && chunk.starts_with("HTTP/1.1 201")
            && chunk.contains("/blobs/sha256:")
            && created.fetch_add(1, Ordering::SeqCst) + 1 >= cut_after
        {
            down.store(true, Ordering::SeqCst);
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
    let _ = upstream.join();
}

/// An in-test responder for the one endpoint Debian's `docker-registry` (2.8) lacks, the
/// referrers API (`GET /v2/<name>/referrers/<digest>`, OCI distribution 1.1), in front of a
/// real registry: it answers that endpoint from the registry's own storage (every manifest
/// of the repository whose `subject` is the digest) and relays every other request to the
/// registry unchanged but for `Connection: close`, so that each connection carries one
/// request and none of them passes it by.
pub struct ReferrersApi {
    pub port: u16,
    /// How many referrers requests it answered.
    pub answered: Arc<AtomicUsize>,
}

impl ReferrersApi {
    pub fn start(registry: &Registry) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream: u16 = registry.host().rsplit_once(':').unwrap().1.parse().unwrap();
        // `<storage>/docker/registry/v2`, from where a blob's data file is.
        let blob = registry.blob_data(&strata_registry::Digest::of(b""));
        let v2 = blob.ancestors().nth(5).unwrap().to_owned();
        let answered = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&answered);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let (v2, count) = (v2.clone(), Arc::clone(&count));
                std::thread::spawn(move || serve_one(client, upstream, &v2, &count));
            }
        });
        Self { port, answered }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// One request of `client`: answered here if it is a referrers request, else relayed.
fn serve_one(mut client: TcpStream, upstream: u16, v2: &Path, answered: &AtomicUsize) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let target = text.split(' ').nth(1).unwrap_or_default().to_owned();
    let path = target.split('?').next().unwrap_or_default();
    if text.starts_with("GET ")
        && let Some((name, digest)) = path
            .strip_prefix("/v2/")
            .and_then(|rest| rest.split_once("/referrers/"))
    {
        answered.fetch_add(1, Ordering::SeqCst);
        let body = referrers_index(v2, name, digest).to_string();
        let _ = write!(
            client,
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let mut lines: Vec<&str> = text
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if server
        .write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())
        .is_err()
    {
        return;
    }
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let body = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = body.join();
}

/// The referrers index of `digest` in repository `name` of the registry storage `v2`.
fn referrers_index(v2: &Path, name: &str, digest: &str) -> serde_json::Value {
    let revisions = v2
        .join("repositories")
        .join(name)
        .join("_manifests/revisions/sha256");
    let mut manifests = Vec::new();
    for revision in std::fs::read_dir(revisions).into_iter().flatten().flatten() {
        let hex = revision.file_name().to_string_lossy().into_owned();
        let data = v2
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(&hex)
            .join("data");
        let Ok(bytes) = std::fs::read(data) else {
            continue;
        };
        let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        if manifest["subject"]["digest"] != digest {
            continue;
        }
        let mut entry = serde_json::json!({
            "mediaType": manifest["mediaType"],
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
            "artifactType": manifest.get("artifactType").unwrap_or(&manifest["config"]["mediaType"]),
        });
        if let Some(annotations) = manifest.get("annotations") {
            entry["annotations"] = annotations.clone();
        }
        manifests.push(entry);
    }
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    })
}
