//! Builds one layer from a directory with [`LayerBuilder`], as the exporter does for a
//! buildpack layer: the contents of DIR at the root of the layer, owned by 1000:1000, dated
//! [`DEFAULT_MTIME`], written to `BLOB_DIR/<hex digest>`. Prints the diffID, digest and size.
//!
//! ```text
//! cargo run --release -p strata-exporter --example layer -- [--compression none|gzip] DIR BLOB_DIR
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use strata_exporter::archive::{Compression, DEFAULT_MTIME, LayerBuilder, Owner};

const USAGE: &str = "usage: layer [--compression none|gzip] DIR BLOB_DIR";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("layer: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut compression = Compression::None;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--compression" {
            let value = args.next().ok_or(USAGE)?;
            compression = value.parse().map_err(|e| format!("{e}"))?;
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    let [dir, blob_dir] = <[PathBuf; 2]>::try_from(paths).map_err(|_| USAGE)?;
    std::fs::create_dir_all(&blob_dir)
        .map_err(|e| format!("cannot create {}: {e}", blob_dir.display()))?;

    let mut layer = LayerBuilder::new(Owner::new(1000, 1000), DEFAULT_MTIME);
    layer.add_dir_tree(&dir, "").map_err(|e| e.to_string())?;
    let blob = layer
        .finish(compression, &blob_dir)
        .map_err(|e| e.to_string())?;
    println!("diffID {}", blob.diff_id);
    println!("digest {}", blob.digest);
    println!("size   {}", blob.size);
    Ok(())
}
