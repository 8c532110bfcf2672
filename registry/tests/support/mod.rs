//! A real registry for the tests: Debian's `docker-registry` (the CNCF distribution
//! registry) serving a config written here, on 127.0.0.1 and a free port, with
//! filesystem storage in a temporary directory and its access log captured, so tests
//! count the requests that reached it. Variants add htpasswd Basic auth, TLS from a
//! self-signed certificate made with openssl, or Bearer tokens from a tiny token
//! server in this file. The registry is killed by its PID when dropped.
//!
//! Also here: small images built by hand into a blob directory (and an OCI layout, for
//! skopeo), and skopeo itself.

// Test code: a panic is a failing test; not every test binary uses every helper.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use strata_registry::{BlobDir, Client, Descriptor, Digest, Options, Reference, RetryPolicy};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonderland";

/// How the registry authenticates.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    Htpasswd,
    Token,
}

pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub tls: bool,
    child: Child,
    pub tokens: Option<TokenServer>,
}

impl Registry {
    pub fn start() -> Self {
        Self::start_with(Auth::None, false)
    }

    pub fn start_with(auth: Auth, tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        );
        if tls {
            let (cert, key) = self_signed(dir.path(), "tls");
            write!(
                config,
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            )
            .unwrap();
        }
        let mut tokens = None;
        match auth {
            Auth::None => {}
            Auth::Htpasswd => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", USER, PASSWORD])
                    .output()
                    .unwrap();
                assert!(out.status.success());
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, out.stdout).unwrap();
                write!(
                    config,
                    "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                    file.display()
                )
                .unwrap();
            }
            Auth::Token => {
                let server = TokenServer::start(dir.path());
                write!(
                    config,
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: strata-test\n    \
                     issuer: strata-test-issuer\n    rootcertbundle: {}\n",
                    server.port,
                    server.cert.display()
                )
                .unwrap();
                tokens = Some(server);
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("access.log")).unwrap();
        let err = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("docker-registry is installed (.ci/run)");
        let registry = Self {
            dir,
            port,
            tls,
            child,
            tokens,
        };
        registry.wait_ready();
        registry
    }

    /// Waits until the registry accepts connections (it binds only after reading its
    /// config and opening its storage).
    fn wait_ready(&self) {
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not start on port {}: {log}", self.port);
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn reference(&self, name: &str) -> Reference {
        Reference::parse(&format!("{}/{name}", self.host())).unwrap()
    }

    /// Client options for this registry: plain HTTP unless TLS, quick retries, no
    /// credentials unless given.
    pub fn options(&self) -> Options {
        Options {
            insecure: if self.tls {
                Vec::new()
            } else {
                vec![self.host()]
            },
            retry: quick_retry(),
            auth_files: strata_registry::AuthFiles::default(),
            ..Options::default()
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.options()).unwrap()
    }

    /// The access log's request lines, `METHOD PATH STATUS`.
    pub fn requests(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap();
        log.lines()
            .filter_map(|line| {
                let start = line.find('"')? + 1;
                let end = start + line[start..].find('"')?;
                let mut request = line[start..end].split(' ');
                let (method, path) = (request.next()?, request.next()?);
                let status = line[end + 1..].split_whitespace().next()?;
                Some(format!("{method} {path} {status}"))
            })
            .collect()
    }

    /// Requests whose line starts with `method` (any if empty) and contains `fragment`.
    pub fn count(&self, method: &str, fragment: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                (method.is_empty() || r.starts_with(&format!("{method} "))) && r.contains(fragment)
            })
            .count()
    }

    /// The file the registry stores a blob's content in.
    pub fn blob_data(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Stops the registry (as if it went down).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A self-signed certificate for 127.0.0.1: `(cert.pem, key.pem)`.
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        ])
        .arg("/CN=127.0.0.1")
        // An end-entity certificate that is its own trust anchor: webpki refuses a CA
        // certificate as a server's.
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .args(["-addext", "extendedKeyUsage=serverAuth", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (cert, key)
}

/// A docker config dir with `USER:PASSWORD` (or another password) for `host`.
pub fn docker_config(dir: &Path, host: &str, password: &str) -> PathBuf {
    let config = dir.join("docker");
    std::fs::create_dir_all(&config).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    std::fs::write(
        config.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    config
}

/// A small image in a blob directory (and an OCI layout around it, for skopeo).
pub struct Image {
    pub manifest: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A layout dir: `DIR/oci-layout`, `DIR/index.json`, `DIR/blobs/sha256/`.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: PathBuf) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Self { dir }
    }

    pub fn blobs(&self) -> BlobDir {
        BlobDir::new(self.dir.join("blobs/sha256"))
    }

    pub fn add(&self, bytes: &[u8], media_type: &str) -> Descriptor {
        let digest = Digest::of(bytes);
        std::fs::write(self.blobs().path(&digest), bytes).unwrap();
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size: bytes.len() as u64,
            platform: None,
        }
    }

    /// An image of `layers` (raw bytes) for `os/arch`.
    pub fn image(&self, arch: &str, layers: &[Vec<u8>]) -> Image {
        let layer_descs: Vec<Descriptor> = layers
            .iter()
            .map(|l| self.add(l, "application/vnd.oci.image.layer.v1.tar"))
            .collect();
        let diff_ids: Vec<String> = layer_descs
            .iter()
            .map(|d| format!("\"{}\"", d.digest))
            .collect();
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            diff_ids.join(",")
        );
        let config = self.add(
            config.as_bytes(),
            "application/vnd.oci.image.config.v1+json",
        );
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[{}]}}"#,
            json(&config),
            layer_descs.iter().map(json).collect::<Vec<_>>().join(",")
        );
        let manifest_desc = self.add(
            manifest.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        );
        Image {
            manifest: manifest_desc,
            manifest_bytes: manifest.into_bytes(),
            config,
            layers: layer_descs,
        }
    }

    /// An index of `images`, each with its platform.
    pub fn index(&self, images: &[(&str, &Image)]) -> Descriptor {
        let entries: Vec<String> = images
            .iter()
            .map(|(arch, image)| {
                let d = &image.manifest;
                format!(
                    r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                    d.media_type, d.digest, d.size
                )
            })
            .collect();
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
            entries.join(",")
        );
        self.add(index.as_bytes(), "application/vnd.oci.image.index.v1+json")
    }

    /// Makes `root` the layout's one image, tagged `tag`.
    pub fn tag(&self, root: &Descriptor, tag: &str) {
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#,
            root.media_type, root.digest, root.size
        );
        std::fs::write(self.dir.join("index.json"), index).unwrap();
    }
}

fn json(d: &Descriptor) -> String {
    format!(
        r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
        d.media_type, d.digest, d.size
    )
}

/// Bytes that differ per seed, `len` long.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// Runs skopeo, asserting success; returns stdout.
pub fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A token server for the registry's `auth: token`: grants what the request's scopes
/// ask for when it carries `USER:PASSWORD`, nothing otherwise; tokens are JWTs signed
/// with a key whose self-signed certificate the registry trusts, via openssl.
pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    /// The scopes of each token request, in order.
    pub scopes: Arc<Mutex<Vec<Vec<String>>>>,
}

impl TokenServer {
    fn start(dir: &Path) -> Self {
        let (cert, key) = self_signed(dir, "token");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&scopes);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = serve_token(stream, &key, &x5c, &seen);
            }
        });
        Self { port, cert, scopes }
    }
}

fn serve_token(
    mut stream: TcpStream,
    key: &Path,
    x5c: &str,
    seen: &Mutex<Vec<Vec<String>>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut authorized = false;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header.trim().is_empty() {
            break;
        }
        let expected =
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        if header.to_ascii_lowercase().starts_with("authorization:") && header.contains(&expected) {
            authorized = true;
        }
    }
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(percent_decode)
        .collect();
    seen.lock().unwrap().push(scopes.clone());
    let access: Vec<String> = if authorized {
        scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.split(':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                let actions: Vec<String> = actions.split(',').map(|a| format!("\"{a}\"")).collect();
                Some(format!(
                    r#"{{"type":"{kind}","name":"{name}","actions":[{}]}}"#,
                    actions.join(",")
                ))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let header = format!(r#"{{"typ":"JWT","alg":"RS256","x5c":["{x5c}"]}}"#);
    let claims = format!(
        r#"{{"iss":"strata-test-issuer","sub":"{USER}","aud":"strata-test","exp":{},"nbf":{},"iat":{},"jti":"{}","access":[{}]}}"#,
        now + 600,
        now - 10,
        now - 10,
        now,
        access.join(",")
    );
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())?;
    let mut signature = Vec::new();
    openssl.stdout.take().unwrap().read_to_end(&mut signature)?;
    openssl.wait()?;
    let token = format!("{signing_input}.{}", b64(&signature));
    let body = format!(r#"{{"token":"{token}","expires_in":600}}"#);
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A TCP proxy in front of a registry that will not mount: each request to open an upload
/// that asks to mount (`POST …/blobs/uploads/?mount=…&from=…`) reaches the registry without
/// its query, so the registry opens a plain upload (202), as a registry does that does not
/// mount across repositories.
pub struct NoMountProxy {
    pub port: u16,
}

impl NoMountProxy {
    pub fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = vec![0; 64 << 10];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let chunk = without_mount(&buf[..n]);
                        if s_write.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { port }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// `chunk` with the query cut from a mount request's line (a request that starts the
/// chunk: a mount request has no body, and the client waits for its answer).
fn without_mount(chunk: &[u8]) -> Vec<u8> {
    let Some(line_end) = chunk.windows(2).position(|w| w == b"\r\n") else {
        return chunk.to_vec();
    };
    let line = String::from_utf8_lossy(&chunk[..line_end]);
    let Some((start, rest)) = line.split_once('?') else {
        return chunk.to_vec();
    };
    if !(line.starts_with("POST ") && rest.contains("mount=")) {
        return chunk.to_vec();
    }
    let version = rest.rsplit_once(' ').map_or("HTTP/1.1", |(_, v)| v);
    let mut out = format!("{start} {version}").into_bytes();
    out.extend_from_slice(&chunk[line_end..]);
    out
}
