//! Copies an image between an OCI layout and a registry with the registry client, for
//! the push/pull benchmark (`benches/registry/push-pull.sh`) and by hand:
//!
//! ```text
//! cargo run --release -p strata-registry --example regcopy -- push LAYOUT HOST:PORT/REPO:TAG
//! cargo run --release -p strata-registry --example regcopy -- pull HOST:PORT/REPO:TAG LAYOUT
//! ```
//!
//! `push` sends the layout's first `index.json` entry. Registries on 127.0.0.1 are
//! spoken to over plain HTTP; credentials come from the usual files.

use std::process::ExitCode;

use strata_registry::{BlobDir, Client, Descriptor, Options, Reference};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("regcopy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (op, a, b) = match args.as_slice() {
        [op, a, b] => (op.as_str(), a.as_str(), b.as_str()),
        _ => return Err("usage: regcopy push LAYOUT REF | regcopy pull REF LAYOUT".into()),
    };
    let (layout, reference) = if op == "push" { (a, b) } else { (b, a) };
    let reference = Reference::parse(reference)?;
    let insecure = if reference.registry().starts_with("127.0.0.1:") {
        vec![reference.registry().to_owned()]
    } else {
        Vec::new()
    };
    let client = Client::new(Options {
        insecure,
        ..Options::default()
    })?;
    let blobs = BlobDir::new(std::path::Path::new(layout).join("blobs/sha256"));
    match op {
        "push" => {
            #[derive(serde::Deserialize)]
            struct Index {
                manifests: Vec<Descriptor>,
            }
            let index: Index = serde_json::from_slice(&std::fs::read(
                std::path::Path::new(layout).join("index.json"),
            )?)?;
            let root = index
                .manifests
                .first()
                .ok_or("the layout's index.json lists no image")?;
            let r = client.push(&blobs, root, &reference, None)?;
            println!(
                "uploaded {} mounted {} skipped {} bytes {} manifests {}",
                r.uploaded, r.mounted, r.skipped, r.bytes, r.manifests
            );
        }
        "pull" => {
            let p = client.pull(&reference, &blobs)?;
            println!(
                "manifest {} downloaded {} present {} bytes {}",
                p.manifest.digest, p.stats.downloaded, p.stats.present, p.stats.bytes
            );
        }
        _ => return Err(format!("unknown operation `{op}`: push or pull").into()),
    }
    Ok(())
}
