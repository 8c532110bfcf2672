//! Runs the built launcher against a small layers and app tree and checks what the started
//! process sees: its env, arguments and working directory, exec.d output and profile scripts.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_launcher");

/// Prints the working directory, each argument and the env, one item a line.
const SHOW: &str = "#!/bin/sh\necho \"cwd=$(pwd)\"\nfor a in \"$@\"; do echo \"arg=$a\"; done\nenv | sed 's/^/env:/'\n";

struct Tree {
    root: tempfile::TempDir,
}

impl Tree {
    fn new(metadata: &str) -> Self {
        let tree = Self {
            root: tempfile::tempdir().unwrap(),
        };
        tree.write("layers/config/metadata.toml", metadata);
        fs::create_dir_all(tree.app()).unwrap();
        tree
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn app(&self) -> PathBuf {
        self.path("app")
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
    }

    fn script(&self, rel: &str, text: &str) {
        self.write(rel, text);
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// `/cnb/process/<ty>`: a link named after the process type.
    fn process_link(&self, ty: &str) -> PathBuf {
        let link = self.path(&format!("cnb/process/{ty}"));
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(LAUNCHER, &link).unwrap();
        link
    }

    fn run(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(program)
            .args(args)
            .env_clear()
            .env("PATH", "/cnb/process:/cnb/lifecycle:/usr/bin:/bin")
            .env("CNB_LAYERS_DIR", self.path("layers"))
            .env("CNB_APP_DIR", self.app())
            .env("CNB_PLATFORM_API", "0.12")
            .env("CNB_DEPRECATION_MODE", "quiet")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter_map(|l| l.strip_prefix(prefix)).collect()
}

fn env_var<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    lines_with(out, "env:")
        .into_iter()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
}

const METADATA: &str = r#"
[[buildpacks]]
id = "examples/first"
api = "0.10"
[[buildpacks]]
id = "examples/second"
api = "0.8"

[[processes]]
type = "web"
command = ["show", "always"]
args = ["default-arg"]
direct = true
default = true
buildpack-id = "examples/first"

[[processes]]
type = "worker"
command = ["show"]
args = ["w1", "w2"]
direct = true
buildpack-id = "examples/first"
working-dir = "sub"

[[processes]]
type = "legacy"
command = "echo \"greeting=$GREETING from=$FROM_PROFILE app=$FROM_APP_PROFILE\" \"$0\""
direct = false
buildpack-id = "examples/second"
"#;

/// Two buildpacks with a launch layer each, writing every kind of env contribution.
fn tree() -> Tree {
    let t = Tree::new(METADATA);
    t.script("layers/examples_first/tools/bin/show", SHOW);
    fs::create_dir_all(t.path("layers/examples_first/tools/lib")).unwrap();
    t.write("layers/examples_first/tools/env/GREETING", "hello");
    t.write("layers/examples_first/tools/env/LIST.append", "first");
    t.write("layers/examples_first/tools/env/LIST.delim", ",");
    t.write("layers/examples_first/tools/env.launch/web/ONLY_WEB", "web");
    t.write(
        "layers/examples_first/tools/env.launch/worker/ONLY_WORKER",
        "worker",
    );
    t.write("layers/examples_first/tools/env.build/BUILD_ONLY", "no");
    t.write("layers/examples_second/more/env/LIST.append", "second");
    t.write("layers/examples_second/more/env/LIST.delim", ",");
    fs::create_dir_all(t.app().join("sub")).unwrap();
    t
}

#[test]
fn the_default_process_runs_with_its_layers_env() {
    let t = tree();
    let out = stdout(&t.run(Path::new(LAUNCHER), &[], &[("LIST", "user")]));
    assert_eq!(lines_with(&out, "arg="), ["always", "default-arg"]);
    assert_eq!(lines_with(&out, "cwd="), [t.app().to_str().unwrap()]);
    assert_eq!(env_var(&out, "GREETING"), Some("hello"));
    // The user's value combines with the buildpacks', in group order.
    assert_eq!(env_var(&out, "LIST"), Some("user,first,second"));
    assert_eq!(env_var(&out, "ONLY_WEB"), Some("web"));
    assert_eq!(env_var(&out, "ONLY_WORKER"), None);
    assert_eq!(env_var(&out, "BUILD_ONLY"), None);
    let tools = t.path("layers/examples_first/tools");
    assert_eq!(
        env_var(&out, "PATH"),
        Some(format!("{}/bin:/usr/bin:/bin", tools.display()).as_str())
    );
    assert_eq!(
        env_var(&out, "LD_LIBRARY_PATH"),
        Some(format!("{}/lib", tools.display()).as_str())
    );
    for platform in [
        "CNB_LAYERS_DIR",
        "CNB_APP_DIR",
        "CNB_PLATFORM_API",
        "CNB_DEPRECATION_MODE",
    ] {
        assert_eq!(env_var(&out, platform), None, "{platform}");
    }
}

#[test]
fn a_process_link_runs_that_process_and_user_args_replace_its_args() {
    let t = tree();
    let worker = t.process_link("worker");
    let out = stdout(&t.run(&worker, &[], &[]));
    assert_eq!(lines_with(&out, "arg="), ["w1", "w2"]);
    assert_eq!(
        lines_with(&out, "cwd="),
        [t.app().join("sub").to_str().unwrap()]
    );
    assert_eq!(env_var(&out, "ONLY_WORKER"), Some("worker"));
    assert_eq!(env_var(&out, "ONLY_WEB"), None);

    let out = stdout(&t.run(&worker, &["mine", "two words"], &[]));
    assert_eq!(lines_with(&out, "arg="), ["mine", "two words"]);

    // `command[1:]` stays; only `args` are replaced.
    let web = t.process_link("web");
    let out = stdout(&t.run(&web, &["x"], &[]));
    assert_eq!(lines_with(&out, "arg="), ["always", "x"]);
}

#[test]
fn cnb_process_type_selects_a_process_for_the_bare_launcher() {
    let t = tree();
    let out = stdout(&t.run(Path::new(LAUNCHER), &[], &[("CNB_PROCESS_TYPE", "worker")]));
    assert_eq!(lines_with(&out, "arg="), ["w1", "w2"]);
    assert_eq!(env_var(&out, "CNB_PROCESS_TYPE"), None);
}

#[test]
fn dashes_run_a_user_command_directly_with_the_buildpack_env() {
    let t = tree();
    let out = stdout(&t.run(Path::new(LAUNCHER), &["--", "show", "$GREETING"], &[]));
    // Direct: no shell expands the argument.
    assert_eq!(lines_with(&out, "arg="), ["$GREETING"]);
    assert_eq!(env_var(&out, "GREETING"), Some("hello"));
    assert_eq!(env_var(&out, "ONLY_WEB"), None);

    // `PWD` is where the process runs, not where the container started the launcher.
    let out = t.run(Path::new(LAUNCHER), &["--", "env"], &[("PWD", "/")]);
    let out = stdout(&out);
    assert!(
        out.lines()
            .any(|l| l == format!("PWD={}", t.app().display())),
        "{out}"
    );
}

#[test]
fn a_user_command_without_dashes_runs_through_a_shell() {
    let t = tree();
    let out = stdout(&t.run(Path::new(LAUNCHER), &["echo \"$GREETING world\""], &[]));
    assert_eq!(out, "hello world\n");
    let out = stdout(&t.run(Path::new(LAUNCHER), &["show", "$GREETING", "a b"], &[]));
    assert_eq!(lines_with(&out, "arg="), ["hello", "a b"]);
}

#[test]
fn exec_d_output_sets_env_in_order_and_per_process() {
    let t = tree();
    let execd = "layers/examples_first/tools/exec.d";
    t.script(
        &format!("{execd}/a"),
        "#!/bin/sh\nprintf 'FROM_EXECD = \"a\"\\nGREETING = \"%s, again\"\\n' \"$GREETING\" >&3\n",
    );
    t.script(
        &format!("{execd}/b"),
        "#!/bin/sh\necho \"SEEN = \\\"$FROM_EXECD in $(pwd)\\\"\" >&3\n",
    );
    t.script(
        &format!("{execd}/web/c"),
        "#!/bin/sh\necho 'WEB_EXECD = \"yes\"' >&3\n",
    );
    let out = stdout(&t.run(Path::new(LAUNCHER), &[], &[]));
    assert_eq!(env_var(&out, "FROM_EXECD"), Some("a"));
    assert_eq!(env_var(&out, "GREETING"), Some("hello, again"));
    let seen = format!("a in {}", t.app().display());
    assert_eq!(env_var(&out, "SEEN"), Some(seen.as_str()));
    assert_eq!(env_var(&out, "WEB_EXECD"), Some("yes"));

    let out = stdout(&t.run(&t.process_link("worker"), &[], &[]));
    assert_eq!(env_var(&out, "WEB_EXECD"), None);
    assert_eq!(env_var(&out, "FROM_EXECD"), Some("a"));
}

#[test]
fn a_failing_or_garbled_exec_d_program_fails_the_launch() {
    let t = tree();
    t.script(
        "layers/examples_first/tools/exec.d/bad",
        "#!/bin/sh\nexit 3\n",
    );
    let out = t.run(Path::new(LAUNCHER), &[], &[]);
    assert_eq!(out.status.code(), Some(82));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("exec.d program") && err.contains("exec.d/bad"),
        "{err}"
    );

    t.script(
        "layers/examples_first/tools/exec.d/bad",
        "#!/bin/sh\necho 'X = 1' >&3\n",
    );
    let out = t.run(Path::new(LAUNCHER), &[], &[]);
    assert_eq!(out.status.code(), Some(82));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not TOML"), "{err}");
}

#[test]
fn a_shell_process_sources_profile_d_and_the_app_profile() {
    let t = tree();
    t.write(
        "layers/examples_second/more/profile.d/a.sh",
        "export FROM_PROFILE=layer\n",
    );
    t.write(
        "layers/examples_second/more/profile.d/legacy/b.sh",
        "export FROM_PROFILE=\"$FROM_PROFILE+legacy\"\n",
    );
    t.write(
        "layers/examples_second/more/profile.d/web/c.sh",
        "export FROM_PROFILE=wrong\n",
    );
    t.write(
        "app/.profile",
        "export FROM_APP_PROFILE=\"app after $FROM_PROFILE\"\n",
    );
    let legacy = t.process_link("legacy");
    let out = stdout(&t.run(&legacy, &[], &[]));
    assert_eq!(
        out.lines().next(),
        Some("greeting=hello from=layer+legacy app=app after layer+legacy bash")
    );
}

#[test]
fn errors_name_the_problem_and_use_the_spec_exit_codes() {
    let t = tree();
    let out = t.run(Path::new(LAUNCHER), &[], &[("CNB_PROCESS_TYPE", "nope")]);
    assert_eq!(out.status.code(), Some(82));
    assert!(String::from_utf8_lossy(&out.stderr).contains("process type `nope` was not found"));

    let out = t.run(Path::new(LAUNCHER), &["--", "no-such-command"], &[]);
    assert_eq!(out.status.code(), Some(82));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("`no-such-command` was not found in PATH")
    );

    let out = t.run(Path::new(LAUNCHER), &[], &[("CNB_PLATFORM_API", "zero")]);
    assert_eq!(out.status.code(), Some(11));

    fs::remove_file(t.path("layers/config/metadata.toml")).unwrap();
    let out = t.run(Path::new(LAUNCHER), &[], &[]);
    assert_eq!(out.status.code(), Some(82));
    assert!(String::from_utf8_lossy(&out.stderr).contains("metadata.toml"));
}
