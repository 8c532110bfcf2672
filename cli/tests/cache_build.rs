//! `strata build` with the store: a second build of an unchanged app runs nothing and gives
//! the same image (only the export when the output lost it); a change reruns only the tasks that read it and what follows;
//! a corrupt store entry is a miss, rebuilt, never exported.

#![allow(clippy::unwrap_used)] // test code: a panic is a failing test

mod common;

use std::path::{Path, PathBuf};

use common::*;

type Fixture = ExampleCopy;

/// `strata build --json` of the example app into the copy's `out` layout and cache dir.
trait Builds {
    fn build(&self, extra: &[&str]) -> (String, Vec<(String, String)>);
}

impl Builds for Fixture {
    /// Builds the example app; returns (digest, tasks by id → status).
    fn build(&self, extra: &[&str]) -> (String, Vec<(String, String)>) {
        let app = self.path("examples/apps/hello");
        let builder = self.path("examples/builder.toml");
        let cache = self.path("cache");
        let out = format!("oci:{}:hello", self.path("out").display());
        let run_image = run_image();
        let mut args = vec![
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--run-image",
            &run_image,
            "--cache-dir",
            cache.to_str().unwrap(),
            "--output",
            &out,
            "--json",
        ];
        args.extend_from_slice(extra);
        let result = strata(self.tmp.path(), &args);
        assert_exit(&result, 0);
        let report: serde_json::Value = serde_json::from_slice(&result.stdout).unwrap();
        let tasks = report["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap().to_owned(),
                    t["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (report["digest"].as_str().unwrap().to_owned(), tasks)
    }
}

fn ran(tasks: &[(String, String)]) -> Vec<&str> {
    let mut out: Vec<&str> = tasks
        .iter()
        .filter(|(_, s)| s == "ran")
        .map(|(id, _)| id.as_str())
        .collect();
    out.sort_unstable();
    out
}

fn blobs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir.join("store/blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn a_second_build_runs_no_buildpack_task_and_gives_the_same_image() {
    let fx = Fixture::new();
    let (first, tasks) = fx.build(&[]);
    assert_eq!(ran(&tasks).len(), 7, "{tasks:?}");
    let (second, tasks) = fx.build(&[]);
    assert_eq!(second, first);
    assert_eq!(
        ran(&tasks),
        Vec::<&str>::new(),
        "the output has the image: nothing runs: {tasks:?}"
    );
    assert_eq!(tasks.len(), 7, "every task is reported cached: {tasks:?}");
    std::fs::remove_dir_all(fx.path("out")).unwrap();
    let (again, tasks) = fx.build(&[]);
    assert_eq!(again, first);
    assert_eq!(
        ran(&tasks),
        ["app", "image"],
        "without the image in the output, only the export runs again: {tasks:?}"
    );
    let (third, tasks) = fx.build(&["--no-cache"]);
    assert_eq!(third, first);
    assert_eq!(
        ran(&tasks).len(),
        7,
        "--no-cache runs everything: {tasks:?}"
    );
}

#[test]
fn the_app_exported_from_its_private_copy_equals_the_app_exported_from_itself() {
    let fx = Fixture::new();
    let app = fx.path("examples/apps/hello");
    // Without motd.txt no buildpack changes the app (motd writes a stamp into it).
    std::fs::remove_file(app.join("motd.txt")).unwrap();
    // What project.toml excludes, an empty directory and a symlink.
    std::fs::write(app.join("debug.log"), "excluded\n").unwrap();
    std::fs::create_dir_all(app.join("tmp")).unwrap();
    std::fs::write(app.join("tmp/scratch"), "excluded\n").unwrap();
    std::fs::create_dir_all(app.join("empty/nested")).unwrap();
    std::os::unix::fs::symlink("index.txt", app.join("link")).unwrap();
    // procfile runs, so the first export reads the copy it worked on; the second, with every
    // buildpack cached, reads the app itself.
    let (first, tasks) = fx.build(&[]);
    assert!(ran(&tasks).contains(&"examples/procfile (bin/build)"));
    std::fs::remove_dir_all(fx.path("out")).unwrap();
    let (second, tasks) = fx.build(&[]);
    assert_eq!(ran(&tasks), ["app", "image"], "{tasks:?}");
    assert_eq!(second, first);
    let listing = tool(
        "sh",
        &[
            "-c",
            &format!(
                "cd {} && umoci unpack --image out:hello bundle >/dev/null && cd bundle/rootfs/workspace && find . | sort",
                fx.tmp.path().display()
            ),
        ],
    );
    assert!(
        listing.contains("./empty/nested\n") && listing.contains("./link\n"),
        "{listing}"
    );
    assert!(
        !listing.contains("debug.log") && !listing.contains("./tmp"),
        "{listing}"
    );
}

#[test]
fn a_changed_lock_file_reruns_only_what_reads_it_and_what_follows() {
    let fx = Fixture::new();
    fx.build(&[]);
    std::fs::write(fx.path("examples/apps/hello/greeter.lock"), "polite 1.1\n").unwrap();
    let (_, tasks) = fx.build(&[]);
    assert_eq!(
        ran(&tasks),
        [
            "app",
            "examples/motd (bin/build)",
            "examples/procfile (bin/build)",
            "examples/runtime:phrases",
            "image"
        ],
        "{tasks:?}"
    );
}

#[test]
fn corrupt_truncated_or_missing_blobs_are_rebuilt_never_exported() {
    let fx = Fixture::new();
    let (first, _) = fx.build(&["--compression", "none"]);
    let cache = fx.path("cache");
    let mut all = blobs(&cache);
    assert!(all.len() >= 3, "{all:?}");
    // Flip a byte in one that is also in the output layout (exported by hardlink), truncate
    // another, delete a third.
    let exported = |p: &PathBuf| {
        fx.path("out/blobs/sha256")
            .join(p.file_name().unwrap())
            .exists()
    };
    all.sort_by_key(|p| !exported(p));
    assert!(exported(&all[0]), "a stored layer is in the output layout");
    let flip = &all[0];
    let mut bytes = std::fs::read(flip).unwrap();
    bytes[0] ^= 0xff;
    std::fs::set_permissions(flip, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(flip, &bytes).unwrap();
    let cut = &all[1];
    std::fs::set_permissions(cut, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let len = std::fs::metadata(cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::remove_file(&all[2]).unwrap();

    let verify = strata(
        fx.tmp.path(),
        &["cache", "verify", "--cache-dir", cache.to_str().unwrap()],
    );
    assert_exit(&verify, 1);

    let (again, tasks) = fx.build(&["--compression", "none"]);
    assert_eq!(again, first, "the rebuilt image is the same");
    assert!(
        ran(&tasks).len() > 2,
        "the broken entries were rebuilt: {tasks:?}"
    );
    let verify = strata(
        fx.tmp.path(),
        &["cache", "verify", "--cache-dir", cache.to_str().unwrap()],
    );
    assert_exit(&verify, 0);
    // The output layout shared the flipped blob's inode: it has a good copy now.
    for blob in std::fs::read_dir(fx.path("out/blobs/sha256")).unwrap() {
        let path = blob.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let actual = hex_sha256(&std::fs::read(&path).unwrap());
        assert_eq!(actual, name, "{} hashes to its name", path.display());
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// A declared buildpack whose layer sleeps, then writes `MiB` of data, so a build can be
/// killed during the task or during its export.
fn slow_buildpack(root: &Path, mib: u32) -> PathBuf {
    one_layer_buildpack(
        &root.join("slow-bp"),
        "t/slow",
        "data",
        &["*"],
        &format!("sleep 0.4\nhead -c {mib}M /dev/zero | tr '\\0' 'x' > \"$1/data\""),
    )
}

fn slow_build(
    root: &Path,
    app: &Path,
    bp: &Path,
    cache: &Path,
    out: &Path,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.env("TMPDIR", scratch_tmpdir());
    cmd.args([
        "build",
        app.to_str().unwrap(),
        "--buildpack",
        bp.to_str().unwrap(),
        "--cache-dir",
    ])
    .arg(cache)
    .arg("--output")
    .arg(format!("oci:{}:app", out.display()))
    .arg("--json")
    .env_remove("SOURCE_DATE_EPOCH")
    .current_dir(root)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    cmd
}

fn digest_of(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    report["digest"].as_str().unwrap().to_owned()
}

#[test]
fn a_build_killed_at_any_point_then_built_again_gives_the_uninterrupted_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.txt"), "x").unwrap();
    let bp = slow_buildpack(root, 64);
    let expected = digest_of(
        &slow_build(
            root,
            &app,
            &bp,
            &root.join("clean-cache"),
            &root.join("clean-out"),
        )
        .output()
        .unwrap(),
    );

    // Kill points: during the layer's script, while its layer is tarred into the store, and
    // later (export); each kill is followed by a build that must succeed with the same image.
    for (i, after_ms) in [200u64, 700, 1100, 1600].into_iter().enumerate() {
        let cache = root.join(format!("cache-{i}"));
        let out = root.join(format!("out-{i}"));
        let mut child = slow_build(root, &app, &bp, &cache, &out).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        let _ = child.kill();
        let _ = child.wait();
        let again = slow_build(root, &app, &bp, &cache, &out).output().unwrap();
        assert_eq!(digest_of(&again), expected, "after a kill at {after_ms} ms");
        let verify = strata(
            root,
            &["cache", "verify", "--cache-dir", cache.to_str().unwrap()],
        );
        assert_exit(&verify, 0);
    }
}

#[test]
fn two_builds_on_one_store_at_once_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let bp = slow_buildpack(root, 8);
    let cache = root.join("cache");
    let mut children = Vec::new();
    for name in ["one", "two"] {
        let app = root.join(name);
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("main.txt"), name).unwrap();
        children.push(
            slow_build(root, &app, &bp, &cache, &root.join(format!("out-{name}")))
                .spawn()
                .unwrap(),
        );
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        digest_of(&output);
    }
    let verify = strata(
        root,
        &["cache", "verify", "--cache-dir", cache.to_str().unwrap()],
    );
    assert_exit(&verify, 0);
}

#[test]
fn outputs_stored_in_an_older_blob_format_are_built_again() {
    let fx = Fixture::new();
    let (first, _) = fx.build(&[]);
    // Mark every stored output as written by an earlier version of the layer writer.
    let mut marked = 0;
    let mut stack = vec![fx.path("cache/store/actions")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let mut action: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for pointer in ["/payload/settings/format", "/payload/format"] {
                if let Some(format) = action.pointer_mut(pointer) {
                    *format = serde_json::json!(1);
                    marked += 1;
                }
            }
            std::fs::write(&path, serde_json::to_vec(&action).unwrap()).unwrap();
        }
    }
    assert!(
        marked >= 6,
        "every layer task and the image record: {marked}"
    );
    let (again, tasks) = fx.build(&[]);
    assert_eq!(again, first);
    assert_eq!(ran(&tasks).len(), 7, "nothing old is reused: {tasks:?}");
}

/// `strata build` of the example app into the layout `out`, with the copy's cache dir.
fn build_into(fx: &Fixture, out: &Path) -> std::process::Output {
    build_with_cache(fx, out, &fx.path("cache"))
}

fn build_with_cache(fx: &Fixture, out: &Path, cache: &Path) -> std::process::Output {
    let app = fx.path("examples/apps/hello");
    let builder = fx.path("examples/builder.toml");
    strata(
        fx.tmp.path(),
        &[
            "build",
            app.to_str().unwrap(),
            "--builder",
            builder.to_str().unwrap(),
            "--run-image",
            &run_image(),
            "--cache-dir",
            cache.to_str().unwrap(),
            "--output",
            &format!("oci:{}:hello", out.display()),
        ],
    )
}

/// Every blob of the layout hashes to its name, and umoci unpacks the image tagged `tag`.
fn assert_layout_whole(fx: &Fixture, out: &Path, tag: &str) {
    for blob in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
        let path = blob.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let actual = hex_sha256(&std::fs::read(&path).unwrap());
        assert_eq!(actual, name, "{} hashes to its name", path.display());
    }
    let bundle = fx.path(&format!("bundle-{tag}"));
    let _ = std::fs::remove_dir_all(&bundle);
    let unpack = std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", out.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        unpack.status.success(),
        "umoci unpacks {tag}: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
}

/// A tmpfs mounted at a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Self(dir)
    }

    /// Fills the file system up to its last byte.
    fn fill(&self) {
        use std::io::Write as _;
        let mut file = std::fs::File::create(self.0.join("filler")).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let bytes = vec![0u8; chunk];
            while file.write_all(&bytes).is_ok() {}
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_build_that_finds_a_corrupt_store_blob_and_then_fails_leaves_the_earlier_image_whole() {
    let fx = Fixture::new();
    // The output on another file system: its blobs are copies of the store's, not links.
    let disk = Tmpfs::mount(fx.path("disk"), "32m");
    let out = disk.0.join("out");
    assert_exit(&build_into(&fx, &out), 0);
    let mut corrupted = 0;
    for blob in blobs(&fx.path("cache")) {
        if out
            .join("blobs/sha256")
            .join(blob.file_name().unwrap())
            .exists()
        {
            let mut bytes = std::fs::read(&blob).unwrap();
            bytes[0] ^= 0xff;
            std::fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .unwrap();
            std::fs::write(&blob, &bytes).unwrap();
            corrupted += 1;
        }
    }
    assert!(corrupted > 0, "stored layers are in the output");
    // A change that reruns the app layer but not every stored layer's task, whose entries are
    // now found corrupt; then the export runs out of space.
    std::fs::write(fx.path("examples/apps/hello/index.txt"), "changed\n").unwrap();
    disk.fill();
    let second = build_into(&fx, &out);
    assert_exit(&second, 1);
    let message = stderr(&second);
    assert!(
        message.contains("No space left on device")
            && message.contains(&disk.0.display().to_string()),
        "the cause and the path are reported: {message}"
    );
    assert_layout_whole(&fx, &out, "hello");
}

#[test]
fn every_corrupt_blob_of_an_entry_is_replaced_in_the_output_too() {
    let fx = Fixture::new();
    let out = fx.path("out");
    assert_exit(&build_into(&fx, &out), 0);
    // Every stored blob is corrupt, those the output shares (hardlinks) too: the entry of
    // the runtime buildpack lists an SBOM blob, then a layer blob, and both are bad.
    for blob in blobs(&fx.path("cache")) {
        let mut bytes = std::fs::read(&blob).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::set_permissions(&blob, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        std::fs::write(&blob, &bytes).unwrap();
    }
    let layout_arg = format!("oci:{}", out.display());
    let cache = fx.path("cache");
    let verify_args = [
        "cache",
        "verify",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--layout",
        &layout_arg,
        "--json",
    ];
    let verify = strata(fx.tmp.path(), &verify_args);
    assert_exit(&verify, 1);
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert!(
        !report["layouts"][0]["corrupt_blobs"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the output's bad blobs are reported: {report}"
    );
    assert_exit(&build_into(&fx, &out), 0);
    assert_layout_whole(&fx, &out, "hello");
    let verify = strata(fx.tmp.path(), &verify_args);
    assert_exit(&verify, 0);
}

#[test]
fn a_full_disk_under_the_store_is_reported_with_its_cause() {
    let fx = Fixture::new();
    let disk = Tmpfs::mount(fx.path("disk"), "32m");
    let cache = disk.0.join("cache");
    let out = fx.path("out");
    assert_exit(&build_with_cache(&fx, &out, &cache), 0);
    // New layers to store, and no space to store them in.
    std::fs::write(fx.path("examples/apps/hello/greeter.lock"), "polite 1.1\n").unwrap();
    disk.fill();
    let second = build_with_cache(&fx, &out, &cache);
    assert_exit(&second, 1);
    let message = stderr(&second);
    assert!(
        message.contains("No space left on device"),
        "the cause is reported: {message}"
    );
}

#[test]
fn a_single_app_build_with_nothing_to_do_says_up_to_date() {
    let fx = Fixture::new();
    let (digest, _) = fx.build(&[]);
    let out = format!("oci:{}:hello", fx.path("out").display());
    let run_image = run_image();
    let again = strata(
        fx.tmp.path(),
        &[
            "build",
            fx.path("examples/apps/hello").to_str().unwrap(),
            "--builder",
            fx.path("examples/builder.toml").to_str().unwrap(),
            "--run-image",
            &run_image,
            "--cache-dir",
            fx.path("cache").to_str().unwrap(),
            "--output",
            &out,
        ],
    );
    assert_exit(&again, 0);
    assert!(
        stderr(&again).contains("up to date: nothing it reads changed (7 tasks cached, none ran)"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        format!("{out} {digest}\n"),
        "stdout stays one line, the image and its digest"
    );
}
