//! Scans an app directory with a persisted stat cache and prints what the scan did as JSON:
//! the harness behind `benches/plan/scan-vs-find.sh`.
//!
//! ```text
//! cargo run --release -p strata-planner --example scan -- DIR (--cache FILE | --cache-dir DIR)
//!     [--include GLOB]... [--exclude GLOB]... [--digest]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use strata_planner::{ScanOptions, StatCache, scan, stat_cache_path};

struct Args {
    root: PathBuf,
    cache: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    include: Vec<String>,
    exclude: Vec<String>,
    digest: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        root: PathBuf::new(),
        cache: None,
        cache_dir: None,
        include: Vec::new(),
        exclude: Vec::new(),
        digest: false,
    };
    let mut root = None;
    let mut it = std::env::args_os().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{} needs a value", arg.to_string_lossy()))
        };
        match arg.to_str() {
            Some("--cache") => args.cache = Some(value()?.into()),
            Some("--cache-dir") => args.cache_dir = Some(value()?.into()),
            Some("--include") => args.include.push(value()?.to_string_lossy().into_owned()),
            Some("--exclude") => args.exclude.push(value()?.to_string_lossy().into_owned()),
            Some("--digest") => args.digest = true,
            _ if root.is_none() => root = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {}", arg.to_string_lossy())),
        }
    }
    args.root = root.ok_or(
        "usage: scan DIR (--cache FILE | --cache-dir DIR) [--include GLOB]... \
         [--exclude GLOB]... [--digest]",
    )?;
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let mut cache = match (&args.cache, &args.cache_dir) {
        (Some(file), _) => StatCache::load(file),
        (None, Some(dir)) => StatCache::load(&stat_cache_path(dir, &args.root)),
        (None, None) => StatCache::in_memory(),
    };
    let opts = ScanOptions {
        include: &args.include,
        exclude: &args.exclude,
        sequential: false,
    };
    let result = scan(&args.root, &opts, &mut cache).and_then(|scanned| {
        cache.save()?;
        Ok(scanned)
    });
    match result {
        Ok((tree, stats)) => {
            match serde_json::to_string(&stats) {
                Ok(json) => println!("{json}"),
                Err(err) => {
                    eprintln!("{err}");
                    return ExitCode::FAILURE;
                }
            }
            if args.digest {
                eprintln!(
                    "cache {:?}, tree {}",
                    cache.status(),
                    tree.digest_of(tree.files.iter())
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
