//! Task-key costs with no disk access: a [`KeyHasher`] fed a declared layer task's fields (200
//! input files, env, needs), a [`TaskKey`] to hex and back (how records and the store name
//! it), and [`Plan::add_service`] for the example `hello-stack` group (`examples/runtime` with
//! three declared layers, then the opaque `examples/procfile` and `examples/motd`) over an app
//! of 2,000 files. The app is a [`SourceTree`] built in memory, so the plan bench measures glob
//! selection, key encoding, hashing and the graph; scanning is in the `sources` bench.
//!
//! ```text
//! cargo bench -p strata-planner --bench keys
//! ```

#![allow(
    clippy::expect_used,
    reason = "a bench whose setup fails has nothing to measure"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_planner::{
    Buildpack, BuildpackPlan, DetectResult, GroupMember, KeyHasher, Plan, ServiceInput, SourceFile,
    SourceTree, TaskKey,
};

/// Files of the app the plan bench reads; the layer bench keys the first 200.
const APP_FILES: usize = 2_000;
const LAYER_FILES: usize = 200;

fn digest_of(text: &str) -> [u8; 32] {
    *KeyHasher::new("bench/content")
        .str(text)
        .finish()
        .as_bytes()
}

/// An app shaped like the example's (`.runtime-version`, `greeter.lock`, `Procfile`) with
/// `APP_FILES` files in all, sorted by path as a scan returns them.
fn app() -> SourceTree {
    let mut paths: Vec<String> = [".runtime-version", "greeter.lock", "Procfile"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    paths.extend(
        (0..APP_FILES - paths.len()).map(|n| format!("src/module{:02}/file{n:04}.txt", n % 40)),
    );
    paths.sort_unstable();
    let files = paths
        .into_iter()
        .enumerate()
        .map(|(n, path)| SourceFile {
            mode: if n.is_multiple_of(10) { 0o755 } else { 0o644 },
            size: 1024 + (n as u64 * 7919) % 7169,
            digest: digest_of(&path),
            path,
        })
        .collect();
    SourceTree {
        root: Path::new("/workspace").to_path_buf(),
        files,
    }
}

/// The tokens `Plan` hashes for a declared layer, in the same order.
fn layer_key(
    buildpack: &TaskKey,
    files: &[SourceFile],
    env: &BTreeMap<String, String>,
    needs: &[TaskKey],
) -> TaskKey {
    let mut h = KeyHasher::new("task/layer");
    h.field("buildpack")
        .str("examples/runtime")
        .str("0.1.0")
        .key(buildpack);
    h.field("build-image").str("host");
    h.field("target").str("linux/amd64");
    h.field("layer").str("deps").str("layers/deps.sh");
    h.field("types").bool(true).bool(false).bool(true);
    h.field("globs")
        .sorted_strs(["src/**/*.txt", "greeter.lock"]);
    h.field("env-names")
        .sorted_strs(env.keys().map(String::as_str));
    h.field("env").u64(env.len() as u64);
    for (name, value) in env {
        h.str(name).str(value);
    }
    h.field("files").list(files);
    h.field("needs").u64(needs.len() as u64);
    for need in needs {
        h.key(need);
    }
    h.finish()
}

fn example_group() -> (DetectResult, BTreeMap<String, TaskKey>) {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/buildpacks");
    let mut digests = BTreeMap::new();
    let mut group = Vec::new();
    for dir in ["runtime", "procfile", "motd"] {
        let buildpack = Buildpack::load(&examples.join(dir)).expect("an example buildpack loads");
        digests.insert(
            buildpack.reference(),
            KeyHasher::new("bench/buildpack").str(dir).finish(),
        );
        group.push(GroupMember {
            buildpack: Arc::new(buildpack),
            plan: BuildpackPlan::default(),
        });
    }
    (
        DetectResult {
            group,
            ..DetectResult::default()
        },
        digests,
    )
}

fn benches(c: &mut Criterion) {
    let tree = app();
    let env: BTreeMap<String, String> = [("GREETER_FLAVOR", "plain"), ("NODE_ENV", "production")]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let buildpack = KeyHasher::new("bench/buildpack").finish();
    let needs: Vec<TaskKey> = (0..3_u64)
        .map(|n| KeyHasher::new("bench/need").u64(n).finish())
        .collect();

    let mut group = c.benchmark_group("task_key");
    group.throughput(Throughput::Elements(LAYER_FILES as u64));
    let files = &tree.files[..LAYER_FILES];
    group.bench_function("layer_200_files", |b| {
        b.iter(|| layer_key(&buildpack, black_box(files), black_box(&env), &needs));
    });
    group.throughput(Throughput::Elements(1));
    let key = needs[0];
    group.bench_function("hex_round_trip", |b| {
        b.iter(|| TaskKey::from_hex(&black_box(key).hex()));
    });
    group.finish();

    let (detected, digests) = example_group();
    let env: Vec<(String, String)> = env.into_iter().collect();
    let input = ServiceInput {
        name: "hello",
        group: &detected,
        app: &tree,
        buildpack_digests: &digests,
        env: &env,
        bindings: None,
        build_image: "host",
        target: "linux/amd64",
        export: "builtin",
        exec_env: "production",
    };
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(APP_FILES as u64));
    group.bench_function("add_service_hello_stack_2k_files", |b| {
        b.iter(|| {
            let mut plan = Plan::new();
            plan.add_service(black_box(&input))
                .expect("the example group plans");
            plan
        });
    });
    group.finish();
}

criterion_group!(keys, benches);
criterion_main!(keys);
