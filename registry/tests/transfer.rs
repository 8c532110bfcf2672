//! Pull, push, mount and tags against a real registry, checked from outside by skopeo
//! and by the registry's access log.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod support;

use strata_registry::{BlobDir, Client, Digest, Error, MountSources, Options, Platform, Reference};
use support::{Layout, NoMountProxy, Registry, noise, skopeo};

/// A layer larger than oci-client's 4 MiB upload chunk, so it goes up in several `PATCH` requests.
const LARGE: usize = 9 << 20;

#[test]
fn push_then_skopeo_sees_the_same_manifest_and_pull_brings_it_back() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(1, 1000), noise(2, LARGE)]);
    let client = registry.client();
    let target = registry.reference("team/app:v1");

    let report = client
        .push(&layout.blobs(), &image.manifest, &target, None)
        .unwrap();
    assert_eq!(
        (
            report.uploaded,
            report.mounted,
            report.skipped,
            report.manifests
        ),
        (3, 0, 0, 1)
    );

    let url = format!("docker://{}/team/app:v1", registry.host());
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &url]);
    assert_eq!(raw.as_bytes(), image.manifest_bytes);
    let digest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &url,
    ]);
    assert_eq!(digest.trim(), image.manifest.digest.as_str());
    // skopeo can fetch every blob the client pushed.
    let copy = tmp.path().join("copy");
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &url,
        &format!("oci:{}:v1", copy.display()),
    ]);
    for layer in &image.layers {
        assert!(copy.join("blobs/sha256").join(layer.digest.hex()).is_file());
    }
    // The large layer went up in chunks of 4 + 4 + 1 MiB, the config and the small
    // layer in one each.
    let patches = registry.count("PATCH", "/v2/team/app/blobs/uploads/");
    assert_eq!(patches, 3 + 2);

    let pulled_dir = BlobDir::new(tmp.path().join("pulled/blobs/sha256"));
    let pulled = client.pull(&target, &pulled_dir).unwrap();
    assert_eq!(pulled.manifest, image.manifest);
    assert_eq!(pulled.config.digest, image.config.digest);
    assert_eq!(
        pulled.layers.iter().map(|l| &l.digest).collect::<Vec<_>>(),
        image.layers.iter().map(|l| &l.digest).collect::<Vec<_>>()
    );
    for blob in [
        &image.manifest,
        &image.config,
        &image.layers[0],
        &image.layers[1],
    ] {
        let ours = std::fs::read(layout.blobs().path(&blob.digest)).unwrap();
        assert_eq!(std::fs::read(pulled_dir.path(&blob.digest)).unwrap(), ours);
    }
    assert_eq!(pulled.stats.downloaded, 4);
}

#[test]
fn second_pull_of_the_same_image_transfers_no_blob() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(3, 5000), noise(4, 7000)]);
    let client = registry.client();
    let target = registry.reference("app:latest");
    client
        .push(&layout.blobs(), &image.manifest, &target, None)
        .unwrap();

    let dir = BlobDir::new(tmp.path().join("store"));
    client.pull(&target, &dir).unwrap();
    let blob_gets = registry.count("GET", "/v2/app/blobs/");
    let manifest_gets = registry.count("GET", "/v2/app/manifests/");
    assert_eq!((blob_gets, manifest_gets), (3, 1));

    let again = client.pull(&target, &dir).unwrap();
    assert_eq!(again.stats.downloaded, 0);
    assert_eq!(again.stats.present, 4);
    assert_eq!(registry.count("GET", "/v2/app/blobs/"), blob_gets);
    assert_eq!(
        registry.count("GET", "/v2/app/manifests/"),
        manifest_gets,
        "only a HEAD the second time"
    );
    assert_eq!(registry.count("HEAD", "/v2/app/manifests/latest"), 2);
}

#[test]
fn push_skips_blobs_the_registry_has() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let base = noise(5, 4000);
    let v1 = layout.image("amd64", &[base.clone(), noise(6, 3000)]);
    let v2 = layout.image("amd64", &[base, noise(7, 3000)]);
    let client = registry.client();
    client
        .push(
            &layout.blobs(),
            &v1.manifest,
            &registry.reference("app:v1"),
            None,
        )
        .unwrap();
    let puts = registry.count("PUT", "/v2/app/blobs/uploads/");
    assert_eq!(puts, 3);

    // One changed layer: it and the config go up, the shared layer is skipped.
    let report = client
        .push(
            &layout.blobs(),
            &v2.manifest,
            &registry.reference("app:v2"),
            None,
        )
        .unwrap();
    assert_eq!((report.uploaded, report.skipped), (2, 1));
    assert_eq!(registry.count("PUT", "/v2/app/blobs/uploads/"), puts + 2);

    // The same image again: nothing uploaded, only the manifest written.
    let report = client
        .push(
            &layout.blobs(),
            &v2.manifest,
            &registry.reference("app:v2"),
            None,
        )
        .unwrap();
    assert_eq!((report.uploaded, report.skipped, report.bytes), (0, 3, 0));
    assert_eq!(registry.count("PUT", "/v2/app/blobs/uploads/"), puts + 2);

    let mut tags = client.list_tags(&registry.reference("app")).unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
}

#[test]
fn blobs_are_mounted_from_the_source_repository() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(8, 2000), noise(9, 2000)]);
    let client = registry.client();
    let source = registry.reference("stacks/run:1");
    client
        .push(&layout.blobs(), &image.manifest, &source, None)
        .unwrap();
    let uploads = registry.count("PUT", "/blobs/uploads/");

    let target = registry.reference("apps/web:1");
    let report = client
        .push(&layout.blobs(), &image.manifest, &target, Some(&source))
        .unwrap();
    assert_eq!((report.mounted, report.uploaded, report.skipped), (3, 0, 0));
    assert_eq!(
        registry.count("POST", "from=stacks%2Frun"),
        3,
        "{:?}",
        registry.requests()
    );
    assert_eq!(
        registry.count("PUT", "/blobs/uploads/"),
        uploads,
        "no blob uploaded"
    );
    let url = format!("docker://{}/apps/web:1", registry.host());
    let digest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &url,
    ]);
    assert_eq!(digest.trim(), image.manifest.digest.as_str());
}

#[test]
fn a_multi_platform_index_pushed_by_skopeo_resolves_to_the_wanted_platform() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let amd = layout.image("amd64", &[noise(10, 3000)]);
    let arm = layout.image("arm64", &[noise(11, 3000)]);
    let index = layout.index(&[("amd64", &amd), ("arm64", &arm)]);
    layout.tag(&index, "multi");
    let url = format!("docker://{}/base:multi", registry.host());
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.dir.display()),
        &url,
    ]);
    let reference = registry.reference("base:multi");

    let dir = BlobDir::new(tmp.path().join("amd"));
    let pulled = registry.client().pull(&reference, &dir).unwrap();
    assert_eq!(
        pulled.index.as_ref().map(|i| &i.digest),
        Some(&index.digest)
    );
    assert_eq!(pulled.manifest.digest, amd.manifest.digest);
    assert!(dir.contains(&amd.layers[0].digest, 3000));
    assert!(!dir.contains(&arm.layers[0].digest, 3000));

    let arm_client = strata_registry::Client::new(Options {
        platform: "linux/arm64".parse().unwrap(),
        ..registry.options()
    })
    .unwrap();
    let dir = BlobDir::new(tmp.path().join("arm"));
    let pulled = arm_client.pull(&reference, &dir).unwrap();
    assert_eq!(pulled.manifest.digest, arm.manifest.digest);
    assert_eq!(pulled.layers[0].digest, arm.layers[0].digest);

    let s390 = strata_registry::Client::new(Options {
        platform: "linux/s390x".parse().unwrap(),
        ..registry.options()
    })
    .unwrap();
    let err = s390
        .pull(&reference, &BlobDir::new(tmp.path().join("s390")))
        .unwrap_err();
    assert!(matches!(err, Error::NoPlatform { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("linux/s390x") && message.contains("linux/amd64, linux/arm64"),
        "{message}"
    );
}

#[test]
fn a_single_image_for_another_platform_is_refused_before_its_layers() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let arm = layout.image("arm64", &[noise(12, 3000)]);
    let client = registry.client();
    let reference = registry.reference("armonly:1");
    client
        .push(&layout.blobs(), &arm.manifest, &reference, None)
        .unwrap();

    let dir = BlobDir::new(tmp.path().join("store"));
    let err = client.pull(&reference, &dir).unwrap_err();
    assert!(matches!(err, Error::WrongPlatform { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("{reference} is an image for linux/arm64, not linux/amd64")
    );
    assert!(!dir.contains(&arm.layers[0].digest, 3000));
    assert_eq!(
        registry.count("GET", &format!("/blobs/{}", arm.layers[0].digest)),
        0
    );
    assert_eq!(Platform::default(), Platform::linux_amd64());
}

#[test]
fn a_blob_whose_content_does_not_match_its_digest_is_refused_and_not_kept() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(13, 4096)]);
    let client = registry.client();
    let reference = registry.reference("app:bad");
    client
        .push(&layout.blobs(), &image.manifest, &reference, None)
        .unwrap();
    // Same size, other bytes, behind the registry's back.
    let layer = &image.layers[0];
    std::fs::write(registry.blob_data(&layer.digest), noise(99, 4096)).unwrap();

    let store = tmp.path().join("store");
    let dir = BlobDir::new(&store);
    let err = client.pull(&reference, &dir).unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { digest, .. } if *digest == layer.digest),
        "{err:?}"
    );
    assert!(!dir.path(&layer.digest).exists());
    let leftovers: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn a_registry_that_is_down_is_a_clear_error() {
    let mut registry = Registry::start();
    let reference = registry.reference("app:1");
    let client = registry.client();
    registry.stop();
    let tmp = tempfile::tempdir().unwrap();
    let err = client
        .pull(&reference, &BlobDir::new(tmp.path()))
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("registry {} is unreachable", registry.host())),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn an_index_pushed_by_the_client_is_whole_for_skopeo() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let shared = noise(30, 2500);
    let amd = layout.image("amd64", &[shared.clone(), noise(31, 2500)]);
    let arm = layout.image("arm64", &[shared, noise(32, 2500)]);
    let index = layout.index(&[("amd64", &amd), ("arm64", &arm)]);
    let client = registry.client();
    let target = registry.reference("multi/app:1");

    let report = client.push(&layout.blobs(), &index, &target, None).unwrap();
    // Two configs, the shared layer once, two own layers; two manifests and the index.
    assert_eq!((report.uploaded, report.manifests), (5, 3));
    let url = format!("docker://{}/multi/app:1", registry.host());
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &url]);
    assert_eq!(
        raw.as_bytes(),
        std::fs::read(layout.blobs().path(&index.digest)).unwrap()
    );
    let copy = tmp.path().join("copy");
    skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &url,
        &format!("oci:{}:1", copy.display()),
    ]);
    for image in [&amd, &arm] {
        assert!(
            copy.join("blobs/sha256")
                .join(image.manifest.digest.hex())
                .is_file()
        );
    }

    // Read in place, as inspect and rebase do: the bytes as pushed, no blob fetched.
    let blob_gets = registry.count("GET", "/blobs/");
    let fetched = client.fetch_manifest(&target).unwrap();
    assert_eq!(fetched.descriptor.digest, index.digest);
    assert_eq!(
        fetched.descriptor.media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    let child = client
        .fetch_manifest(&target.with_digest(arm.manifest.digest.clone()))
        .unwrap();
    assert_eq!(child.bytes, arm.manifest_bytes);
    assert_eq!(registry.count("GET", "/blobs/"), blob_gets);

    // Only the blobs asked for.
    let dir = BlobDir::new(tmp.path().join("configs"));
    let stats = client
        .pull_blobs(&target, std::slice::from_ref(&arm.config), &dir)
        .unwrap();
    assert_eq!((stats.downloaded, stats.bytes), (1, arm.config.size));
    assert_eq!(registry.count("GET", "/blobs/"), blob_gets + 1);
}

#[test]
fn a_docker_schema2_image_pulls_as_it_is() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(33, 3000)]);
    layout.tag(&image.manifest, "v1");
    let url = format!("docker://{}/docker/app:v1", registry.host());
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.dir.display()),
        &url,
    ]);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &url]);
    assert!(
        raw.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{raw}"
    );

    let dir = BlobDir::new(tmp.path().join("store"));
    let pulled = registry
        .client()
        .pull(&registry.reference("docker/app:v1"), &dir)
        .unwrap();
    assert_eq!(
        pulled.manifest.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        std::fs::read(dir.path(&pulled.manifest.digest)).unwrap(),
        raw.as_bytes()
    );
    assert_eq!(pulled.layers.len(), 1);
    assert!(dir.contains(&pulled.layers[0].digest, pulled.layers[0].size));
}

#[test]
fn a_push_with_a_blob_missing_locally_sends_nothing() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(43, 2000), noise(44, 2000)]);
    let missing = &image.layers[1];
    std::fs::remove_file(layout.blobs().path(&missing.digest)).unwrap();
    let err = registry
        .client()
        .push(
            &layout.blobs(),
            &image.manifest,
            &registry.reference("app:1"),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingBlob { digest, .. } if digest == &missing.digest),
        "{err:?}"
    );
    assert_eq!(
        registry.count("", "/v2/app/"),
        0,
        "{:?}",
        registry.requests()
    );
}

#[test]
fn a_push_the_registry_refuses_midway_writes_no_manifest_and_the_rerun_pushes_only_what_is_missing()
{
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image(
        "amd64",
        &[noise(40, 2000), noise(41, 2000), noise(42, 2000)],
    );
    // One blob at a time, in manifest order (config first), so the failure point is fixed.
    let client = strata_registry::Client::new(Options {
        jobs: 1,
        ..registry.options()
    })
    .unwrap();
    let target = registry.reference("app:1");
    // The second layer's bytes go bad on disk: the registry refuses them by digest.
    let bad = &image.layers[1];
    let path = layout.blobs().path(&bad.digest);
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, noise(98, 2000)).unwrap();

    let err = client
        .push(&layout.blobs(), &image.manifest, &target, None)
        .unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("DigestInvalid"), "{err}");
    assert_eq!(
        registry.count("PUT", "/manifests/"),
        0,
        "no manifest without its blobs"
    );
    let err = client.fetch_manifest(&target).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    std::fs::write(&path, good).unwrap();
    let report = client
        .push(&layout.blobs(), &image.manifest, &target, None)
        .unwrap();
    assert_eq!((report.uploaded, report.skipped), (2, 2));
    let url = format!("docker://{}/app:1", registry.host());
    let digest = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--format",
        "{{.Digest}}",
        &url,
    ]);
    assert_eq!(digest.trim(), image.manifest.digest.as_str());
}

/// A fake registry serving `blobs` by digest, each answer held back a little so that
/// concurrent requests overlap; records the most requests it had in flight at once.
fn slow_blob_server(blobs: Vec<Vec<u8>>) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&max);
    let blobs: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        blobs
            .into_iter()
            .map(|b| (Digest::of(&b).to_string(), b))
            .collect(),
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (in_flight, max, blobs) =
                (Arc::clone(&in_flight), Arc::clone(&max), Arc::clone(&blobs));
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                        break;
                    }
                }
                let body: Vec<u8> = match blobs.iter().find(|(d, _)| line.contains(d.as_str())) {
                    Some((_, bytes)) => {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(100));
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        bytes.clone()
                    }
                    None => b"{}".to_vec(),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            });
        }
    });
    (port, seen)
}

#[test]
fn downloads_run_at_most_jobs_at_once() {
    let blobs: Vec<Vec<u8>> = (0..6).map(|i| noise(50 + i, 1000)).collect();
    let descriptors: Vec<strata_registry::Descriptor> = blobs
        .iter()
        .map(|b| strata_registry::Descriptor {
            media_type: "application/octet-stream".to_owned(),
            digest: Digest::of(b),
            size: b.len() as u64,
            platform: None,
        })
        .collect();
    let (port, max) = slow_blob_server(blobs);
    let host = format!("127.0.0.1:{port}");
    let client = strata_registry::Client::new(Options {
        insecure: vec![host.clone()],
        jobs: 2,
        auth_files: strata_registry::AuthFiles::default(),
        ..Options::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = BlobDir::new(tmp.path());
    let repo = strata_registry::Reference::parse(&format!("{host}/app")).unwrap();
    let stats = client.pull_blobs(&repo, &descriptors, &dir).unwrap();
    assert_eq!(stats.downloaded, 6);
    let max = max.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=2).contains(&max),
        "{max} downloads at once with jobs = 2"
    );
}

#[test]
fn a_blob_longer_than_its_descriptor_is_cut_off_and_not_kept() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(60, 4096)]);
    let client = registry.client();
    let reference = registry.reference("app:long");
    client
        .push(&layout.blobs(), &image.manifest, &reference, None)
        .unwrap();
    let layer = &image.layers[0];
    std::fs::write(registry.blob_data(&layer.digest), noise(61, 64 << 10)).unwrap();

    let store = tmp.path().join("store");
    let err = client.pull(&reference, &BlobDir::new(&store)).unwrap_err();
    assert!(
        matches!(&err, Error::TooLarge { digest, size: 4096, .. } if *digest == layer.digest),
        "{err:?}"
    );
    let names: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.contains(&layer.digest.hex().to_owned())
            && !names.iter().any(|n| n.starts_with('.')),
        "{names:?}"
    );
}

#[test]
fn many_manifests_in_one_batch_and_each_blob_with_its_own_result() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(21, 4096), noise(22, 4096)]);
    let client = registry.client();
    for tag in ["one", "two"] {
        client
            .push(
                &layout.blobs(),
                &image.manifest,
                &registry.reference(&format!("app:{tag}")),
                None,
            )
            .unwrap();
    }
    let refs: Vec<_> = ["one", "missing", "two"]
        .iter()
        .map(|tag| registry.reference(&format!("app:{tag}")))
        .collect();
    let found = client.fetch_manifests(&refs);
    assert_eq!(found.len(), 3);
    for i in [0, 2] {
        let fetched = found[i].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(fetched.descriptor.digest, image.manifest.digest);
        assert_eq!(fetched.bytes, image.manifest_bytes);
    }
    assert!(matches!(found[1], Ok(None)), "{:?}", found[1]);

    // One layer gets other bytes behind the registry's back: only it fails, and the other
    // is downloaded, verified and kept.
    std::fs::write(registry.blob_data(&image.layers[0].digest), noise(98, 4096)).unwrap();
    let dir = BlobDir::new(tmp.path().join("pulled"));
    let results = client
        .pull_blobs_each(&registry.reference("app"), &image.layers, &dir)
        .unwrap();
    assert!(
        matches!(&results[0], Err(Error::DigestMismatch { digest, .. }) if *digest == image.layers[0].digest),
        "{results:?}"
    );
    assert_eq!(results[1].as_ref().unwrap(), &4096);
    assert!(!dir.path(&image.layers[0].digest).exists());
    assert!(dir.contains(&image.layers[1].digest, 4096));
    // A blob already there is not asked for again.
    let before = registry.count("GET", "/blobs/");
    let again = client
        .pull_blobs_each(&registry.reference("app"), &image.layers[1..], &dir)
        .unwrap();
    assert_eq!(again[0].as_ref().unwrap(), &0);
    assert_eq!(registry.count("GET", "/blobs/"), before);
}

#[test]
fn a_layer_missing_locally_that_the_registry_will_not_mount_is_copied_from_the_source() {
    let registry = Registry::start();
    let proxy = NoMountProxy::start(registry.port);
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(47, 2000), noise(48, 2000)]);
    let client = Client::new(Options {
        insecure: vec![proxy.host(), registry.host()],
        ..registry.options()
    })
    .unwrap();
    let at_proxy = |name: &str| Reference::parse(&format!("{}/{name}", proxy.host())).unwrap();
    let source = at_proxy("cache:1");
    client
        .push(&layout.blobs(), &image.manifest, &source, None)
        .unwrap();
    let absent = &image.layers[1];
    std::fs::remove_file(layout.blobs().path(&absent.digest)).unwrap();
    let gets = registry.count("GET", &format!("/cache/blobs/{}", absent.digest));

    let target = at_proxy("app:1");
    let report = client
        .push_mounting(
            &layout.blobs(),
            &image.manifest,
            &target,
            &MountSources::any(Some(&source)),
        )
        .unwrap();
    assert_eq!(
        report.mounted, 0,
        "the proxy lets no mount through: {report:?}"
    );
    assert_eq!(report.uploaded, 3, "{report:?}");
    assert_eq!(
        registry.count("GET", &format!("/cache/blobs/{}", absent.digest)),
        gets + 1,
        "the absent layer came from the source repository"
    );
    assert!(layout.blobs().contains(&absent.digest, absent.size));
    let copied = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{}/app:1", registry.host()),
    ]);
    assert!(copied.contains(absent.digest.as_str()), "{copied}");
    let pulled = tmp.path().join("pulled");
    client
        .pull(&registry.reference("app:1"), &BlobDir::new(&pulled))
        .unwrap();
    assert!(BlobDir::new(&pulled).contains(&absent.digest, absent.size));
}

#[test]
fn a_push_mounting_takes_a_layer_missing_locally_from_the_source_and_fails_for_one_nowhere() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path().join("src"));
    let image = layout.image("amd64", &[noise(45, 2000), noise(46, 2000)]);
    let client = registry.client();
    let source = registry.reference("cache:1");
    client
        .push(&layout.blobs(), &image.manifest, &source, None)
        .unwrap();
    let absent = &image.layers[1];
    std::fs::remove_file(layout.blobs().path(&absent.digest)).unwrap();

    // The source has it: mounted, and the image is whole in the target.
    let report = client
        .push_mounting(
            &layout.blobs(),
            &image.manifest,
            &registry.reference("app:1"),
            &MountSources::any(Some(&source)),
        )
        .unwrap();
    assert_eq!(report.mounted, 3, "{report:?}");
    assert_eq!(report.manifests, 1);

    // Nowhere to mount it from: the push fails naming it, and writes no manifest.
    let before = registry.count("PUT", "/manifests/");
    let err = client
        .push_mounting(
            &layout.blobs(),
            &image.manifest,
            &registry.reference("other:1"),
            &MountSources::default(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingBlob { digest, .. } if digest == &absent.digest),
        "{err:?}"
    );
    assert_eq!(registry.count("PUT", "/manifests/"), before);
}
